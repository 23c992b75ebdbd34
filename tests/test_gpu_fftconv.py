"""jff.fftconv on a CUDA GPU through the CUDA FFI handlers (cuda/fftconv/, cuda/fftconv_long/).

Covers what the CPU-default tests do not reach: the short kernels (L <= 128; and L <= 256 where the
convolution is linear), the fused kernel up to N = 8192, the
four-step path from N = 16384 up to 2^24, both layouts and all dtypes at those sizes, filter groups
through vmap, gradients against float64 and against the pure-JAX backend, and bitwise reproducibility.
Every check draws fresh random inputs (the seed is printed and recorded in the test report).
"""


import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_flashfft as jff
from ref64 import fftconv64, fftconv64_vjp, rel_l2

pytestmark = pytest.mark.gpu

DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def _tol(dtype, n):
    if dtype == jnp.float32:
        return 1e-5 if n <= 8192 else 3e-5
    return 2e-3 if dtype == jnp.float16 else 1.5e-2


def _gpu():
    return next(d for d in jax.devices() if d.platform == "gpu")


def _inputs(rng, batch, heads, length, klen, layout, dtype, pre=True, post=True, skip=True):
    shape = tuple(batch) + ((heads, length) if layout == "BHL" else (length, heads))
    dev = _gpu()
    put = lambda x: jax.device_put(x, dev)  # noqa: E731
    draw = lambda: put(jnp.asarray(rng.standard_normal(shape), dtype))  # noqa: E731
    return dict(
        u=draw(),
        k=put(jnp.asarray(rng.standard_normal((heads, klen)) / np.sqrt(klen), jnp.float32)),
        pre_gate=draw() if pre else None,
        post_gate=draw() if post else None,
        skip=put(jnp.asarray(rng.standard_normal(heads), jnp.float32)) if skip else None,
    )


def _f64(a):
    return dict(u=a["u"], k=a["k"], pre=a["pre_gate"], post=a["post_gate"], skip=a["skip"])


# (batch dims, H, L, Lk, fft_size): fused sizes, the fused/four-step boundary, long sequences.
FWD_SHAPES = [
    ((3,), 5, 16, 16, None),  # N = 32: the short kernels (L <= 128)
    ((2,), 3, 120, 100, None),  # N = 256, L <= 128: the short kernels too
    ((2, 3), 4, 100, 29, 128),
    ((5,), 3, 7, 3, None),  # N = 16, odd L
    ((2,), 3, 256, 100, 256),  # circular
    ((2,), 3, 256, 200, None),  # N = 512, L = 256, linear: the short kernels' LP = 256
    ((2, 3), 2, 129, 128, 256),  # N = 256 = L + Lk - 1: just past L = 128
    ((2,), 3, 300, 150, None),  # N = 512 (N0 = 2 x 256)
    ((2,), 4, 3000, 1097, None),  # N = 4096
    ((1,), 3, 8192, 8192, 8192),  # largest fused size, circular
    ((2,), 2, 10000, 6000, None),  # N = 16384: four-step
    # The long-N path: "long" in their ids, so that `-k long` (the long path's GPU tests) selects them.
    pytest.param((1,), 2, 65536, 4001, 65536, id="long-64K"),
    pytest.param((1,), 1, 700000, 300000, None, id="long-1M"),  # N = 2^20
]


@pytest.mark.parametrize("batch,heads,length,klen,fft_size", FWD_SHAPES)
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_float64(rng, batch, heads, length, klen, fft_size, layout, dtype):
    a = _inputs(rng, batch, heads, length, klen, layout, dtype)
    y = jax.jit(lambda a: jff.fftconv(**a, fft_size=fft_size, layout=layout))(a)
    assert y.shape == a["u"].shape and y.dtype == a["u"].dtype
    assert y.devices() == {_gpu()}
    ref = fftconv64(**_f64(a), fft_size=fft_size, layout=layout)
    n = fft_size or 1 << (length + klen - 2).bit_length()
    assert rel_l2(y, ref) <= _tol(dtype, n)


