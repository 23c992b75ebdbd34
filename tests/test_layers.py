"""Flax layers (`jax_flashfft.nnx`, `jax_flashfft.linen`) and the shared math in `jax_flashfft.hyena_math`.

- kernels (backend=None) vs the pure-JAX path (backend="xla"): outputs and gradients, rel-L2 <= 1e-5 in f32;
- NNX and linen give identical outputs for identical parameters;
- DepthwiseConv1d is a drop-in for nnx.Conv / nn.Conv with feature_group_count=features;
- causality, filter prefixes, the regularisers, and nnx.jit / jax.jit / nnx.vmap / nnx.grad over the layers.
Parameters are randomised (zero-initialised biases included) so no term of the output is trivially zero.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jax_flashfft._ffi as _ffi
import jax_flashfft.linen as jfl
import jax_flashfft.nnx as jfn
from jax_flashfft import hyena_math

needs_ffi = pytest.mark.skipif(not _ffi.cpu_available(), reason="CPU extension not built")
TOL = 1e-5


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _rel_l2(out, ref) -> float:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert np.isfinite(out).all()
    norm = np.linalg.norm(ref)
    assert norm > 0, "reference is all zeros: the comparison would prove nothing"
    return float(np.linalg.norm(out - ref) / norm)


def _randomise(model: nnx.Module, seed) -> None:
    """Adds noise to every parameter, so zero-initialised biases take part in the comparisons."""
    rng = _rng("params", seed)
    state = nnx.state(model, nnx.Param)
    noisy = jax.tree.map(lambda p: p + 0.1 * jnp.asarray(rng.standard_normal(p.shape), p.dtype), state)
    nnx.update(model, noisy)


def _with_backend(model: nnx.Module, backend):
    """A copy of `model` sharing its parameter values, with every layer's `backend` set."""
    graphdef, state = nnx.split(model)
    clone = nnx.merge(graphdef, state)
    for _, module in nnx.iter_graph(clone):
        if isinstance(module, nnx.Module) and hasattr(module, "backend"):
            module.backend = backend
    return clone


def _make(kind, backend=None, **kw):
    rngs = nnx.Rngs(kw.pop("seed", 0))
    if kind == "depthwise":
        return jfn.DepthwiseConv1d(kw.pop("features", 24), kw.pop("kernel_size", 4), backend=backend, rngs=rngs, **kw)
    if kind == "longconv":
        return jfn.LongConv(kw.pop("features", 24), kw.pop("max_len", 96), backend=backend, rngs=rngs, **kw)
    if kind == "hyena":
        return jfn.HyenaOperator(kw.pop("d_model", 16), kw.pop("max_len", 96), backend=backend, rngs=rngs,
                                 filter_args=dict(width=16, emb_dim=5), **kw)
    raise ValueError(kind)


def _input(shape, seed=0, dtype=jnp.float32):
    return jnp.asarray(_rng("x", shape, seed).standard_normal(shape), dtype)


# ---------------------------------------------------------------------------------------------------------
# kernels vs pure JAX


CASES = [
    ("depthwise", dict(kernel_size=4, padding="SAME"), (3, 50, 24)),
    ("depthwise", dict(kernel_size=3, padding="CAUSAL"), (2, 64, 24)),
    ("depthwise", dict(kernel_size=5, padding=(1, 3)), (50, 24)),
    ("longconv", dict(), (3, 80, 24)),
    ("longconv", dict(squash_threshold=0.02, max_len=40), (2, 64, 24)),  # kernel shorter than the sequence
    ("hyena", dict(order=2), (2, 96, 16)),
    ("hyena", dict(order=3, short_kernel_size=4), (2, 70, 16)),
]


