"""jff.depthwise_conv1d through the CUDA handlers (issue 4), against float64 and against lax.

GPU only (`@pytest.mark.gpu`; conftest skips these without a GPU and the CUDA build).

To test the CUDA handlers before the whole package builds with CUDA, set JFF_DEPTHWISE_CUDA_LIB to a
shared library built from cuda/depthwise/handler_cuda.cc and depthwise_kernels.cu; its two handlers are
then registered for the CUDA platform here. Run this file alone in that mode (other ops stay CPU-only).
"""

import ctypes
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_flashfft as jff
from jax_flashfft import _ffi
from ref64 import depthwise64, depthwise64_vjp, pad_amounts, rel_l2


def _register_standalone_library():
    path = os.environ.get("JFF_DEPTHWISE_CUDA_LIB")
    if not path or _ffi.cuda_available():
        return
    lib = ctypes.CDLL(path)
    for target, symbol in (("jff_depthwise_fwd", "JffDepthwiseFwdCuda"), ("jff_depthwise_bwd", "JffDepthwiseBwdCuda")):
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="CUDA")
    _ffi._jff_cuda = lib  # conftest's "CUDA build present" check


_register_standalone_library()

pytestmark = pytest.mark.gpu

TOL = {jnp.float32: 1e-6, jnp.bfloat16: 2e-3, jnp.float16: 2e-3}


def _gpu():
    return jax.devices("gpu")[0]


def _assert_close(name, out, ref, tol, abs_ref=None):
    """rel-L2 <= tol, or, where no kernel could meet it, a bound that says why.

    A few dozen half-precision outputs carry a final rounding whose rel-L2 alone can exceed 2e-3: such an
    output passes at 1.5x the error of the float64 reference rounded to the output dtype. A reduction that
    cancels (dw, dbias) passes when its error is within tol of the sum of |terms| (`abs_ref`).
    """
    err = rel_l2(out, ref)
    if err <= tol:
        return
    ref64 = np.asarray(ref, np.float64)
    rounding = rel_l2(np.asarray(ref64.astype(np.dtype(out.dtype)), np.float64), ref64)
    if err <= 1.5 * rounding:
        return
    if abs_ref is not None:
        scale = np.linalg.norm(np.asarray(abs_ref, np.float64)) / max(np.linalg.norm(ref64), 1e-300)
        if err <= tol * scale:
            return
    raise AssertionError(f"{name}: rel-L2 {err:.3e} > {tol:.1e} (rounding floor {rounding:.3e})")


def _check(rng, lead, length, chans, taps, padding, layout, dtype, w_dtype, with_bias):
    dev = _gpu()
    shape = lead + ((length, chans) if layout == "BLH" else (chans, length))
    x = jax.device_put(jnp.asarray(rng.standard_normal(shape), dtype), dev)
    w = jax.device_put(jnp.asarray(rng.standard_normal((taps, chans)) / np.sqrt(taps), w_dtype), dev)
    bias = jax.device_put(jnp.asarray(rng.standard_normal(chans), w_dtype), dev) if with_bias else None
    pad = pad_amounts(padding, taps)

    y, vjp = jax.vjp(lambda x, w, b: jff.depthwise_conv1d(x, w, b, padding=padding, layout=layout), x, w, bias)
    assert y.dtype == dtype
    ref = depthwise64(x, w, bias, pad, layout)
    assert y.shape == ref.shape
    _assert_close("y", y, ref, TOL[dtype])

    dy = jax.device_put(jnp.asarray(rng.standard_normal(y.shape), dtype), dev)
    dx, dw, db = jax.jit(vjp)(dy)
    rdx, rdw, rdb = depthwise64_vjp(dy, x, w, bias, pad, layout)
    # dw and dbias of |dy|, |x|: the sums of |terms|, i.e. how much the reductions can cancel.
    _, adw, adb = depthwise64_vjp(np.abs(np.asarray(dy, np.float64)), np.abs(np.asarray(x, np.float64)), w, bias, pad, layout)
    _assert_close("dx", dx, rdx, TOL[dtype])
    _assert_close("dw", dw, rdw, TOL[dtype], adw)
    if with_bias:
        _assert_close("dbias", db, rdb, TOL[dtype], adb)


# Fast-path K (2, 3, 4, 5, 7), every padding form, rows that are not a multiple of the vector width.
FAST = [
    ((2,), 1000, 264, 3, "same"),
    ((2,), 1000, 264, 4, "same"),
    ((3,), 517, 96, 5, "causal"),
    ((2,), 300, 1032, 7, (1, 8)),
    ((1,), 4100, 40, 2, "valid"),
    ((2, 2), 77, 100, 4, (10, 2)),  # D % 8 == 4: narrower vectors on BLH
    ((2,), 129, 13, 5, "same"),  # odd D: generic path on BLH
    ((2,), 3, 16, 7, "same"),  # K > L
]
# Every other K (generic kernels), even and odd, up to 128.
GENERIC = [
    ((2,), 200, 24, 1, "valid"),
    ((2,), 200, 24, 6, "causal"),
    ((1,), 300, 16, 9, "same"),
    ((2,), 150, 8, 16, (3, 20)),
    ((1,), 400, 8, 128, "causal"),
]
DTYPES = [(jnp.float32, jnp.float32), (jnp.float16, jnp.float32), (jnp.bfloat16, jnp.float32), (jnp.bfloat16, jnp.bfloat16)]