def test_largest_fft_size(rng):
    a = _inputs(rng, (1,), 1, (1 << 24) - 3, 1 << 22, "BHL", jnp.float32, pre=False)
    y = jff.fftconv(**a, fft_size=1 << 24)
    assert rel_l2(y, fftconv64(**_f64(a), fft_size=1 << 24)) <= 3e-5


def test_lowers_to_the_cuda_custom_call(rng):
    a = _inputs(rng, (2,), 3, 64, 8, "BHL", jnp.float32)
    hlo = jax.jit(lambda a: jff.fftconv(**a)).lower(a).as_text()
    assert "jff_fftconv_fwd" in hlo


# The backward's big kernel picks its dk accumulator (a shared-memory copy, or slots in global memory) at the first
# launch from each variant's occupancy. On a 228 KB-per-SM GPU (compute capability 9.0) the shared one wins at these
# sizes; at 4K it lost a CTA per SM to an unrelated table for seven sessions and the rule silently chose global.
_VARIANT_SCRIPT = """
import jax, jax.numpy as jnp, jax_flashfft as jff
for n in {sizes}:
    u = jnp.ones((2, 3, n), jnp.{dtype}) * 0.5
    g = jax.grad(lambda u, k: jff.fftconv(u, k, pre_gate=u, post_gate=u, fft_size=n).astype(jnp.float32).sum(),
                 argnums=(0, 1))(u, jnp.ones((3, n), jnp.float32))
    jax.block_until_ready(g)
"""