@needs_ffi
@pytest.mark.parametrize("kind,kw,shape", CASES, ids=lambda v: str(v))
def test_kernels_match_pure_jax(kind, kw, shape):
    model = _make(kind, **dict(kw))
    _randomise(model, (kind, shape))
    x = _input(shape, 1)
    cot = _input(shape[:-1] + (shape[-1],), 2)

    def loss(m, x):
        y = m(x)
        return jnp.sum(y * cot[..., : y.shape[-2], :])

    outs = {}
    for backend in (None, "xla"):
        m = _with_backend(model, backend)
        y = m(x)
        grad_params, grad_x = nnx.grad(loss, argnums=(0, 1))(m, x)
        outs[backend] = (y, grad_x, jax.tree.leaves(grad_params))
    assert _rel_l2(outs[None][0], outs["xla"][0]) <= TOL
    assert _rel_l2(outs[None][1], outs["xla"][1]) <= TOL
    for g_ffi, g_xla in zip(outs[None][2], outs["xla"][2], strict=True):
        assert _rel_l2(g_ffi, g_xla) <= TOL


@needs_ffi
def test_longconv_gates_match_pure_jax():
    model = _make("longconv", features=8, max_len=64)
    _randomise(model, "gates")
    x, pre, post = (_input((2, 64, 8), s) for s in range(3))

    def run(backend):
        m = _with_backend(model, backend)
        f = lambda x, pre, post: m(x, pre_gate=pre, post_gate=post)  # noqa: E731
        y, vjp = jax.vjp(f, x, pre, post)
        return (y,) + vjp(_input((2, 64, 8), 9))

    for a, b in zip(run(None), run("xla"), strict=True):
        assert _rel_l2(a, b) <= TOL
    # The gates really are applied: without them the result differs.
    assert _rel_l2(model(x), run("xla")[0]) > 0.1


@needs_ffi
def test_bf16_activations_with_f32_params():
    model = _make("hyena", dtype=jnp.bfloat16)
    _randomise(model, "bf16")
    x = _input((2, 96, 16), 3)
    y = model(x)
    assert y.dtype == jnp.bfloat16
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    # bf16 has 8 mantissa bits; the f32 model with the same parameters is the reference.
    ref = _with_backend(model, "xla")
    for _, m in nnx.iter_graph(ref):
        if isinstance(m, nnx.Module) and hasattr(m, "dtype"):
            m.dtype = jnp.float32
    assert _rel_l2(y, ref(x)) < 3e-2


# ---------------------------------------------------------------------------------------------------------
# NNX vs linen


def _linen_twin(kind, backend, **kw):
    """The linen layer configured like `_make(kind, **kw)`."""
    if kind == "depthwise":
        return jfl.DepthwiseConv1d(kw.pop("features", 24), kw.pop("kernel_size", 4), backend=backend, **kw)
    if kind == "longconv":
        return jfl.LongConv(kw.pop("features", 24), kw.pop("max_len", 96), backend=backend, **kw)
    if kind == "hyena":
        return jfl.HyenaOperator(kw.pop("d_model", 16), kw.pop("max_len", 96), backend=backend,
                                 filter_args=dict(width=16, emb_dim=5), **kw)
    raise ValueError(kind)


@pytest.mark.parametrize("backend", ["xla", pytest.param(None, marks=needs_ffi)])
@pytest.mark.parametrize("kind,kw,shape", CASES, ids=lambda v: str(v))
def test_nnx_and_linen_identical(kind, kw, shape, backend):
    model = _make(kind, backend=backend, **dict(kw))
    _randomise(model, ("linen", kind, shape))
    twin = _linen_twin(kind, backend, **dict(kw))
    x = _input(shape, 4)
    params = nnx.state(model, nnx.Param).to_pure_dict()
    # The linen module creates the same parameter tree (names and shapes) from scratch ...
    created = twin.init(jax.random.key(0), x)["params"]
    assert jax.tree.map(jnp.shape, created) == jax.tree.map(jnp.shape, params)
    # ... and with the NNX parameters computes exactly the same function.
    np.testing.assert_array_equal(twin.apply({"params": params}, x), model(x))
    np.testing.assert_array_equal(
        jax.jit(twin.apply)({"params": params}, x), nnx.jit(lambda m, x: m(x))(model, x))