@pytest.mark.parametrize("lead,length,chans,taps,padding", FAST + GENERIC)
@pytest.mark.parametrize("layout", ["BLH", "BHL"])
@pytest.mark.parametrize("dtype,w_dtype", DTYPES)
def test_forward_and_gradients_match_float64(rng, lead, length, chans, taps, padding, layout, dtype, w_dtype):
    _check(rng, lead, length, chans, taps, padding, layout, dtype, w_dtype, with_bias=(taps % 2 == 1))


@pytest.mark.parametrize("layout", ["BLH", "BHL"])
def test_without_bias_and_half_weights(rng, layout):
    _check(rng, (4,), 2048, 256, 5, "causal", layout, jnp.float16, jnp.float16, with_bias=False)


@pytest.mark.parametrize("layout", ["BLH", "BHL"])
def test_matches_lax_on_gpu(rng, layout):
    x = jax.device_put(jnp.asarray(rng.standard_normal((3, 512, 48) if layout == "BLH" else (3, 48, 512)), jnp.float32), _gpu())
    w = jax.device_put(jnp.asarray(rng.standard_normal((4, 48)), jnp.float32), _gpu())
    for padding in ("same", "causal", "valid", 3, (0, 4)):
        ours = jax.jit(lambda x, w: jff.depthwise_conv1d(x, w, padding=padding, layout=layout))(x, w)
        lax_ = jff.depthwise_conv1d(x, w, padding=padding, layout=layout, backend="xla")
        assert rel_l2(ours, lax_) <= 1e-6


@pytest.mark.parametrize("layout", ["BLH", "BHL"])
def test_gradients_are_bitwise_deterministic(rng, layout):
    shape = (4, 4096, 768) if layout == "BLH" else (4, 768, 4096)
    x = jax.device_put(jnp.asarray(rng.standard_normal(shape), jnp.bfloat16), _gpu())
    w = jax.device_put(jnp.asarray(rng.standard_normal((4, 768)), jnp.float32), _gpu())
    b = jax.device_put(jnp.asarray(rng.standard_normal(768), jnp.float32), _gpu())
    loss = lambda x, w, b: (jff.depthwise_conv1d(x, w, b, layout=layout).astype(jnp.float32) ** 2).sum()
    g = jax.jit(jax.grad(loss, (0, 1, 2)))
    first = [np.asarray(a.astype(jnp.float32)) for a in g(x, w, b)]
    for _ in range(3):
        for a, c in zip(first, g(x, w, b)):
            np.testing.assert_array_equal(a, np.asarray(c.astype(jnp.float32)))


def _time_ms(f, *args, reps=20):
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["BLH", "BHL"])
def test_faster_than_lax_conv(rng, layout):
    """Issue 4's headline shape at L=4096: ours must beat lax.conv_general_dilated clearly, fwd and fwd+bwd."""
    B, L, D, K = 16, 4096, 2048, 5
    shape = (B, L, D) if layout == "BLH" else (B, D, L)
    x = jax.device_put(jnp.asarray(rng.standard_normal(shape), jnp.float16), _gpu())
    w = jax.device_put(jnp.asarray(rng.standard_normal((K, D)), jnp.float32), _gpu())
    b = jax.device_put(jnp.asarray(rng.standard_normal(D), jnp.float32), _gpu())

    def fwd(backend):
        return jax.jit(lambda x, w, b: jff.depthwise_conv1d(x, w, b, layout=layout, backend=backend))

    def fwd_bwd(backend):
        def loss(x, w, b):
            y = jff.depthwise_conv1d(x, w, b, layout=layout, backend=backend)
            return jnp.sum(y.astype(jnp.float32))
        return jax.jit(jax.grad(loss, (0, 1, 2)))

    t_f, t_f_lax = _time_ms(fwd(None), x, w, b), _time_ms(fwd("xla"), x, w, b)
    t_fb, t_fb_lax = _time_ms(fwd_bwd(None), x, w, b), _time_ms(fwd_bwd("xla"), x, w, b)
    print(f"{layout} fwd: ours {t_f:.3f} ms, lax {t_f_lax:.3f} ms, x{t_f_lax / t_f:.1f}; "
          f"fwd+bwd: ours {t_fb:.3f} ms, lax {t_fb_lax:.3f} ms, x{t_fb_lax / t_fb:.1f}")
    assert t_f * 3 < t_f_lax
    assert t_fb * 2 < t_fb_lax
