"""jff.fftconv through the FFI kernels on the default device (CPU here, CUDA on a GPU machine) against float64."""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_flashfft as jff
from ref64 import f64, fftconv64, fftconv64_vjp, rel_l2

TOL = {jnp.float32: 1e-5, jnp.bfloat16: 1e-2, jnp.float16: 1e-2}
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def _act_shape(lead, heads, length, layout):
    return tuple(lead) + ((heads, length) if layout == "BHL" else (length, heads))


def _inputs(rng, lead, heads, length, klen, layout, dtype, pre, post, skip):
    shape = _act_shape(lead, heads, length, layout)
    draw = lambda s: jnp.asarray(rng.standard_normal(s), dtype)  # noqa: E731
    u = draw(shape)
    k = jnp.asarray(rng.standard_normal((heads, klen)) / np.sqrt(klen), jnp.float32)
    return dict(
        u=u,
        k=k,
        pre_gate=draw(shape) if pre else None,
        post_gate=draw(shape) if post else None,
        skip=jnp.asarray(rng.standard_normal(heads), jnp.float32) if skip else None,
    )


def _f64_args(a):
    return dict(u=a["u"], k=a["k"], pre=a["pre_gate"], post=a["post_gate"], skip=a["skip"])


# (lead dims, H, L, Lk, fft_size)
SHAPES = [
    ((2,), 3, 16, 16, None),
    ((), 5, 37, 11, None),  # no batch dims, odd H, odd L, Lk < L
    ((2, 3), 1, 1, 1, None),  # L = 1, Lk = 1, two leading dims, H = 1
    ((3,), 4, 20, 33, None),  # Lk > L
    ((2,), 3, 64, 64, 64),  # explicit N = L: circular
    ((1,), 2, 50, 9, 128),  # explicit N larger than needed
    ((2,), 7, 300, 300, None),
]


@pytest.mark.parametrize("lead,heads,length,klen,fft_size", SHAPES)
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_matches_float64(rng, lead, heads, length, klen, fft_size, layout, dtype):
    a = _inputs(rng, lead, heads, length, klen, layout, dtype, True, True, True)
    y = jff.fftconv(**a, fft_size=fft_size, layout=layout)
    assert y.shape == a["u"].shape and y.dtype == a["u"].dtype
    ref = fftconv64(**_f64_args(a), fft_size=fft_size, layout=layout)
    assert rel_l2(y, ref) <= TOL[dtype]


@pytest.mark.parametrize("pre,post,skip", list(itertools.product([False, True], repeat=3)))
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
def test_every_gate_combination(rng, pre, post, skip, layout):
    a = _inputs(rng, (2,), 3, 24, 7, layout, jnp.float32, pre, post, skip)
    y = jff.fftconv(**a, layout=layout)
    assert rel_l2(y, fftconv64(**_f64_args(a), layout=layout)) <= 1e-5


GRAD_SHAPES = [((2,), 3, 16, 16, None), ((), 5, 37, 11, None), ((2, 2), 1, 1, 1, None), ((2,), 3, 64, 64, 64)]


@pytest.mark.parametrize("lead,heads,length,klen,fft_size", GRAD_SHAPES)
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gates", [(True, True, True), (False, True, False), (True, False, True), (False, False, False)])
def test_gradients_match_float64(rng, lead, heads, length, klen, fft_size, layout, dtype, gates):
    a = _inputs(rng, lead, heads, length, klen, layout, dtype, *gates)
    names = [n for n in ("u", "k", "pre_gate", "post_gate", "skip") if a[n] is not None]
    dy = jnp.asarray(rng.standard_normal(a["u"].shape), dtype)

    def f(*xs):
        kw = dict(a, **dict(zip(names, xs)))
        return jff.fftconv(**kw, fft_size=fft_size, layout=layout)

    y, vjp = jax.vjp(f, *[a[n] for n in names])
    grads = dict(zip(names, vjp(dy)))
    du, dk, dpre, dpost, dskip = fftconv64_vjp(dy, **_f64_args(a), fft_size=fft_size, layout=layout)
    expected = dict(u=du, k=dk, pre_gate=dpre, post_gate=dpost, skip=dskip)
    for n in names:
        assert grads[n].dtype == a[n].dtype and grads[n].shape == a[n].shape, n
        # dk and dskip are reductions over the batch: allow them twice the tolerance.
        tol = TOL[dtype] * (2 if n in ("k", "skip") else 1)
        assert rel_l2(grads[n], expected[n]) <= tol, (n, rel_l2(grads[n], expected[n]))


def test_matches_xla_backend_under_jit(rng):
    a = _inputs(rng, (2,), 4, 100, 30, "BLH", jnp.float32, True, True, True)
    ours = jax.jit(lambda a: jff.fftconv(**a, layout="BLH"))(a)
    xla = jax.jit(lambda a: jff.fftconv(**a, layout="BLH", backend="xla"))(a)
    assert rel_l2(ours, xla) <= 1e-5