def test_hyena_filter_nnx_and_linen_identical():
    f = jfn.HyenaFilter(12, 200, emb_dim=7, width=8, depth=3, freq=2.0, rngs=nnx.Rngs(3))
    g = jfl.HyenaFilter(12, 200, emb_dim=7, width=8, depth=3, freq=2.0)
    params = nnx.state(f, nnx.Param).to_pure_dict()
    created = g.init(jax.random.key(0), 150)["params"]
    assert jax.tree.map(jnp.shape, created) == jax.tree.map(jnp.shape, params)
    k_nnx, b_nnx = f(150)
    k_lin, b_lin = g.apply({"params": params}, 150)
    assert k_nnx.shape == (12, 150) and k_nnx.dtype == jnp.float32
    np.testing.assert_array_equal(k_nnx, k_lin)
    np.testing.assert_array_equal(b_nnx, b_lin)


# ---------------------------------------------------------------------------------------------------------
# DepthwiseConv1d as a drop-in for the Flax convolutions


@pytest.mark.parametrize("backend", ["xla", pytest.param(None, marks=needs_ffi)])
@pytest.mark.parametrize("kernel_size", [1, 3, 4, 7])
@pytest.mark.parametrize("padding", ["SAME", "VALID", "CAUSAL", 2, [(3, 1)]])
def test_depthwise_drop_in_for_flax_conv(kernel_size, padding, backend):
    d = 12
    ours = jfn.DepthwiseConv1d(d, kernel_size, padding=padding, backend=backend, rngs=nnx.Rngs(0))
    theirs = nnx.Conv(d, d, kernel_size, padding=padding, feature_group_count=d, rngs=nnx.Rngs(0),
                      precision=jax.lax.Precision.HIGHEST)
    _randomise(ours, (kernel_size, str(padding)))
    assert theirs.kernel.shape == ours.kernel.shape
    nnx.update(theirs, nnx.state(ours, nnx.Param))
    x = _input((2, 3, 40, d), 5)  # two leading batch dimensions, like nnx.Conv accepts
    assert _rel_l2(ours(x), theirs(x)) <= TOL

    lin = jfl.DepthwiseConv1d(d, (kernel_size,), padding=padding, backend=backend)
    ref = nn.Conv(d, (kernel_size,), padding=padding, feature_group_count=d, precision=jax.lax.Precision.HIGHEST)
    params = {"params": nnx.state(ours, nnx.Param).to_pure_dict()}
    assert _rel_l2(lin.apply(params, x), ref.apply(params, x)) <= TOL