def _run_script(script, env_extra, *args):
    """`script` in a fresh interpreter with this package importable and `env_extra` set (the switches read their
    environment once per process); the finished process."""
    env = {**os.environ, **env_extra}
    package_parent = str(Path(jff.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_backward_variant_choice(dtype, monkeypatch):
    # Every GPU reports a choice at each size; the expected one is known for 228 KB-per-SM GPUs (compute capability
    # 9.0); elsewhere (e.g. an A100's 164 KB) the rule may rightly keep the global slots.
    hopper = _gpu().compute_capability == "9.0"
    sizes = {2048: "shared", 4096: "shared", 8192: "shared", 16384: "shared", 32768: "shared"}  # 32K: 8 rows shared
    monkeypatch.delenv("JFF_MONARCH_BWD_ACC", raising=False)
    proc = _run_script(_VARIANT_SCRIPT.format(sizes=list(sizes), dtype=dtype), {"JFF_MONARCH_REPORT": "1"})
    name = {"bfloat16": "bf16", "float16": "fp16"}[dtype]
    for n, want in sizes.items():
        line = re.search(rf"monarch backward N={n} {name} .*", proc.stderr)
        assert line is not None, proc.stderr
        assert f": {want if hopper else ''}" in line.group(0) and " dk accumulator " in line.group(0), line.group(0)


# y, du and dk of the long path (64K: N1 = 16; 1M: N1 = 256, the cap of 4 rows) and of the BLH forward (4K and 32K:
# clusters), saved to the file named by argv[1]. Enough rows and tiles that the grids differ: 96 and 64 signal rows
# (tens of CTA rows per column tile by default), 128 and 32 BLH items (about 2 and 4 per co-resident cluster).
_GRID_SCRIPT = """
import sys
import numpy as np, jax, jax.numpy as jnp, jax_flashfft as jff
out = {}
for n, layout, shape in [(1 << 16, "BHL", (2, 48, 1 << 16)), (1 << 20, "BHL", (2, 32, 1 << 20)),
                         (4096, "BLH", (16, 4096, 200)), (32768, "BLH", (8, 32768, 100))]:
    keys = jax.random.split(jax.random.PRNGKey(n), 5)
    u, pre, post, dy = (jax.random.normal(kk, shape, jnp.bfloat16) for kk in keys[:4])
    k = jax.random.normal(keys[4], (shape[1] if layout == "BHL" else shape[2], n), jnp.float32) / n ** 0.5
    y, vjp = jax.vjp(lambda u, k: jff.fftconv(u, k, pre_gate=pre, post_gate=post, fft_size=n, layout=layout), u, k)
    du, dk = vjp(dy)
    for name, x in (("y", y), ("du", du), ("dk", dk)):
        out[f"{layout}{n}_{name}"] = np.asarray(x.astype(jnp.float32))
np.savez(sys.argv[1], **out)
"""


def test_results_do_not_depend_on_the_grid(tmp_path, monkeypatch):
    # The long passes' rows per CTA (JFF_LONG_CTA_ROWS) and the BLH forward's items per CTA or cluster
    # (JFF_MONARCH_BLH_ITEMS) change only which CTA takes which row or tile: every output must be bitwise the same.
    for var in ("JFF_LONG_CTA_ROWS", "JFF_MONARCH_BLH_ITEMS", "JFF_LONG_CHUNK_MB"):
        monkeypatch.delenv(var, raising=False)
    grids = {"default": {}, "one row each": {"JFF_LONG_CTA_ROWS": "1", "JFF_MONARCH_BLH_ITEMS": "1"},
             # the long passes as before session 43; the BLH forward in one persistent wave (its default except at 4K)
             "two waves": {"JFF_LONG_CTA_ROWS": str(1 << 40), "JFF_MONARCH_BLH_ITEMS": "0"}}
    results = {}
    for i, (name, env) in enumerate(grids.items()):
        path = tmp_path / f"{i}.npz"
        _run_script(_GRID_SCRIPT, env, str(path))
        results[name] = np.load(path)
    base = results["default"]
    assert len(base.files) == 12
    for name, got in results.items():
        for key in base.files:
            assert np.isfinite(base[key]).all() and np.abs(base[key]).max() > 0, key
            np.testing.assert_array_equal(got[key], base[key], err_msg=f"{name}: {key}")


# The gradients of problems with one or two dk chunks per channel (a 1 MB slot cap) on 3 CTAs, so that the backward's
# last round of items can go in balanced ranges split across CTAs (JFF_MONARCH_BWD_TAIL, monarch_bwd.cu), saved to
# argv[1].
_TAIL_SCRIPT = """
import sys
import numpy as np, jax, jax.numpy as jnp, jax_flashfft as jff
out = {}
for n, shape in [(16384, (6, 8, 16384)), (32768, (5, 4, 20001)), (8192, (2, 4, 5000)), (4096, (8, 16, 3001))]:
    keys = jax.random.split(jax.random.PRNGKey(n), 6)
    u, pre, post, dy = (jax.random.normal(kk, shape, jnp.bfloat16) for kk in keys[:4])
    k = jax.random.normal(keys[4], shape[1:], jnp.float32) / shape[2] ** 0.5
    skip = jax.random.normal(keys[5], shape[1:2], jnp.float32)
    f = lambda *xs: jff.fftconv(xs[0], xs[1], pre_gate=xs[2], post_gate=xs[3], skip=xs[4], fft_size=n)
    for name, g in zip(("du", "dk", "dpre", "dpost", "dskip"), jax.vjp(f, u, k, pre, post, skip)[1](dy)):
        out[f"{n}_{name}"] = np.asarray(g.astype(jnp.float32))
np.savez(sys.argv[1], **out)
"""


def test_backward_balanced_tail(tmp_path, monkeypatch):
    # Splitting an item's pairs across CTAs changes only dk's and dskip's summation order: du, dpre and dpost must
    # be bitwise those of whole channels by stride, dk and dskip equal to float32 rounding.
    for var in ("JFF_MONARCH_BWD_TAIL", "JFF_MONARCH_BWD_GRID", "JFF_MONARCH_BWD_SLOT_CAP_MB", "JFF_MONARCH_BWD_ACC"):
        monkeypatch.delenv(var, raising=False)
    got, stderr = {}, {}
    for tail in ("0", "1"):
        path = tmp_path / f"{tail}.npz"
        proc = _run_script(_TAIL_SCRIPT, {"JFF_MONARCH_BWD_TAIL": tail, "JFF_MONARCH_BWD_GRID": "3",
                                          "JFF_MONARCH_BWD_SLOT_CAP_MB": "1", "JFF_MONARCH_REPORT": "1"}, str(path))
        got[tail], stderr[tail] = np.load(path), proc.stderr
    assert "balanced tail" not in stderr["0"]
    if _gpu().compute_capability == "9.0":  # the shared-accumulator variant, which has the tail, is the choice there
        for n in (4096, 8192, 16384, 32768):
            assert re.search(rf"monarch backward N={n} bf16 .*: balanced tail", stderr["1"]), stderr["1"]
    assert len(got["0"].files) == 20
    for key in got["0"].files:
        whole, split = got["0"][key], got["1"][key]
        assert np.isfinite(whole).all() and np.abs(whole).max() > 0, key
        if key.endswith(("dk", "dskip")):
            np.testing.assert_allclose(split, whole, rtol=0, atol=1e-5 * np.abs(whole).max(), err_msg=key)
        else:
            np.testing.assert_array_equal(split, whole, err_msg=key)


GRAD_SHAPES = [
    ((3,), 4, 200, 57, None),  # N = 256 = L + Lk - 1 (the short kernels under the switch)
    ((3,), 4, 40, 9, None),  # N = 64: the short kernels
    ((70,), 2, 128, 128, 128),  # the short backward's rows over several blocks, circular
    ((2,), 3, 256, 256, None),  # N = 512: a full-length filter on L = 256 (as above)
    ((2,), 3, 4096, 4096, 4096),
    ((2,), 2, 12000, 5000, None),  # four-step
    pytest.param((1,), 1, 300000, 200000, 1 << 19, id="long-512K"),  # the long path, circular
]


@pytest.mark.parametrize("batch,heads,length,klen,fft_size", GRAD_SHAPES)
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("gates", [(True, True, True), (False, True, False), (True, False, True), (False, False, False)])
def test_gradients_match_float64_and_xla(rng, batch, heads, length, klen, fft_size, layout, dtype, gates):
    a = _inputs(rng, batch, heads, length, klen, layout, dtype, *gates)
    names = [n for n in ("u", "k", "pre_gate", "post_gate", "skip") if a[n] is not None]
    dy = jax.device_put(jnp.asarray(rng.standard_normal(a["u"].shape), dtype), _gpu())

    def grads(backend):
        def f(*xs):
            kw = dict(a, **dict(zip(names, xs)))
            return jff.fftconv(**kw, fft_size=fft_size, layout=layout, backend=backend)

        return dict(zip(names, jax.jit(lambda *xs: jax.vjp(f, *xs)[1](dy))(*[a[n] for n in names])))

    ours, xla = grads(None), grads("xla")
    du, dk, dpre, dpost, dskip = fftconv64_vjp(dy, **_f64(a), fft_size=fft_size, layout=layout)
    expected = dict(u=du, k=dk, pre_gate=dpre, post_gate=dpost, skip=dskip)
    n = fft_size or 1 << (length + klen - 2).bit_length()
    for name in names:
        g = ours[name]
        assert g.dtype == a[name].dtype and g.shape == a[name].shape, name
        tol = _tol(dtype, n) * (2 if name in ("k", "skip") else 1)
        err = rel_l2(g, expected[name])
        assert err <= tol, (name, err)
        # The pure-JAX oracle carries its own fp32 error: ours must be as close to it as both are to float64.
        assert rel_l2(g, xla[name]) <= tol + rel_l2(xla[name], expected[name]), name


@pytest.mark.parametrize("length,klen,dtype,tol,tol_k",
                         [(60, 30, jnp.bfloat16, 1e-2, 2e-2), (5000, 700, jnp.float32, 1e-4, 1e-4),
                          (70000, 9000, jnp.bfloat16, 2e-2, 4e-2)])
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
def test_vmap_over_filters_uses_filter_groups(rng, layout, length, klen, dtype, tol, tol_k):
    # vmap over (u, k) folds the mapped axis into batch rows and filter groups (G > 1, R = B); short (BHL),
    # generic and long-N kernels.
    a = _inputs(rng, (3,), 4, length, klen, layout, dtype, pre=True, post=False, skip=True)
    us = jnp.stack([a["u"], 2 * a["u"]])
    ks = jnp.stack([a["k"], -0.5 * a["k"]])

    def loss(backend):
        def one(u, k):
            return jff.fftconv(u, k, pre_gate=a["pre_gate"], skip=a["skip"], layout=layout, backend=backend)

        return jax.jit(jax.value_and_grad(
            lambda us, ks: (jax.vmap(one)(us, ks).astype(jnp.float32) ** 2).sum(), argnums=(0, 1)))

    (v1, (gu1, gk1)), (v2, (gu2, gk2)) = loss(None)(us, ks), loss("xla")(us, ks)
    assert abs(float(v1) - float(v2)) <= tol * abs(float(v2))
    assert rel_l2(gu1, gu2) <= tol and rel_l2(gk1, gk2) <= tol_k


def test_many_rows(rng):
    # Enough rows for many blocks per launch, fused and four-step.
    for length, klen in ((1000, 1000), (9000, 3000)):
        a = _inputs(rng, (8,), 96, length, klen, "BLH", jnp.bfloat16)
        y = jax.jit(lambda a: jff.fftconv(**a, layout="BLH"))(a)
        assert rel_l2(y, fftconv64(**_f64(a), layout="BLH")) <= 1.5e-2


# short, fused, generic and long-N kernels
@pytest.mark.parametrize("length,klen", [(100, 20), (300, 200), (20000, 9000), (100000, 70000)])
def test_bitwise_reproducible(rng, length, klen):
    a = _inputs(rng, (6,), 3, length, klen, "BHL", jnp.bfloat16)
    f = jax.jit(jax.grad(
        lambda u, k, p, q, s: (jff.fftconv(u, k, pre_gate=p, post_gate=q, skip=s).astype(jnp.float32) ** 2).sum(),
        argnums=(0, 1, 2, 3, 4)))
    args = (a["u"], a["k"], a["pre_gate"], a["post_gate"], a["skip"])
    first, second = f(*args), f(*args)
    for x, y in zip(first, second):
        np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


@pytest.mark.parametrize("fft_size,length,heads", [
    (64, 64, 16), (128, 100, 20), (256, 256, 6), (256, 201, 24), (512, 500, 16), (1024, 1000, 40), (2048, 2048, 16),
    (4096, 4096, 6), (4096, 3001, 32),
    (8192, 8192, 9), (16384, 10000, 16), (32768, 32768, 8), (1 << 18, 200000, 6)])
def test_blh_matches_bhl(rng, fft_size, length, heads):
    """16-bit BLH against BHL on the same data. The forward reads BLH natively at the tensor-core sizes
    (sm_90: the same big kernel with a cluster moving head tiles) and runs the BHL kernels through
    transposes at long N; either way y is the BHL y bitwise, except where BHL takes the one-warp cp.async
    kernel (N = 256/1024 with L % 8 == 0), which rounds once less: there both are checked against float64.
    The backward runs the BHL kernels through transposes: with the same dy, gradients are bitwise equal."""
    a = _inputs(rng, (4,), heads, length, length, "BHL", jnp.bfloat16)
    swap = lambda x: None if x is None else jnp.swapaxes(x, -1, -2)  # noqa: E731
    t = {**a, "u": swap(a["u"]), "pre_gate": swap(a["pre_gate"]), "post_gate": swap(a["post_gate"])}
    names = ("u", "k", "pre_gate", "post_gate", "skip")

    def run(inputs, layout):
        f = lambda *xs: jff.fftconv(**dict(zip(names, xs)), fft_size=fft_size, layout=layout)  # noqa: E731
        return jax.vjp(f, *(inputs[n] for n in names))

    (ya, vjp_a), (yt, vjp_t) = run(a, "BHL"), run(t, "BLH")
    dy = jnp.asarray(rng.standard_normal(ya.shape), jnp.bfloat16)
    ga, gt = vjp_a(dy), vjp_t(swap(dy))
    if fft_size in (256, 1024) and length % 8 == 0:
        ref = fftconv64(**_f64(a), fft_size=fft_size, layout="BHL")
        assert rel_l2(ya, ref) <= 1e-2 and rel_l2(swap(yt), ref) <= 1e-2
    else:
        np.testing.assert_array_equal(np.asarray(swap(yt)), np.asarray(ya))
    for name, x, y in zip(names, ga, gt):
        np.testing.assert_array_equal(np.asarray(swap(y) if name in ("u", "pre_gate", "post_gate") else y),
                                      np.asarray(x), err_msg=name)


# ---------------------------------------------------------------------------------------------------
# The long-N path (cuda/fftconv_long/: N = 65536 .. 2^24, outer pass + fused inner step + outer inverse),
# against float64 at the bars. (batch dims, H, L, Lk, fft_size); fft_size None = causal, N >= L+Lk-1.
LONG_BARS = {jnp.float32: 1e-5, jnp.bfloat16: 2e-2, jnp.float16: 5e-3}
LONG_FWD_SHAPES = [
    ((2,), 3, 65536, 65536, 65536),  # 16 x 4K, circular
    ((1,), 2, 65535, 4001, 1 << 17),  # 32 x 4K
    ((2,), 1, 131073, 131072, None),  # N = 2^18 = 32 x 8K, causal
    ((1,), 2, 1 << 19, 77777, 1 << 19),  # 32 x 16K
    ((1,), 2, (1 << 19) - 5, (1 << 19) + 3, None),  # N = 2^20 = 256 x 4K
    ((1,), 1, 2_000_001, 2_097_152, 1 << 21),  # 512 x 4K
    ((1,), 1, 1 << 22, 3_000_000, 1 << 22),  # 512 x 8K
]


@pytest.mark.parametrize("batch,heads,length,klen,fft_size", LONG_FWD_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_long_forward_matches_float64(rng, batch, heads, length, klen, fft_size, dtype):
    a = _inputs(rng, batch, heads, length, klen, "BHL", dtype)
    y = jax.jit(lambda a: jff.fftconv(**a, fft_size=fft_size))(a)
    err = rel_l2(y, fftconv64(**_f64(a), fft_size=fft_size))
    assert err <= LONG_BARS[dtype], err


@pytest.mark.parametrize("dtype,n", [(jnp.bfloat16, 1 << 23), (jnp.float16, 1 << 24), (jnp.bfloat16, 1 << 24),
                                     (jnp.float32, 1 << 23)])
def test_long_forward_largest_sizes(rng, dtype, n):
    # B = H = 1 (the 16M check); 512 x 16K and 512 x 32K.
    a = _inputs(rng, (1,), 1, n - 3, n // 3, "BHL", dtype)
    y = jff.fftconv(**a, fft_size=n)
    err = rel_l2(y, fftconv64(**_f64(a), fft_size=n))
    assert err <= LONG_BARS[dtype], err


@pytest.mark.parametrize("pre,post,skip", [(True, True, True), (False, False, False), (True, False, False),
                                           (False, True, True)])
@pytest.mark.parametrize("dtype", DTYPES)
# 128K = 32 x 4K at L = N: on Hopper the du / dpre pass's TMA stages and box stores (whole 16-byte rows only).
@pytest.mark.parametrize("length,klen,fft_size", [(65536, 30001, 65536), (131072, 50001, 131072),
                                                   (300001, 400000, None)])
def test_long_gradients_match_float64(rng, pre, post, skip, dtype, length, klen, fft_size):
    a = _inputs(rng, (2,), 3, length, klen, "BHL", dtype, pre, post, skip)
    names = [n for n in ("u", "k", "pre_gate", "post_gate", "skip") if a[n] is not None]
    dy = jax.device_put(jnp.asarray(rng.standard_normal(a["u"].shape), dtype), _gpu())

    def f(*xs):
        return jff.fftconv(**dict(a, **dict(zip(names, xs))), fft_size=fft_size)

    got = dict(zip(names, jax.jit(lambda *xs: jax.vjp(f, *xs)[1](dy))(*[a[n] for n in names])))
    du, dk, dpre, dpost, dskip = fftconv64_vjp(dy, **_f64(a), fft_size=fft_size)
    expected = dict(u=du, k=dk, pre_gate=dpre, post_gate=dpost, skip=dskip)
    for name in names:
        assert got[name].dtype == a[name].dtype and got[name].shape == a[name].shape, name
        err = rel_l2(got[name], expected[name])
        assert err <= LONG_BARS[dtype] * (2 if name in ("k", "skip") else 1), (name, err)


def _check_big_bf16_64k(rng, batch, heads, klen, hs):
    """Gated bf16 at N = 64K, shapes past the long path's 1 GiB workspace budget: y and the gradients of the channels
    `hs` against float64 (dk sums over the batch, so all of b for those channels)."""
    # Drawn on the GPU: GBs of host normals would take a minute.
    keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(2**31))), 4)
    with jax.default_device(_gpu()):
        u, pre, post, dy = (jax.random.normal(kk, (batch, heads, 65536), jnp.bfloat16) for kk in keys)
    small = _inputs(rng, (1,), heads, 1, klen, "BHL", jnp.float32)
    a = dict(u=u, k=small["k"], pre_gate=pre, post_gate=post, skip=small["skip"])
    names = ("u", "k", "pre_gate", "post_gate", "skip")

    def f(*xs):
        return jff.fftconv(**dict(zip(names, xs)), fft_size=65536)

    y, grads = jax.jit(lambda *xs: (lambda y, vjp: (y, vjp(dy)))(*jax.vjp(f, *xs)))(*[a[n] for n in names])
    part = dict(u=a["u"][:, hs], k=a["k"][hs], pre=a["pre_gate"][:, hs], post=a["post_gate"][:, hs], skip=a["skip"][hs])
    assert rel_l2(y[:, hs], fftconv64(**part, fft_size=65536)) <= 2e-2
    expected = fftconv64_vjp(dy[:, hs], **part, fft_size=65536)
    for name, g, e in zip(names, grads, expected):
        got = g[hs] if name in ("k", "skip") else g[:, hs]
        assert rel_l2(got, e) <= (4e-2 if name in ("k", "skip") else 2e-2), name


def test_long_chunks_rows_filters_and_batch(rng):
    """The forward in two chunks of rows (8192 rows of 64K bf16 per chunk), the backward in two chunks of batch
    entries (8 of H = 1024); the rows and filters of the second chunk checked."""
    _check_big_bf16_64k(rng, 9, 1024, 5000, slice(1020, 1024))


def test_long_channel_chunks(rng):
    """One batch entry's rows past the budget (8200 channels of 64K bf16: 1.0 GiB): the backward in chunks of 4100
    channels, one batch entry at a time, dk's spectrum and workspace per chunk; the channels on both sides of the
    chunk boundary checked, summed over both batch entries."""
    _check_big_bf16_64k(rng, 2, 8200, 3000, slice(4097, 4103))


def test_long_filter_spectra_in_several_calls(rng):
    # At 4M the fp32 filter scratch holds 64 filters per call: H = 70 needs two.
    a = _inputs(rng, (1,), 70, 1 << 22, 1 << 20, "BHL", jnp.bfloat16, skip=True)
    y = jax.jit(lambda a: jff.fftconv(**a, fft_size=1 << 22))(a)
    hs = slice(64, 70)
    part = dict(u=a["u"][:, hs], k=a["k"][hs], pre=a["pre_gate"][:, hs], post=a["post_gate"][:, hs], skip=a["skip"][hs])
    assert rel_l2(y[:, hs], fftconv64(**part, fft_size=1 << 22)) <= 2e-2