def test_backend_environment_variable(monkeypatch, rng):
    a = _inputs(rng, (2,), 3, 16, 5, "BHL", jnp.float32, False, False, False)
    monkeypatch.setenv("JFF_FFTCONV_BACKEND", "xla")
    jaxpr = str(jax.make_jaxpr(lambda u, k: jff.fftconv(u, k))(a["u"], a["k"]))
    assert "fft" in jaxpr and "jff_fftconv" not in jaxpr
    monkeypatch.setenv("JFF_FFTCONV_BACKEND", "ffi")
    monkeypatch.setenv("JFF_BACKEND", "xla")
    assert "jff_fftconv_fwd" in str(jax.make_jaxpr(lambda u, k: jff.fftconv(u, k))(a["u"], a["k"]))
    monkeypatch.setenv("JFF_FFTCONV_BACKEND", "cuda")
    with pytest.raises(ValueError, match="JFF_FFTCONV_BACKEND"):
        jff.fftconv(a["u"], a["k"])


def test_kernel_with_leading_one_is_squeezed_and_its_gradient_keeps_shape(rng):
    u = jnp.asarray(rng.standard_normal((2, 3, 16)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((1, 3, 8)), jnp.bfloat16)
    dk = jax.grad(lambda k: jff.fftconv(u, k).sum())(k)
    assert dk.shape == (1, 3, 8) and dk.dtype == jnp.bfloat16
    expected = fftconv64_vjp(np.ones(u.shape), u, f64(k)[0])[1]
    assert rel_l2(dk[0], expected) <= 1e-2


def test_deterministic(rng):
    a = _inputs(rng, (8,), 3, 200, 50, "BHL", jnp.bfloat16, True, True, True)
    f = jax.jit(jax.grad(lambda u, k, s: (jff.fftconv(u, k, skip=s, pre_gate=a["pre_gate"]).astype(jnp.float32) ** 2).sum(), argnums=(0, 1, 2)))
    first = f(a["u"], a["k"], a["skip"])
    second = f(a["u"], a["k"], a["skip"])
    for x, y in zip(first, second):
        np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


def test_every_output_element_written(rng):
    # A large, non-zero input whose exact convolution has no zeros: an unwritten output would show as 0/garbage.
    u = jnp.asarray(rng.uniform(1.0, 2.0, (3, 5, 257)), jnp.float32)
    k = jnp.asarray(rng.uniform(1.0, 2.0, (5, 3)), jnp.float32)
    y = np.asarray(jff.fftconv(u, k))
    assert np.all(np.isfinite(y)) and np.all(y >= 0.99)


def test_zero_size_batch():
    u = jnp.zeros((0, 3, 16), jnp.float32)
    k = jnp.ones((3, 4), jnp.float32)
    assert jff.fftconv(u, k).shape == (0, 3, 16)


# --------------------------------------------------------------------------- errors, at trace time


def _ok():
    return jnp.ones((2, 3, 16), jnp.float32), jnp.ones((3, 4), jnp.float32)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(u=jnp.ones((16,), jnp.float32)), ValueError, "u must have at least 2"),
        (dict(k=jnp.ones((4, 4), jnp.float32)), ValueError, "k has 4 channels but u has H = 3"),
        (dict(k=jnp.ones((2, 3, 4), jnp.float32)), ValueError, "k must have shape"),
        (dict(k=jnp.ones((3, 0), jnp.float32)), ValueError, "Lk >= 1"),
        (dict(u=jnp.ones((2, 3, 16), jnp.int32)), TypeError, "u must be float16, bfloat16 or float32"),
        (dict(u=jnp.ones((2, 3, 16), jnp.complex64)), TypeError, "u must be"),
        (dict(k=jnp.ones((3, 4), jnp.int32)), TypeError, "k must have a floating-point dtype"),
        (dict(pre_gate=jnp.ones((2, 3, 15), jnp.float32)), ValueError, "pre_gate must have u's shape"),
        (dict(post_gate=jnp.ones((2, 3, 16), jnp.bfloat16)), TypeError, "post_gate must have u's dtype"),
        (dict(skip=jnp.ones((4,), jnp.float32)), ValueError, r"skip must have shape \(H,\)"),
        (dict(fft_size=8), ValueError, r"fft_size must be >= max\(L, Lk\)"),
        (dict(fft_size=48), ValueError, "power of two"),
        (dict(fft_size=1 << 25), ValueError, "at most"),
        (dict(fft_size=16.0), ValueError, "power of two"),
        (dict(layout="BTH"), ValueError, "layout must be one of"),
        (dict(backend="torch"), ValueError, "backend must be one of"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, exc, match):
    u, k = _ok()
    args = dict(u=u, k=k)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        jff.fftconv(args.pop("u"), args.pop("k"), **args)


def test_sequence_too_long_for_linear_convolution():
    u = jax.ShapeDtypeStruct((1, 1, 1 << 24), jnp.float32)
    k = jax.ShapeDtypeStruct((1, 2), jnp.float32)
    with pytest.raises(ValueError, match="needs an FFT of size"):
        jax.eval_shape(jff.fftconv, u, k)


