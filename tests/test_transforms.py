"""jit / vmap / grad / pmap / shard_map / sharded jit over both ops, on 8 forced host devices (see conftest)."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import jax_flashfft as jff
from ref64 import rel_l2

CPUS = jax.devices("cpu")
needs8 = pytest.mark.skipif(len(CPUS) < 8, reason="needs 8 host devices (XLA_FLAGS set before jax started)")


def _draw(rng, shape, dtype=jnp.float32):
    return jnp.asarray(rng.standard_normal(shape), dtype)


# fft_size 65536 is a long size: there the forward and backward take k's spectrum K' from its own op
# (_spectrum_op), whose vmap and sharding rules these tests reach too.
LONG = 1 << 16


def _conv(u, k, pre, post, skip, backend=None, layout="BHL", fft_size=None):
    return jff.fftconv(u, k, pre_gate=pre, post_gate=post, skip=skip, layout=layout, backend=backend,
                       fft_size=fft_size)


def _loss(backend, layout="BHL", fft_size=None):
    def f(u, k, pre, post, skip):
        return (_conv(u, k, pre, post, skip, backend, layout, fft_size) ** 2).sum()

    return f


# ------------------------------------------------------------------------------------------- vmap


@pytest.mark.parametrize(
    "in_axes",
    [
        (0, None, None, None, None),  # u alone
        (0, None, 0, 0, None),  # activations
        (None, 0, None, None, 0),  # filters alone (u broadcast)
        (0, 0, 0, 0, 0),  # everything
        (1, None, 1, None, None),  # a non-leading mapped axis
        (None, None, 0, None, None),  # one gate alone
    ],
)
@pytest.mark.parametrize("fft_size", [None, LONG])
def test_vmap_forward_and_grad_of_vmap(rng, in_axes, fft_size):
    vsize, batch, heads, length, klen = 3, 2, 4, 20, 6
    shapes = {
        0: (batch, heads, length),
        1: (heads, klen),
        2: (batch, heads, length),
        3: (batch, heads, length),
        4: (heads,),
    }

    def mapped(i):
        s = shapes[i]
        ax = in_axes[i]
        return s if ax is None else s[:ax] + (vsize,) + s[ax:]

    args = [_draw(rng, mapped(i)) for i in range(5)]
    ours = jax.vmap(functools.partial(_conv, fft_size=fft_size), in_axes=in_axes)(*args)
    xla = jax.vmap(functools.partial(_conv, backend="xla", fft_size=fft_size), in_axes=in_axes)(*args)
    assert rel_l2(ours, xla) <= 1e-5

    def total(backend):
        return lambda *a: jax.vmap(_loss(backend, fft_size=fft_size), in_axes=in_axes)(*a).sum()

    g_ours = jax.grad(total(None), argnums=tuple(range(5)))(*args)
    g_xla = jax.grad(total("xla"), argnums=tuple(range(5)))(*args)
    for a, b in zip(g_ours, g_xla):
        assert a.shape == b.shape and rel_l2(a, b) <= 1e-5


def test_vmap_of_grad_gives_per_example_filter_gradients(rng):
    us = _draw(rng, (4, 2, 3, 16))
    k = _draw(rng, (3, 5))
    skip = _draw(rng, (3,))
    per_ex = lambda backend: jax.vmap(jax.grad(lambda u, k, s: (_conv(u, k, None, None, s, backend) ** 2).sum(), argnums=(1, 2)), in_axes=(0, None, None))  # noqa: E731
    dk, ds = per_ex(None)(us, k, skip)
    dk_x, ds_x = per_ex("xla")(us, k, skip)
    assert dk.shape == (4, 3, 5) and ds.shape == (4, 3)
    assert rel_l2(dk, dk_x) <= 1e-5 and rel_l2(ds, ds_x) <= 1e-5


def test_nested_vmap(rng):
    u = _draw(rng, (2, 3, 2, 4, 16))
    k = _draw(rng, (3, 4, 5))
    f = lambda backend: jax.vmap(jax.vmap(lambda u, k: _conv(u, k, None, None, None, backend), in_axes=(0, 0)), in_axes=(0, None))  # noqa: E731
    assert rel_l2(f(None)(u, k), f("xla")(u, k)) <= 1e-5


def test_vmap_over_u_does_not_copy_k(rng):
    u = _draw(rng, (8, 2, 3, 16))
    k = _draw(rng, (3, 5))
    hlo = jax.jit(jax.vmap(lambda u: jff.fftconv(u, k))).lower(u).as_text()
    calls = [line for line in hlo.splitlines() if "jff_fftconv_fwd" in line]
    assert calls, hlo
    # The filter reaches the kernel as (1, H, Lk): one copy shared by all 16 batch rows.
    assert any("tensor<1x3x5xf32>" in line for line in calls), calls
    assert not any("tensor<8x3x5xf32>" in line or "tensor<16x3x5xf32>" in line for line in calls), calls


@pytest.mark.parametrize("in_axes", [(0, None, None), (None, 0, 0), (0, 0, None), (2, None, None)])
@pytest.mark.parametrize("layout", ["BLH", "BHL"])
def test_depthwise_vmap_and_grad(rng, in_axes, layout):
    vsize, batch, length, chans, taps = 3, 2, 12, 5, 4
    xs = (batch, length, chans) if layout == "BLH" else (batch, chans, length)
    shapes = [xs, (taps, chans), (chans,)]
    args = [_draw(rng, s if ax is None else s[:ax] + (vsize,) + s[ax:]) for s, ax in zip(shapes, in_axes)]

    def f(backend):
        return lambda x, w, b: jff.depthwise_conv1d(x, w, b, padding="causal", layout=layout, backend=backend)

    assert rel_l2(jax.vmap(f(None), in_axes)(*args), jax.vmap(f("xla"), in_axes)(*args)) <= 1e-5
    loss = lambda backend: lambda *a: (jax.vmap(f(backend), in_axes)(*a) ** 2).sum()  # noqa: E731
    for a, b in zip(jax.grad(loss(None), (0, 1, 2))(*args), jax.grad(loss("xla"), (0, 1, 2))(*args)):
        assert rel_l2(a, b) <= 1e-5
    per_example = lambda backend: jax.vmap(jax.grad(lambda x, w, b: (f(backend)(x, w, b) ** 2).sum(), (1, 2)), in_axes)  # noqa: E731
    for a, b in zip(per_example(None)(*args), per_example("xla")(*args)):
        assert rel_l2(a, b) <= 1e-5


# ------------------------------------------------------------------------------------------- pmap / shard_map


@needs8
def test_pmap(rng):
    u = _draw(rng, (8, 2, 3, 16))
    k = _draw(rng, (3, 5))
    g = jax.pmap(jax.grad(lambda u, k: (jff.fftconv(u, k) ** 2).sum(), argnums=(0, 1)), in_axes=(0, None), devices=CPUS)(u, k)
    g_x = jax.vmap(jax.grad(lambda u, k: (jff.fftconv(u, k, backend="xla") ** 2).sum(), argnums=(0, 1)), in_axes=(0, None))(u, k)
    for a, b in zip(g, g_x):
        assert rel_l2(a, b) <= 1e-5
    x = _draw(rng, (8, 2, 10, 3))
    w = _draw(rng, (3, 3))
    y = jax.pmap(lambda x: jff.depthwise_conv1d(x, w), devices=CPUS)(x)
    assert rel_l2(y, jff.depthwise_conv1d(x, w, backend="xla")) <= 1e-5


@needs8
def test_shard_map(rng):
    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:  # jax < 0.7
        from jax.experimental.shard_map import shard_map

    mesh = Mesh(np.array(CPUS), ("data",))
    u = _draw(rng, (16, 3, 32))
    k = _draw(rng, (3, 7))
    f = shard_map(lambda u: jff.fftconv(u, k), mesh=mesh, in_specs=P("data"), out_specs=P("data"))
    assert rel_l2(jax.jit(f)(u), jff.fftconv(u, k, backend="xla")) <= 1e-5


# ------------------------------------------------------------------------------------------- sharded jit

_COLLECTIVE = re.compile(r"\b(all-gather|all-to-all|collective-permute)\b")


def _compiled_text(fn, *args):
    return jax.jit(fn).lower(*args).compile().as_text()


def _unsharded(*arrays):
    """Host copies of sharded arrays, for the pure-XLA references: run on one device they need no collectives.
    (Eagerly on 8 host devices they all-gather, and XLA's CPU collectives abort the whole process when a device
    thread misses a rendezvous for 40 s, which a 2-core CI machine hit once at fft_size = 65536.)"""
    return tuple(np.asarray(a) for a in arrays)


@needs8
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
@pytest.mark.parametrize("shard", ["batch", "heads", "both"])
@pytest.mark.parametrize("fft_size", [None, LONG])
def test_sharded_jit_fftconv_has_no_all_gather(rng, layout, shard, fft_size):
    mesh = Mesh(np.array(CPUS).reshape(4, 2), ("data", "model"))
    batch, heads, length = 8, 8, 64
    shape = (batch, heads, length) if layout == "BHL" else (batch, length, heads)
    b_ax = {"batch": ("data", "model"), "heads": None, "both": "data"}[shard]
    h_ax = {"batch": None, "heads": ("data", "model"), "both": "model"}[shard]
    spec = P(b_ax, h_ax, None) if layout == "BHL" else P(b_ax, None, h_ax)
    act = NamedSharding(mesh, spec)
    u, pre, post = (jax.device_put(_draw(rng, shape), act) for _ in range(3))
    k = jax.device_put(_draw(rng, (heads, 9)), NamedSharding(mesh, P(h_ax, None)))
    skip = jax.device_put(_draw(rng, (heads,)), NamedSharding(mesh, P(h_ax)))
    args = (u, k, pre, post, skip)

    fwd = lambda *a: _conv(*a, layout=layout, fft_size=fft_size)  # noqa: E731
    grad = jax.grad(_loss(None, layout, fft_size), argnums=(0, 1, 2, 3, 4))
    for fn in (fwd, grad):
        text = _compiled_text(fn, *args)
        assert not _COLLECTIVE.search(text), _COLLECTIVE.search(text).group(0)
        assert ("jff_fftconv_filter_spectrum" in text) == (fft_size == LONG)

    y = jax.jit(fwd)(*args)
    assert y.sharding.is_equivalent_to(act, 3)
    assert rel_l2(y, _conv(*_unsharded(*args), backend="xla", layout=layout, fft_size=fft_size)) <= 1e-5
    g = jax.jit(grad)(*args)
    g_x = jax.grad(_loss("xla", layout, fft_size), argnums=(0, 1, 2, 3, 4))(*_unsharded(*args))
    for a, b in zip(g, g_x):
        assert rel_l2(a, b) <= 1e-5


@needs8
@pytest.mark.parametrize("layout", ["BLH", "BHL"])
@pytest.mark.parametrize("shard", ["batch", "channels"])
def test_sharded_jit_depthwise_has_no_all_gather(rng, layout, shard):
    mesh = Mesh(np.array(CPUS), ("x",))
    batch, length, chans = 8, 32, 16
    shape = (batch, length, chans) if layout == "BLH" else (batch, chans, length)
    b_ax, c_ax = ("x", None) if shard == "batch" else (None, "x")
    spec = P(b_ax, None, c_ax) if layout == "BLH" else P(b_ax, c_ax, None)
    x = jax.device_put(_draw(rng, shape), NamedSharding(mesh, spec))
    w = jax.device_put(_draw(rng, (4, chans)), NamedSharding(mesh, P(None, c_ax)))
    b = jax.device_put(_draw(rng, (chans,)), NamedSharding(mesh, P(c_ax)))

    def loss(backend):
        return lambda x, w, b: (jff.depthwise_conv1d(x, w, b, padding="causal", layout=layout, backend=backend) ** 2).sum()

    fwd = lambda x, w, b: jff.depthwise_conv1d(x, w, b, padding="causal", layout=layout)  # noqa: E731
    for fn in (fwd, jax.grad(loss(None), (0, 1, 2))):
        text = _compiled_text(fn, x, w, b)
        assert not _COLLECTIVE.search(text), _COLLECTIVE.search(text).group(0)
    g_x = jax.grad(loss("xla"), (0, 1, 2))(*_unsharded(x, w, b))
    for a, c in zip(jax.jit(jax.grad(loss(None), (0, 1, 2)))(x, w, b), g_x):
        assert rel_l2(a, c) <= 1e-5
