"""The FFI targets called directly (jax.ffi.ffi_call on the canonical shapes of cuda/README.md), on CPU.

Every result is compared with a float64 numpy implementation of the contract, computed from the same
(rounded) inputs. Outputs are poisoned with NaN before each call (a donated NaN buffer that XLA hands
to the handler as its result buffer), so an element the handler forgets to write fails the test.
The error tests pass bad shapes and attributes straight to the targets, bypassing the Python layer's
checks, and expect an error that names the problem.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax_flashfft._ffi as _ffi
# K''s last axis at a long size; the handlers check it against their own split table (long_plan.h).
from jax_flashfft.fftconv import _prepared_spectrum_floats as prepared_floats

pytestmark = pytest.mark.skipif(not _ffi.cpu_available(), reason="CPU extension not built")

BHL, BLH = 0, 1
DTYPES = {"f32": np.float32, "bf16": jnp.bfloat16, "f16": np.float16}
TOL = {"f32": 1e-5, "bf16": 1e-2, "f16": 1e-2}
F32_TOL = 1e-5  # float32 results (dk, dskip, dw, dbias) are computed in double whatever u's dtype


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _f64(x):
    return None if x is None else np.asarray(x).astype(np.float64)


def _rel_l2(out, ref) -> float:
    out, ref = _f64(out), _f64(ref)
    assert out.shape == ref.shape, (out.shape, ref.shape)
    assert np.isfinite(out).all(), "non-finite output: an element was not written or overflowed"
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom > 0 else 1.0))


def _cpu(x):
    return jax.device_put(x, jax.devices("cpu")[0])


def _spec(shape, dtype):
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def _absent(dtype):
    return np.zeros((0,), dtype)


def poisoned_call(target, result_specs, operands, aliases=None, **attrs):
    """Runs `target` with every non-empty result buffer pre-filled with NaN (but those that `aliases`, a
    {operand index: result index} dict passed on to ffi_call, makes aliases of operands).

    The NaN buffers are donated arguments of a jit whose outputs are exactly the custom call's results,
    so XLA aliases each result to its poison buffer and the handler writes into it. The check that the
    returned arrays still live at the poison buffers' addresses, and that the compiled module has no
    copy, proves the handler saw the poison rather than fresh memory.
    """
    result_specs = tuple(result_specs)
    aliases = aliases or {}
    poisoned = [i for i, s in enumerate(result_specs) if int(np.prod(s.shape)) > 0 and i not in aliases.values()]

    def run(*args):  # empty results stay inside: returning them would add copies of constants
        outs = jax.ffi.ffi_call(target, result_specs, input_output_aliases=aliases)(*args[len(poisoned):], **attrs)
        # An aliased result is returned too: its donated operand can only become a jit output.
        return tuple(outs[i] for i in poisoned) + tuple(outs[i] for i in aliases.values())

    poisons = [_cpu(jnp.full(result_specs[i].shape, jnp.nan, result_specs[i].dtype)) for i in poisoned]
    operands = [_cpu(o) for o in operands]
    addresses = [p.unsafe_buffer_pointer() for p in poisons]
    compiled = (
        # Aliased operands are donated too, so that XLA need not copy them.
        jax.jit(run, donate_argnums=tuple(range(len(poisoned))) + tuple(len(poisoned) + i for i in aliases),
                keep_unused=True).lower(*poisons, *operands).compile()
    )
    assert " copy(" not in compiled.as_text(), "XLA copies the result, so the poison would not reach the handler"
    outs = compiled(*poisons, *operands)[:len(poisoned)]
    for out, address in zip(outs, addresses):
        assert out.unsafe_buffer_pointer() == address, "result was not written into the poisoned buffer"
    results = [np.zeros(s.shape, s.dtype) for s in result_specs]
    for i, out in zip(poisoned, outs):
        results[i] = np.asarray(out)
    return results


# ---------------------------------------------------------------------------------------------------
# float64 references of the contract
# ---------------------------------------------------------------------------------------------------


def _to_bhl(a, layout):
    return a if layout == BHL else np.swapaxes(a, 1, 2)


def fftconv_ref(u, k, pre, post, skip, dy, *, n, layout, rows_per_group):
    """Forward y and backward (du, dk, dpre, dpost, dskip) of cuda/README.md in float64, by FFT."""
    u, k, pre, post, skip, dy = map(_f64, (u, k, pre, post, skip, dy))
    u = _to_bhl(u, layout)
    pre = None if pre is None else _to_bhl(pre, layout)
    post = None if post is None else _to_bhl(post, layout)
    dy = None if dy is None else _to_bhl(dy, layout)
    B, H, L = u.shape
    G, _, Lk = k.shape
    g = (np.arange(B) // rows_per_group) % G
    v = u if pre is None else u * pre
    K = np.fft.rfft(k, n=n)[g]  # (B, H, n//2+1)
    z = np.fft.irfft(np.fft.rfft(v, n=n) * K, n=n)[..., :L]
    s = 0.0 if skip is None else skip[g][..., None]
    out = z + s * v
    y = out if post is None else post * out
    back = lambda a: a if layout == BHL else np.swapaxes(a, 1, 2)  # noqa: E731
    if dy is None:
        return back(y)
    dz = dy if post is None else dy * post
    dv = np.fft.irfft(np.fft.rfft(dz, n=n) * np.conj(K), n=n)[..., :L] + s * dz
    du = dv if pre is None else dv * pre
    dpre = None if pre is None else dv * u
    dpost = None if post is None else dy * out
    dk_rows = np.fft.irfft(np.conj(np.fft.rfft(v, n=n)) * np.fft.rfft(dz, n=n), n=n)[..., :Lk]
    dk = np.zeros((G, H, Lk))
    np.add.at(dk, g, dk_rows)
    dskip = None
    if skip is not None:
        dskip = np.zeros((G, H))
        np.add.at(dskip, g, (dz * v).sum(-1))
    return back(y), back(du), dk, None if dpre is None else back(dpre), None if dpost is None else back(dpost), dskip


def fftconv_direct(u, k, pre, post, skip, dy, *, n, layout, rows_per_group):
    """The same contract by explicit sums over the circular index (no FFT), for small sizes."""
    u, k, pre, post, skip, dy = map(_f64, (u, k, pre, post, skip, dy))
    u, dy = _to_bhl(u, layout), _to_bhl(dy, layout)
    pre = np.ones_like(u) if pre is None else _to_bhl(pre, layout)
    post = np.ones_like(u) if post is None else _to_bhl(post, layout)
    B, H, L = u.shape
    G, _, Lk = k.shape
    skip = np.zeros((G, H)) if skip is None else skip
    y, du, dpre, dpost = (np.zeros_like(u) for _ in range(4))
    dk, dskip = np.zeros((G, H, Lk)), np.zeros((G, H))
    for b in range(B):
        g = (b // rows_per_group) % G
        for h in range(H):
            # M[t, s]: weight of v[s] in z[t] = sum_j k[j] v[(t - j) mod n], v zero beyond L.
            M = np.zeros((L, L))
            for t in range(L):
                for j in range(Lk):
                    s_ = (t - j) % n
                    if s_ < L:
                        M[t, s_] += k[g, h, j]
            v = pre[b, h] * u[b, h]
            out = M @ v + skip[g, h] * v
            y[b, h] = post[b, h] * out
            dz = dy[b, h] * post[b, h]
            dv = M.T @ dz + skip[g, h] * dz
            du[b, h], dpre[b, h], dpost[b, h] = dv * pre[b, h], dv * u[b, h], dy[b, h] * out
            for j in range(Lk):
                dk[g, h, j] += sum(dz[t] * v[(t - j) % n] for t in range(L) if (t - j) % n < L)
            dskip[g, h] += dz @ v
    back = lambda a: a if layout == BHL else np.swapaxes(a, 1, 2)  # noqa: E731
    return back(y), back(du), dk, back(dpre), back(dpost), dskip


def depthwise_ref(x, w, bias, dy, *, pad_lo, pad_hi, layout):
    """y, and (dx, dw, dbias) when dy is given, in float64; canonical (B, L, D) inside."""
    x, w, bias, dy = map(_f64, (x, w, bias, dy))
    to_bld = lambda a: a if layout == BLH else np.swapaxes(a, 1, 2)  # noqa: E731  (its own inverse)
    x = to_bld(x)
    K = w.shape[0]
    L = x.shape[1]
    xp = np.pad(x, ((0, 0), (pad_lo, pad_hi), (0, 0)))
    L_out = L + pad_lo + pad_hi - K + 1
    y = sum(w[j] * xp[:, j : j + L_out] for j in range(K))
    if bias is not None:
        y = y + bias
    if dy is None:
        return to_bld(y)
    dy = to_bld(dy)
    gxp = np.zeros_like(xp)
    for j in range(K):
        gxp[:, j : j + L_out] += w[j] * dy
    dx = gxp[:, pad_lo : pad_lo + L]
    dw = np.stack([(dy * xp[:, j : j + L_out]).sum((0, 1)) for j in range(K)])
    return to_bld(y), to_bld(dx), dw, dy.sum((0, 1))


# ---------------------------------------------------------------------------------------------------
# Calling the targets
# ---------------------------------------------------------------------------------------------------


def _fftconv_attrs(n, layout, rows_per_group):
    return dict(fft_size=np.int64(n), layout=np.int32(layout), rows_per_group=np.int64(rows_per_group))


def call_fftconv_spectrum(k, skip, *, n, bf16=False):
    (kspec,) = poisoned_call("jff_fftconv_filter_spectrum",
                             [_spec(k.shape[:2] + (prepared_floats(n, bf16),), np.float32)],
                             [k, _absent(np.float32) if skip is None else skip], fft_size=np.int64(n),
                             bfloat16_data=np.int32(bf16))
    return kspec


def _fftconv_optionals(u, k, pre, post, skip, n, prepared):
    """pre, post, skip and kspec as the targets take them; kspec from the spectrum target when `prepared`."""
    return [_absent(u.dtype) if pre is None else pre, _absent(u.dtype) if post is None else post,
            _absent(np.float32) if skip is None else skip,
            call_fftconv_spectrum(k, skip, n=n, bf16=u.dtype == jnp.bfloat16) if prepared else _absent(np.float32)]


def call_fftconv_fwd(u, k, pre, post, skip, *, n, layout, rows_per_group, prepared=False):
    opts = _fftconv_optionals(u, k, pre, post, skip, n, prepared)
    (y,) = poisoned_call(
        "jff_fftconv_fwd", [_spec(u.shape, u.dtype)], [u, k, *opts], **_fftconv_attrs(n, layout, rows_per_group)
    )
    return y


def call_fftconv_bwd(dy, u, k, pre, post, skip, *, n, layout, rows_per_group, prepared=False):
    act, none = _spec(u.shape, u.dtype), _spec((0,), u.dtype)
    specs = [
        act,
        _spec(k.shape, np.float32),
        none if pre is None else act,
        none if post is None else act,
        _spec((0,), np.float32) if skip is None else _spec(k.shape[:2], np.float32),
    ]
    opts = _fftconv_optionals(u, k, pre, post, skip, n, prepared)
    specs.append(_spec(opts[-1].shape, np.float32))  # kspec_ws, aliased to kspec: the backward's scratch
    outs = poisoned_call("jff_fftconv_bwd", specs, [dy, u, k, *opts], aliases={6: 5} if prepared else None,
                         **_fftconv_attrs(n, layout, rows_per_group))
    return outs[:5]


def _dw_attrs(pad_lo, pad_hi, layout):
    return dict(pad_lo=np.int64(pad_lo), pad_hi=np.int64(pad_hi), layout=np.int32(layout))


def _act_shape(B, L, D, layout):
    return (B, L, D) if layout == BLH else (B, D, L)


def call_depthwise_fwd(x, w, bias, *, pad_lo, pad_hi, layout):
    B = x.shape[0]
    L, D = (x.shape[1], x.shape[2]) if layout == BLH else (x.shape[2], x.shape[1])
    L_out = L + pad_lo + pad_hi - w.shape[0] + 1
    (y,) = poisoned_call(
        "jff_depthwise_fwd",
        [_spec(_act_shape(B, L_out, D, layout), x.dtype)],
        [x, w, _absent(w.dtype) if bias is None else bias],
        **_dw_attrs(pad_lo, pad_hi, layout),
    )
    return y


def call_depthwise_bwd(dy, x, w, *, has_bias, pad_lo, pad_hi, layout):
    D = w.shape[1]
    specs = [_spec(x.shape, x.dtype), _spec(w.shape, np.float32), _spec((D,) if has_bias else (0,), np.float32)]
    return poisoned_call("jff_depthwise_bwd", specs, [dy, x, w], **_dw_attrs(pad_lo, pad_hi, layout))


# ---------------------------------------------------------------------------------------------------
# fftconv accuracy
# ---------------------------------------------------------------------------------------------------


def make_fftconv_inputs(key, B, H, L, G, Lk, dtype, layout, *, pre, post, skip):
    rng = _rng(*key)
    shape = (B, H, L) if layout == BHL else (B, L, H)
    act = lambda: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    u = act()
    k = (rng.standard_normal((G, H, Lk)) / np.sqrt(Lk)).astype(np.float32)
    return dict(
        u=u,
        k=k,
        pre=act() if pre else None,
        post=act() if post else None,
        skip=rng.standard_normal((G, H)).astype(np.float32) if skip else None,
        dy=act(),
    )


def check_fftconv(name, B, H, L, G, R, Lk, n, layout, dt, *, pre=True, post=True, skip=True, prepared=False):
    inp = make_fftconv_inputs((name, layout, dt, pre, post, skip), B, H, L, G, Lk, DTYPES[dt], layout,
                              pre=pre, post=post, skip=skip)
    kw = dict(n=n, layout=layout, rows_per_group=R, prepared=prepared)
    ops = (inp["u"], inp["k"], inp["pre"], inp["post"], inp["skip"])
    y_ref, du_ref, dk_ref, dpre_ref, dpost_ref, dskip_ref = fftconv_ref(*ops, inp["dy"], n=n, layout=layout,
                                                                        rows_per_group=R)
    tol = TOL[dt]

    y = call_fftconv_fwd(*ops, **kw)
    assert y.dtype == inp["u"].dtype
    assert _rel_l2(y, y_ref) <= tol

    du, dk, dpre, dpost, dskip = call_fftconv_bwd(inp["dy"], *ops, **kw)
    assert _rel_l2(du, du_ref) <= tol
    assert _rel_l2(dk, dk_ref) <= F32_TOL
    for got, ref, present in ((dpre, dpre_ref, pre), (dpost, dpost_ref, post)):
        if present:
            assert got.dtype == inp["u"].dtype and _rel_l2(got, ref) <= tol
        else:
            assert got.shape == (0,)
    if skip:
        assert _rel_l2(dskip, dskip_ref) <= F32_TOL
    else:
        assert dskip.shape == (0,)


# name, B, H, L, G, rows_per_group, Lk, N
FFTCONV_CASES = [
    ("odd_H_odd_L_linear", 3, 5, 37, 1, 1, 37, 128),
    ("L1_Lk1_N1", 4, 3, 1, 1, 1, 1, 1),
    ("L1_Lk4", 3, 2, 1, 1, 1, 4, 4),
    ("L2_N2", 3, 2, 2, 1, 1, 2, 2),
    ("Lk_lt_L", 2, 3, 50, 1, 1, 7, 64),
    ("Lk1", 2, 3, 33, 1, 1, 1, 64),
    ("Lk_eq_N_circular", 3, 2, 20, 1, 1, 32, 32),
    ("circular_N_lt_L_plus_Lk", 2, 3, 50, 1, 1, 30, 64),
    ("N_eq_L_circular", 2, 2, 64, 1, 1, 16, 64),
    ("groups_R2", 6, 3, 19, 2, 2, 11, 32),
    ("groups_G3_R1", 7, 2, 24, 3, 1, 9, 64),
    ("groups_R4_partial", 5, 2, 16, 2, 4, 16, 32),
    ("one_row", 1, 3, 45, 1, 1, 20, 64),
    ("H1", 3, 1, 40, 1, 1, 9, 64),
    ("N_much_larger", 2, 2, 100, 1, 1, 50, 1024),
    ("odd_log2_N", 2, 3, 300, 1, 1, 300, 2048),
    ("N_32K_recursive", 3, 2, 20000, 1, 1, 5000, 32768),
]


@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("layout", [BHL, BLH], ids=["BHL", "BLH"])
@pytest.mark.parametrize("case", FFTCONV_CASES, ids=[c[0] for c in FFTCONV_CASES])
def test_fftconv_shapes(case, layout, dt):
    check_fftconv(*case, layout, dt)


@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("layout", [BHL, BLH], ids=["BHL", "BLH"])
@pytest.mark.parametrize("pre", [False, True], ids=["nopre", "pre"])
@pytest.mark.parametrize("post", [False, True], ids=["nopost", "post"])
@pytest.mark.parametrize("skip", [False, True], ids=["noskip", "skip"])
def test_fftconv_optionals(pre, post, skip, layout, dt):
    check_fftconv("optionals", 5, 3, 29, 2, 2, 13, 64, layout, dt, pre=pre, post=post, skip=skip)


@pytest.mark.parametrize("dt", list(DTYPES))
@pytest.mark.parametrize("pre", [False, True], ids=["nopre", "pre"])
@pytest.mark.parametrize("post", [False, True], ids=["nopost", "post"])
@pytest.mark.parametrize("skip", [False, True], ids=["noskip", "skip"])
def test_fftconv_blh_staged(pre, post, skip, dt):
    """Large BLH calls run on transposed (BHL) copies inside the handler; small ones read strided."""
    check_fftconv("staged", 5, 8, 1100, 2, 2, 300, 2048, BLH, dt, pre=pre, post=post, skip=skip)


def test_fftconv_reference_matches_direct_sums():
    """The FFT-based reference against explicit circular sums, linear and circular, with groups."""
    for name, B, H, L, G, R, Lk, n in [("lin", 3, 2, 9, 2, 1, 4, 16), ("circ", 3, 2, 9, 1, 2, 7, 16),
                                        ("lk_n", 2, 1, 5, 1, 1, 8, 8)]:
        inp = make_fftconv_inputs(("direct", name), B, H, L, G, Lk, np.float64, BLH, pre=True, post=True, skip=True)
        kw = dict(n=n, layout=BLH, rows_per_group=R)
        ops = (inp["u"], inp["k"], inp["pre"], inp["post"], inp["skip"], inp["dy"])
        for got, ref in zip(fftconv_ref(*ops, **kw), fftconv_direct(*ops, **kw)):
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dt", ["f32", "bf16"])
@pytest.mark.parametrize("layout", [BHL, BLH], ids=["BHL", "BLH"])
def test_fftconv_with_prepared_spectrum(layout, dt):
    """At a long size the forward and backward take K' from jff_fftconv_filter_spectrum (groups, odd H, L < N;
    bfloat16 data: the half-size K' of bfloat16 values)."""
    check_fftconv("prepared", 4, 3, 40001, 2, 2, 30000, 1 << 16, layout, dt, prepared=True)