def test_depthwise_rejects_unsupported_padding():
    with pytest.raises(ValueError, match="padding"):
        jfn.DepthwiseConv1d(4, 3, padding="CIRCULAR", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kernel_size"):
        jfn.DepthwiseConv1d(4, (3, 3), rngs=nnx.Rngs(0))


# ---------------------------------------------------------------------------------------------------------
# Model semantics


@pytest.mark.parametrize("kind", ["longconv", "hyena"])
def test_causal(kind):
    model = _make(kind, backend="xla", **({"features": 16} if kind == "longconv" else {}))
    _randomise(model, "causal")
    x = _input((2, 64, 16), 6)
    cut = 37
    x_changed = x.at[:, cut:].add(_input((2, 64 - cut, 16), 7))
    y, y_changed = model(x), model(x_changed)
    np.testing.assert_allclose(y[:, :cut], y_changed[:, :cut], rtol=1e-5, atol=1e-5)
    assert not np.allclose(y[:, cut:], y_changed[:, cut:])
    # A shorter sequence gives the prefix of the longer one's output (filters are prefixes of max_len's).
    np.testing.assert_allclose(model(x[:, :cut]), y[:, :cut], rtol=1e-5, atol=1e-5)


def test_hyena_rejects_sequences_longer_than_max_len():
    model = _make("hyena", backend="xla", max_len=32)
    with pytest.raises(ValueError, match="max_len"):
        model(_input((1, 33, 16)))


def test_hyena_rejects_order_below_two():
    with pytest.raises(ValueError, match="order"):
        _make("hyena", order=1)
    with pytest.raises(ValueError, match="order"):
        jfl.HyenaOperator(8, 16, order=1).init(jax.random.key(0), jnp.ones((1, 16, 8)))


def test_hyena_order3_matches_unfused_recurrence():
    """The fused gates implement Hyena's recurrence v <- conv_o(v * x_{N-1-o}), y = v * x_0."""
    d, order, length = 8, 3, 48
    model = _make("hyena", d_model=d, max_len=length, order=order, backend="xla")
    _randomise(model, "recurrence")
    u = _input((2, length, d), 8)
    x = model.short_conv(model.in_proj(u))
    kernel, skip = model.filter(length)
    chunks = [np.asarray(x[..., i * d:(i + 1) * d], np.float64) for i in range(order + 1)]
    v = chunks[-1]
    for o in range(order - 1):
        v = v * chunks[order - 1 - o]
        k = np.asarray(kernel[o * d:(o + 1) * d], np.float64)  # (d, L)
        conv = np.zeros_like(v)
        for t in range(length):
            conv[:, t] = np.einsum("dj,bjd->bd", k[:, : t + 1][:, ::-1], v[:, : t + 1])
        v = conv + np.asarray(skip[o * d:(o + 1) * d], np.float64) * v
    y = model.out_proj(jnp.asarray(v * chunks[0], jnp.float32))
    assert _rel_l2(model(u), y) <= 1e-5


# ---------------------------------------------------------------------------------------------------------
# Transformations


@pytest.mark.parametrize("backend", ["xla", pytest.param(None, marks=needs_ffi)])
def test_nnx_jit_grad_and_jax_jit(backend):
    model = _make("hyena", backend=backend)
    _randomise(model, "jit")
    x = _input((2, 96, 16), 10)
    loss = lambda m, x: jnp.mean(m(x) ** 2)  # noqa: E731

    eager_loss, eager_grads = loss(model, x), nnx.grad(loss)(model, x)
    jit_loss, jit_grads = nnx.jit(nnx.value_and_grad(loss))(model, x)
    graphdef, params = nnx.split(model)
    pure_loss = lambda p, x: loss(nnx.merge(graphdef, p), x)  # noqa: E731
    jax_loss, jax_grads = jax.jit(jax.value_and_grad(pure_loss))(params, x)

    np.testing.assert_allclose(jit_loss, eager_loss, rtol=1e-5)
    np.testing.assert_allclose(jax_loss, eager_loss, rtol=1e-5)
    ref = jax.tree.leaves(eager_grads)
    for grads in (jit_grads, jax_grads):
        for g, r in zip(jax.tree.leaves(grads), ref, strict=True):
            assert _rel_l2(g, r) <= 1e-5
    assert all(float(jnp.abs(g).max()) > 0 for g in ref)  # every parameter is trained

    # An SGD step through nnx.jit changes the model in place and lowers the loss.
    @nnx.jit
    def sgd(m, x):
        grads = nnx.grad(loss)(m, x)
        nnx.update(m, jax.tree.map(lambda p, g: p - 0.05 * g, nnx.state(m, nnx.Param), grads))

    sgd(model, x)
    assert float(loss(model, x)) < float(eager_loss)


@pytest.mark.parametrize("backend", ["xla", pytest.param(None, marks=needs_ffi)])
def test_nnx_vmap_over_inputs(backend):
    model = _make("hyena", backend=backend)
    _randomise(model, "vmap")
    x = _input((3, 2, 96, 16), 11)  # vmap over the leading axis, model broadcast
    y = nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))(model, x)
    assert _rel_l2(y, model(x.reshape(6, 96, 16)).reshape(y.shape)) <= 1e-5