@pytest.mark.parametrize("dtype,fft_size,prepared", [
    (jnp.bfloat16, 1 << 16, True), (jnp.float16, 1 << 24, True), (jnp.float32, 1 << 23, True),
    (jnp.float32, 1 << 24, False), (jnp.bfloat16, 1 << 15, False)])
@pytest.mark.parametrize("layout", ["BHL", "BLH"])
@pytest.mark.parametrize("platform", ["cuda", "cpu"])
def test_long_sizes_prepare_the_filter_spectrum_once(dtype, fft_size, prepared, layout, platform):
    """At the long kernels' sizes a jitted training step computes k's spectrum K' once: one
    jff_fftconv_filter_spectrum call, whose (G, H, S) result both the forward and the backward take (on every
    platform, so that one program runs everywhere); elsewhere no such call and no such operand."""
    from jax_flashfft.fftconv import _prepared_spectrum_floats

    shape = (2, 3, 16) if layout == "BHL" else (2, 16, 3)
    u = jax.ShapeDtypeStruct(shape, dtype)
    k = jax.ShapeDtypeStruct((3, 16), jnp.float32)
    skip = jax.ShapeDtypeStruct((3,), jnp.float32)

    def loss(u, k, skip):
        return jnp.sum(jff.fftconv(u, k, skip=skip, fft_size=fft_size, layout=layout).astype(jnp.float32) ** 2)

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    text = fn.trace(u, k, skip).lower(lowering_platforms=(platform,)).as_text()
    calls = re.findall(r"custom_call @(jff_fftconv_\w+)\((.*)", text)
    assert sorted(name for name, _ in calls) == sorted(
        ["jff_fftconv_fwd", "jff_fftconv_bwd"] + ["jff_fftconv_filter_spectrum"] * prepared), calls
    if prepared:
        floats = _prepared_spectrum_floats(fft_size, dtype == jnp.bfloat16)  # half as many for bfloat16 data
        kspec_type = f"tensor<1x3x{floats}xf32>"
        assert all(kspec_type in rest for name, rest in calls), calls
    if prepared and platform == "cpu" and fft_size <= 1 << 16:
        # K' is dead after the backward, so the backward's kspec_ws result takes its buffer: no copy of K'.
        compiled = fn.lower(*(jnp.zeros(x.shape, x.dtype) for x in (u, k, skip))).compile().as_text()
        kspec_shape = f"f32[1,3,{floats}]"
        assert not [line for line in compiled.splitlines() if kspec_shape in line and " copy(" in line]


def _blh_grad_lowered(dtype, length, platform):
    """The lowered text of a jitted value_and_grad through fftconv on BLH activations (L = Lk = length)."""
    u = jax.ShapeDtypeStruct((2, length, 6), dtype)
    k = jax.ShapeDtypeStruct((6, length), jnp.float32)

    def loss(u, k):
        return jnp.sum(jff.fftconv(u, k, layout="BLH").astype(jnp.float32))

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).trace(u, k).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize(
    "dtype,length,fwd_layout,bwd_layout",
    # L = Lk = length, fft_size=None: N is the power of two >= 2 * length - 1.
    [(jnp.bfloat16, 512, 1, 0), (jnp.float16, 16384, 1, 0), (jnp.bfloat16, 100, 1, 0), (jnp.float32, 512, 1, 1),
     (jnp.bfloat16, 64, 1, 0), (jnp.float16, 5, 1, 0), (jnp.float32, 64, 1, 1), (jnp.float16, 20000, 0, 0), (jnp.bfloat16, 40000, 0, 0), (jnp.float32, 40000, 0, 0),
     (jnp.float32, 1 << 22, 0, 0), (jnp.float32, (1 << 22) + 1, 1, 1), (jnp.bfloat16, (1 << 22) + 1, 0, 0)],
)
def test_blh_lowering_for_cuda_picks_the_kernels_layout(dtype, length, fwd_layout, bwd_layout):
    """Lowered for CUDA (no GPU needed), BLH calls a kernel with layout BHL (0) through transposes where only
    BHL kernels take the size: the long-N path (N = 65536..2^24, float32 up to 2^23) both ways and the
    tensor-core backward (16-bit N <= 128 and 256..32768), whose forward reads BLH natively (1); elsewhere
    (the generic kernels: float32 up to N = 32768 and at 2^24) the native BLH call (1).
    Lowered for CPU, BLH stays native."""
    cuda = _blh_grad_lowered(dtype, length, "cuda")
    calls = re.findall(r"custom_call @jff_fftconv_(fwd|bwd)\(.*?layout = (\d+) : i32", cuda)
    assert sorted(calls) == [("bwd", str(bwd_layout)), ("fwd", str(fwd_layout))], calls
    cpu = _blh_grad_lowered(dtype, length, "cpu")
    assert set(re.findall(r"layout = (\d+) : i32", cpu)) == {"1"}