@pytest.mark.parametrize("skip", [False, True], ids=["noskip", "skip"])
def test_fftconv_filter_spectrum_on_cpu(skip):
    """On the CPU K'[g, h] is k[g, h] zero-padded to K''s length (the handlers transform it per call); every
    element written (the result is poisoned first)."""
    inp = make_fftconv_inputs(("spectrum", skip), 1, 3, 1, 2, 5000, np.float32, BHL, pre=False, post=False, skip=skip)
    kspec = call_fftconv_spectrum(inp["k"], inp["skip"], n=1 << 17)
    assert kspec.shape == (2, 3, prepared_floats(1 << 17, False))
    np.testing.assert_array_equal(kspec[..., :5000], inp["k"])
    assert not kspec[..., 5000:].any()


def test_fftconv_filter_spectrum_on_cpu_bfloat16_data():
    """For bfloat16 data K' has half the floats and holds k rounded to bfloat16, two values to a float (little
    endian: value 2i in the low half of float i), zero-padded; every element written."""
    inp = make_fftconv_inputs(("spectrum", "bf16"), 1, 3, 1, 2, 5000, np.float32, BHL, pre=False, post=False,
                              skip=True)
    kspec = call_fftconv_spectrum(inp["k"], inp["skip"], n=1 << 17, bf16=True)
    assert kspec.shape == (2, 3, prepared_floats(1 << 17, True)) == (2, 3, prepared_floats(1 << 17, False) // 2)
    values = kspec.view(np.uint16).view(jnp.bfloat16)
    np.testing.assert_array_equal(values[..., :5000], inp["k"].astype(jnp.bfloat16))
    assert not values[..., 5000:].astype(np.float32).any()


def test_fftconv_accuracy_n_4m():
    """float32 within 1e-5 of float64 at N = 2^22 (odd L, long filter, gates, skip, two rows)."""
    check_fftconv("n4m", 2, 1, 2_500_001, 1, 1, 1_000_003, 1 << 22, BHL, "f32")


def test_fftconv_empty_batch():
    inp = make_fftconv_inputs(("empty",), 0, 3, 10, 2, 5, np.float32, BHL, pre=True, post=True, skip=True)
    kw = dict(n=16, layout=BHL, rows_per_group=1)
    ops = (inp["u"], inp["k"], inp["pre"], inp["post"], inp["skip"])
    assert call_fftconv_fwd(*ops, **kw).shape == (0, 3, 10)
    du, dk, dpre, dpost, dskip = call_fftconv_bwd(inp["dy"], *ops, **kw)
    assert du.shape == (0, 3, 10) and not dk.any() and not dskip.any()


@pytest.mark.parametrize("dt", list(DTYPES))
def test_fftconv_rounds_once(dt):
    """With N = 1 and k = 1 the transform is the identity, so y = pre * u exactly before rounding (the
    product of two inputs is exact in float32 for 16-bit types, in double for float32): the handler must
    match numpy's single rounding bit for bit, across the subnormal, normal and overflow ranges."""
    rng = _rng("rounds_once", dt)
    dtype = DTYPES[dt]
    scale = 10.0 ** rng.uniform(-5, 3, size=(4096, 1, 1))
    u = (rng.standard_normal((4096, 1, 1)) * scale).astype(dtype)
    pre = (rng.standard_normal((4096, 1, 1)) * scale).astype(dtype)
    k = np.ones((1, 1, 1), np.float32)
    with np.errstate(over="ignore"):
        exact = u.astype(np.float64) * pre.astype(np.float64)
        want = exact.astype(np.float32).astype(dtype) if dt != "f32" else exact.astype(np.float32)
    y = call_fftconv_fwd(u, k, pre, None, None, n=1, layout=BHL, rows_per_group=1)
    bits = np.uint32 if dt == "f32" else np.uint16
    assert y.dtype == want.dtype and np.array_equal(y.view(bits), want.view(bits))


def test_fftconv_deterministic():
    """dk and dskip are reduced over many rows per group: two runs must agree bit for bit."""
    inp = make_fftconv_inputs(("det",), 16, 4, 300, 2, 200, np.float32, BLH, pre=True, post=True, skip=True)
    kw = dict(n=512, layout=BLH, rows_per_group=3)
    ops = (inp["dy"], inp["u"], inp["k"], inp["pre"], inp["post"], inp["skip"])
    first, second = call_fftconv_bwd(*ops, **kw), call_fftconv_bwd(*ops, **kw)
    for a, b in zip(first, second):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    y1 = call_fftconv_fwd(*ops[1:], **kw)
    y2 = call_fftconv_fwd(*ops[1:], **kw)
    assert np.array_equal(y1.view(np.uint32), y2.view(np.uint32))


# ---------------------------------------------------------------------------------------------------
# depthwise accuracy
# ---------------------------------------------------------------------------------------------------

# name, B, L, D, K, pad_lo, pad_hi
DEPTHWISE_CASES = [
    ("same_odd_K", 2, 37, 19, 5, 2, 2),
    ("same_even_K", 2, 37, 19, 4, 1, 2),
    ("causal", 3, 40, 16, 4, 3, 0),
    ("valid", 2, 40, 33, 7, 0, 0),
    ("K1", 2, 17, 5, 1, 0, 0),
    ("K1_padded", 2, 17, 5, 1, 2, 3),
    ("asym_lo_only", 2, 30, 7, 3, 2, 0),
    ("asym_hi_only", 2, 30, 7, 3, 0, 2),
    ("asym_lo_gt_hi", 2, 30, 7, 6, 4, 1),
    ("pads_exceed_K", 1, 10, 3, 3, 6, 9),
    ("L_lt_K_padded", 2, 3, 4, 8, 4, 3),
    ("K128_tiles", 1, 1100, 20, 128, 64, 63),
    ("K128_valid_one_output", 2, 128, 3, 128, 0, 0),
    ("chunk_and_tile_edges", 2, 600, 37, 5, 2, 2),
]
DW_DTYPES = [("f32", "f32"), ("bf16", "f32"), ("bf16", "bf16"), ("f16", "f32"), ("f16", "f16")]


def check_depthwise(name, B, L, D, K, pad_lo, pad_hi, layout, xdt, wdt, has_bias):
    rng = _rng(name, layout, xdt, wdt, has_bias)
    L_out = L + pad_lo + pad_hi - K + 1
    x = rng.standard_normal(_act_shape(B, L, D, layout)).astype(DTYPES[xdt])
    w = (rng.standard_normal((K, D)) / np.sqrt(K)).astype(DTYPES[wdt])
    bias = rng.standard_normal(D).astype(DTYPES[wdt]) if has_bias else None
    dy = rng.standard_normal(_act_shape(B, L_out, D, layout)).astype(DTYPES[xdt])
    kw = dict(pad_lo=pad_lo, pad_hi=pad_hi, layout=layout)
    y_ref, dx_ref, dw_ref, db_ref = depthwise_ref(x, w, bias, dy, **kw)

    y = call_depthwise_fwd(x, w, bias, **kw)
    assert y.dtype == x.dtype and _rel_l2(y, y_ref) <= TOL[xdt]
    dx, dw, db = call_depthwise_bwd(dy, x, w, has_bias=has_bias, **kw)
    assert dx.dtype == x.dtype and _rel_l2(dx, dx_ref) <= TOL[xdt]
    assert dw.dtype == np.float32 and _rel_l2(dw, dw_ref) <= F32_TOL
    if has_bias:
        assert _rel_l2(db, db_ref) <= F32_TOL
    else:
        assert db.shape == (0,)


@pytest.mark.parametrize("has_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("xdt,wdt", DW_DTYPES, ids=[f"x{a}_w{b}" for a, b in DW_DTYPES])
@pytest.mark.parametrize("layout", [BHL, BLH], ids=["BHL", "BLH"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[c[0] for c in DEPTHWISE_CASES])
def test_depthwise(case, layout, xdt, wdt, has_bias):
    check_depthwise(*case, layout, xdt, wdt, has_bias)


@pytest.mark.parametrize("dt", ["bf16", "f16"])
def test_depthwise_rounds_once(dt):
    """K = 1, no padding: y = w * x, exact in float32 when w is representable in x's type, so the
    half-precision output must equal numpy's single rounding bit for bit."""
    rng = _rng("dw_rounds_once", dt)
    dtype = DTYPES[dt]
    scale = 10.0 ** rng.uniform(-5, 3, size=(1, 512, 8))
    x = (rng.standard_normal((1, 512, 8)) * scale).astype(dtype)
    w = (rng.standard_normal((1, 8)) * 10.0 ** rng.uniform(-3, 2, size=(1, 8))).astype(dtype).astype(np.float32)
    with np.errstate(over="ignore"):
        want = (x.astype(np.float64) * w.astype(np.float64)).astype(np.float32).astype(dtype)
    y = call_depthwise_fwd(x, w, None, pad_lo=0, pad_hi=0, layout=BLH)
    assert np.array_equal(y.view(np.uint16), want.view(np.uint16))


def test_depthwise_deterministic():
    rng = _rng("dw_det")
    x = rng.standard_normal((8, 1000, 48)).astype(np.float32)
    w = rng.standard_normal((7, 48)).astype(np.float32)
    dy = rng.standard_normal((8, 1000, 48)).astype(np.float32)
    kw = dict(has_bias=True, pad_lo=3, pad_hi=3, layout=BLH)
    first, second = call_depthwise_bwd(dy, x, w, **kw), call_depthwise_bwd(dy, x, w, **kw)
    for a, b in zip(first, second):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_depthwise_empty_batch():
    x = np.zeros((0, 10, 4), np.float32)
    w = _rng("dw_empty").standard_normal((3, 4)).astype(np.float32)
    assert call_depthwise_fwd(x, w, None, pad_lo=1, pad_hi=1, layout=BLH).shape == (0, 10, 4)
    dx, dw, db = call_depthwise_bwd(np.zeros((0, 10, 4), np.float32), x, w, has_bias=True, pad_lo=1, pad_hi=1,
                                    layout=BLH)
    assert dx.shape == (0, 10, 4) and not dw.any() and not db.any()


# ---------------------------------------------------------------------------------------------------
# Error path: bad input straight to the targets
# ---------------------------------------------------------------------------------------------------


def _raw_call(target, result_specs, operands, platform="cpu", **attrs):
    with jax.default_device(jax.devices(platform)[0]):
        return jax.block_until_ready(jax.ffi.ffi_call(target, tuple(result_specs))(*operands, **attrs))


# The error tests call the CPU handlers everywhere and the CUDA handlers where a GPU is present: both
# validate through the same header, and both must turn bad input into a Python exception, never a crash.
PLATFORMS = ["cpu", pytest.param("gpu", marks=pytest.mark.gpu)]


def _fftconv_call(*, u_shape=(2, 3, 8), u_dtype=np.float32, k_shape=(1, 3, 4), k_dtype=np.float32, pre=None,
                  post=None, skip=None, kspec=None, n=16, layout=BHL, rpg=1, y_spec=None, bwd=False, dy_shape=None,
                  result_overrides=None, platform="cpu"):
    u = np.ones(u_shape, u_dtype)
    k = np.ones(k_shape, k_dtype)
    opts = [
        _absent(u_dtype) if pre is None else np.ones(*pre),
        _absent(u_dtype) if post is None else np.ones(*post),
        _absent(np.float32) if skip is None else np.ones(*skip),
        _absent(np.float32) if kspec is None else np.ones(*kspec),
    ]
    attrs = _fftconv_attrs(n, layout, rpg)
    if not bwd:
        return _raw_call("jff_fftconv_fwd", [y_spec or _spec(u_shape, u_dtype)], [u, k, *opts], platform, **attrs)
    act = _spec(u_shape, u_dtype)
    specs = [act, _spec(k_shape, np.float32), _spec((0,), u_dtype), _spec((0,), u_dtype), _spec((0,), np.float32),
             _spec((0,), np.float32) if kspec is None else _spec(kspec[0], np.float32)]
    for i, s in (result_overrides or {}).items():
        specs[i] = s
    dy = np.ones(dy_shape or u_shape, u_dtype)
    return _raw_call("jff_fftconv_bwd", specs, [dy, u, k, *opts], platform, **attrs)


F32_KSPEC = prepared_floats(1 << 16, False)  # K''s last axis at N = 65536 for float16 / float32 data
FFTCONV_ERRORS = [
    ("k_wrong_H", dict(k_shape=(1, 4, 4)), "k has shape"),
    ("k_rank2", dict(k_shape=(3, 4)), "k has shape"),
    ("k_Lk0", dict(k_shape=(1, 3, 0)), "k has shape"),
    ("k_f16", dict(k_dtype=np.float16), "k has dtype"),
    ("u_int", dict(u_dtype=np.int32), "u has dtype"),
    ("u_complex", dict(u_dtype=np.complex64), "u has dtype"),
    ("u_rank2", dict(u_shape=(3, 8)), "u has shape"),
    ("fft_not_pow2", dict(n=24), "fft_size is 24"),
    ("fft_lt_L", dict(n=4), "fft_size is 4"),
    ("fft_lt_Lk", dict(k_shape=(1, 3, 20), n=16), "fft_size is 16"),
    ("fft_too_big", dict(n=1 << 25), "fft_size"),
    ("fft_zero", dict(n=0), "fft_size is 0"),
    ("layout_2", dict(layout=2), "layout is 2"),
    ("rows_per_group_0", dict(rpg=0), "rows_per_group is 0"),
    ("pre_shape", dict(pre=((2, 3, 7), np.float32)), "pre_gate has shape"),
    ("post_dtype", dict(post=((2, 3, 8), np.float16)), "post_gate has dtype"),
    ("skip_shape", dict(skip=((3,), np.float32)), "skip has shape"),
    ("skip_dtype", dict(skip=((1, 3), np.float16)), "skip has dtype"),
    ("y_shape", dict(y_spec=_spec((2, 3, 9), np.float32)), "result y has shape"),
    ("y_dtype", dict(y_spec=_spec((2, 3, 8), np.float16)), "result y has dtype"),
    ("blh_mismatch", dict(layout=BLH, k_shape=(1, 3, 4)), "k has shape"),
    ("bwd_dy_shape", dict(bwd=True, dy_shape=(2, 3, 7)), "dy has shape"),
    ("bwd_dk_shape", dict(bwd=True, result_overrides={1: _spec((1, 3, 5), np.float32)}), "result dk"),
    ("bwd_dk_dtype", dict(bwd=True, result_overrides={1: _spec((1, 3, 4), np.float16)}), "result dk"),
    ("bwd_dpre_without_pre", dict(bwd=True, result_overrides={2: _spec((2, 3, 8), np.float32)}), "dpre"),
    ("bwd_pre_without_dpre", dict(bwd=True, pre=((2, 3, 8), np.float32)), "dpre"),
    ("bwd_dpost_without_post", dict(bwd=True, result_overrides={3: _spec((2, 3, 8), np.float32)}), "dpost"),
    ("bwd_dskip_shape", dict(bwd=True, skip=((1, 3), np.float32), result_overrides={4: _spec((3,), np.float32)}),
     "dskip"),
    ("bwd_du_dtype", dict(bwd=True, result_overrides={0: _spec((2, 3, 8), np.float16)}), "result du"),
    ("kspec_not_long", dict(kspec=((1, 3, 32), np.float32)), "not a long size"),
    ("kspec_shape", dict(u_shape=(1, 3, 8), n=1 << 16, kspec=((1, 3, 65536), np.float32)), "kspec has shape"),
    ("kspec_dtype", dict(u_shape=(1, 3, 8), n=1 << 16, kspec=((1, 3, F32_KSPEC), np.float16)), "kspec has dtype"),
    # bfloat16 data take the half-size K' of bfloat16 values, not the float32 one
    ("kspec_bf16_data_f32_size", dict(u_shape=(1, 3, 8), u_dtype=jnp.bfloat16, n=1 << 16,
                                      kspec=((1, 3, F32_KSPEC), np.float32)), "kspec has shape"),
    ("bwd_kspec_groups", dict(bwd=True, u_shape=(1, 3, 8), n=1 << 16, kspec=((2, 3, F32_KSPEC), np.float32)),
     "kspec has shape"),
    ("bwd_kspec_ws_without_kspec", dict(bwd=True, result_overrides={5: _spec((1, 3, 4), np.float32)}), "kspec_ws"),
    ("bwd_kspec_ws_shape", dict(bwd=True, u_shape=(1, 3, 8), n=1 << 16, kspec=((1, 3, F32_KSPEC), np.float32),
                                result_overrides={5: _spec((1, 3, 8), np.float32)}), "result kspec_ws"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kwargs,match", [c[1:] for c in FFTCONV_ERRORS], ids=[c[0] for c in FFTCONV_ERRORS])
def test_fftconv_errors(kwargs, match, platform):
    with pytest.raises(Exception, match=match) as info:
        _fftconv_call(**kwargs, platform=platform)
    assert "jax_flashfft" in str(info.value)


def _spectrum_call(*, k_shape=(2, 3, 100), k_dtype=np.float32, skip=None, n=1 << 16, result=None, bf16_data=0,
                   platform="cpu"):
    k = np.ones(k_shape, k_dtype)
    skip = _absent(np.float32) if skip is None else np.ones(*skip)
    result = result or _spec(k_shape[:2] + (prepared_floats(n, False) if n in (1 << 16, 1 << 17) else 8,), np.float32)
    return _raw_call("jff_fftconv_filter_spectrum", [result], [k, skip], platform, fft_size=np.int64(n),
                     bfloat16_data=np.int32(bf16_data))


SPECTRUM_ERRORS = [
    ("short_size", dict(n=1 << 15), "expected a long size"),
    ("not_pow2", dict(n=(1 << 16) + 1), "expected a long size"),
    ("Lk_gt_N", dict(k_shape=(1, 2, (1 << 16) + 1)), "expected a long size"),
    ("k_rank2", dict(k_shape=(3, 100)), "k has shape"),
    ("k_f16", dict(k_dtype=np.float16), "k has dtype"),
    ("skip_shape", dict(skip=((3,), np.float32)), "skip has shape"),
    ("result_shape", dict(result=_spec((2, 3, 65536), np.float32)), "result kspec has shape"),
    ("result_dtype", dict(result=_spec((2, 3, F32_KSPEC), np.float16)), "result kspec has dtype"),
    ("result_f32_size_for_bf16_data", dict(bf16_data=1), "result kspec has shape"),
    ("bf16_data_attr", dict(bf16_data=2), "bfloat16_data"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kwargs,match", [c[1:] for c in SPECTRUM_ERRORS], ids=[c[0] for c in SPECTRUM_ERRORS])
def test_fftconv_spectrum_errors(kwargs, match, platform):
    with pytest.raises(Exception, match=match) as info:
        _spectrum_call(**kwargs, platform=platform)
    assert "jax_flashfft" in str(info.value)


def _depthwise_call(*, x_shape=(2, 10, 4), x_dtype=np.float32, w_shape=(3, 4), w_dtype=np.float32, bias=None,
                    pad_lo=1, pad_hi=1, layout=BLH, y_spec=None, bwd=False, dy_shape=None, result_overrides=None,
                    platform="cpu"):
    x = np.ones(x_shape, x_dtype)
    w = np.ones(w_shape, w_dtype)
    attrs = _dw_attrs(pad_lo, pad_hi, layout)
    if not bwd:
        b = _absent(w_dtype) if bias is None else np.ones(*bias)
        return _raw_call("jff_depthwise_fwd", [y_spec or _spec(x_shape, x_dtype)], [x, w, b], platform, **attrs)
    specs = [_spec(x_shape, x_dtype), _spec(w_shape, np.float32), _spec((0,), np.float32)]
    for i, s in (result_overrides or {}).items():
        specs[i] = s
    dy = np.ones(dy_shape or x_shape, x_dtype)
    return _raw_call("jff_depthwise_bwd", specs, [dy, x, w], platform, **attrs)


DEPTHWISE_ERRORS = [
    ("K_129", dict(w_shape=(129, 4), pad_lo=64, pad_hi=64), "K <= 128"),
    ("K_0", dict(w_shape=(0, 4)), "K <= 128"),
    ("w_wrong_D", dict(w_shape=(3, 5)), "w has shape"),
    ("w_rank3", dict(w_shape=(3, 4, 1)), "w has shape"),
    ("w_dtype_other_half", dict(x_dtype=np.float16, w_dtype=jnp.bfloat16), "w has dtype"),
    ("x_complex", dict(x_dtype=np.complex64), "x has dtype"),
    ("x_rank2", dict(x_shape=(10, 4)), "x has shape"),
    ("bias_shape", dict(bias=((5,), np.float32)), "bias has shape"),
    ("bias_dtype", dict(bias=((4,), np.float16)), "bias has dtype"),
    ("pad_lo_negative", dict(pad_lo=-1, pad_hi=3), "pad_lo is -1"),
    ("pad_hi_negative", dict(pad_hi=-2, pad_lo=4), "pad_hi is -2"),
    ("empty_output", dict(w_shape=(12, 4), pad_lo=0, pad_hi=0), "output would be empty"),
    ("layout_5", dict(layout=5), "layout is 5"),
    ("y_shape", dict(y_spec=_spec((2, 11, 4), np.float32)), "result y has shape"),
    ("y_dtype", dict(y_spec=_spec((2, 10, 4), np.float16)), "result y has dtype"),
    ("bhl_mismatch", dict(layout=BHL), "w has shape"),
    ("bwd_dy_shape", dict(bwd=True, dy_shape=(2, 9, 4)), "dy has shape"),
    ("bwd_dx_shape", dict(bwd=True, result_overrides={0: _spec((2, 9, 4), np.float32)}), "result dx"),
    ("bwd_dw_dtype", dict(bwd=True, result_overrides={1: _spec((3, 4), np.float16)}), "result dw"),
    ("bwd_dw_shape", dict(bwd=True, result_overrides={1: _spec((4, 3), np.float32)}), "result dw"),
    ("bwd_dbias_shape", dict(bwd=True, result_overrides={2: _spec((5,), np.float32)}), "result dbias"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kwargs,match", [c[1:] for c in DEPTHWISE_ERRORS], ids=[c[0] for c in DEPTHWISE_ERRORS])
def test_depthwise_errors(kwargs, match, platform):
    with pytest.raises(Exception, match=match) as info:
        _depthwise_call(**kwargs, platform=platform)
    assert "jax_flashfft" in str(info.value)