@pytest.mark.parametrize("backend", ["xla", pytest.param(None, marks=needs_ffi)])
def test_nnx_vmap_ensemble(backend):
    """An ensemble of layers built with nnx.vmap: filters batched along with the activations."""

    @nnx.vmap(in_axes=0, out_axes=0)
    def create(key):
        return jfn.HyenaOperator(8, 40, backend=backend, filter_args=dict(width=8), rngs=nnx.Rngs(key))

    models = create(jax.random.split(jax.random.key(0), 3))
    x = _input((3, 2, 40, 8), 12)
    y = nnx.vmap(lambda m, x: m(x), in_axes=(0, 0))(models, x)
    grads = nnx.vmap(nnx.grad(lambda m, x: jnp.sum(m(x) ** 2)), in_axes=(0, 0))(models, x)
    graphdef, state = nnx.split(models)
    for i in range(3):
        member = nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))
        assert _rel_l2(y[i], member(x[i])) <= 1e-5
        g = nnx.grad(lambda m, x: jnp.sum(m(x) ** 2))(member, x[i])
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(g),
                        strict=True):
            assert _rel_l2(a[i], b) <= 1e-5


def test_parameter_metadata_and_dtypes():
    conv = jfn.DepthwiseConv1d(
        8, 3, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0),
        kernel_init=nnx.with_metadata(nnx.initializers.lecun_normal(), tag="short-conv"),
        bias_metadata={"tag": "short-bias"})
    assert conv.kernel.dtype == jnp.bfloat16 and conv.bias.dtype == jnp.bfloat16
    assert conv.kernel.get_metadata()["tag"] == "short-conv"
    assert conv.bias.get_metadata()["tag"] == "short-bias"
    long = jfn.LongConv(8, 32, rngs=nnx.Rngs(0), kernel_metadata={"tag": "long"})
    assert long.kernel.shape == (8, 32) and long.kernel.get_metadata()["tag"] == "long"
    # Sharding annotations work the nnx way: with_partitioning under a mesh shards the parameter.
    mesh = jax.make_mesh((len(jax.devices()),), ("model",), axis_types=(jax.sharding.AxisType.Auto,))
    with jax.set_mesh(mesh):
        sharded = jfn.DepthwiseConv1d(
            8 * len(jax.devices()), 3, rngs=nnx.Rngs(0),
            kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, None, "model")))
    assert sharded.kernel.get_metadata()["out_sharding"] == (None, None, "model")
    assert sharded.kernel[...].sharding.spec == jax.sharding.PartitionSpec(None, None, "model")


# ---------------------------------------------------------------------------------------------------------
# hyena_math


def test_positional_features_are_prefixes():
    z_long, t_long = hyena_math.positional_features(100, 100, 7)
    z_short, t_short = hyena_math.positional_features(30, 100, 7)
    assert z_long.shape == (100, 7) and t_long.shape == (100, 1)
    np.testing.assert_array_equal(z_short, z_long[:30])
    np.testing.assert_array_equal(t_short, t_long[:30])
    assert float(t_long[0, 0]) == 0.0 and float(t_long[-1, 0]) == 1.0
    with pytest.raises(ValueError, match="emb_dim"):
        hyena_math.positional_features(10, 10, 4)


def test_exponential_window_reaches_target():
    # Channel 0 reaches the target at t = slow_decay_pct, the last channel at fast_decay_pct.
    t = jnp.asarray([[0.0], [0.3], [0.6]])
    w = hyena_math.exponential_window(t, 5, fast_decay_pct=0.3, slow_decay_pct=0.6, target=1e-2)
    np.testing.assert_allclose(w[0], 1.0)
    np.testing.assert_allclose(w[2, 0], 1e-2, rtol=1e-5)
    np.testing.assert_allclose(w[1, -1], 1e-2, rtol=1e-5)
    assert np.all(np.diff(np.asarray(w[2])) < 0)  # later channels decay faster


def test_squash_and_long_conv_kernel():
    k = jnp.asarray([[0.5, -0.05, 0.02, -0.3]])
    np.testing.assert_allclose(hyena_math.squash(k, 0.1), [[0.4, 0.0, 0.0, -0.2]], rtol=1e-6)
    np.testing.assert_array_equal(hyena_math.squash(k, 0.0), k)
    taps = hyena_math.long_conv_kernel(k, 3, squash_threshold=0.1, decay=True)
    assert taps.shape == (1, 3) and float(taps[0, 0]) == pytest.approx(0.4) and float(taps[0, 1]) == 0.0
    np.testing.assert_array_equal(hyena_math.long_conv_kernel(k, 10, decay=False), k)  # capped at max_len
