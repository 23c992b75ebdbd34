"""float64 numpy references of the contract (DESIGN.md §1), used by every test as ground truth."""

from __future__ import annotations

import numpy as np


def f64(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def rel_l2(out, ref) -> float:
    out, ref = f64(out), f64(ref)
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom > 0 else 1.0))


def fftconv64(u, k, pre=None, post=None, skip=None, fft_size=None, layout="BHL"):
    """y = post * (irfft(rfft(pre*u, N) * rfft(k, N))[:L] + skip * pre*u) in float64."""
    u, k, pre, post, skip = map(f64, (u, k, pre, post, skip))
    v = u if pre is None else u * pre
    if layout == "BLH":
        v = np.swapaxes(v, -1, -2)
    length, klen = v.shape[-1], k.shape[-1]
    n = fft_size or 1 << max(0, (length + klen - 2).bit_length())
    z = np.fft.irfft(np.fft.rfft(v, n=n) * np.fft.rfft(k, n=n), n=n)[..., :length]
    if skip is not None:
        z = z + skip[:, None] * v
    if layout == "BLH":
        z = np.swapaxes(z, -1, -2)
    return z if post is None else z * post


def pad_amounts(padding, k):
    """(pad_lo, pad_hi) of a depthwise `padding` argument for K = k taps, as the contract defines them."""
    if padding == "same":
        return (k - 1) // 2, k - 1 - (k - 1) // 2
    if padding == "causal":
        return k - 1, 0
    if padding == "valid":
        return 0, 0
    if isinstance(padding, int):
        return padding, padding
    return tuple(padding)


def depthwise64(x, w, bias=None, pad=(0, 0), layout="BLH"):
    """y[t, d] = bias[d] + sum_j w[j, d] * x_padded[t + j, d] in float64."""
    x, w, bias = map(f64, (x, w, bias))
    if layout == "BHL":
        x = np.swapaxes(x, -1, -2)
    lo, hi = pad
    k = w.shape[0]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(lo, hi), (0, 0)])
    out_len = xp.shape[-2] - k + 1
    y = sum(w[j] * xp[..., j:j + out_len, :] for j in range(k))
    if bias is not None:
        y = y + bias
    if layout == "BHL":
        y = np.swapaxes(y, -1, -2)
    return y


def fftconv64_vjp(dy, u, k, pre=None, post=None, skip=None, fft_size=None, layout="BHL"):
    """float64 cotangents (du, dk, dpre, dpost, dskip) of `fftconv64`, from the backward formulas of DESIGN.md §3.

    Batch dims are all leading dims of u; dk and dskip are summed over them.
    """
    dy, u, k, pre, post, skip = map(f64, (dy, u, k, pre, post, skip))
    swap = (lambda x: None if x is None else np.swapaxes(x, -1, -2)) if layout == "BLH" else (lambda x: x)
    dy, u, pre, post = map(swap, (dy, u, pre, post))
    v = u if pre is None else u * pre
    length, klen = v.shape[-1], k.shape[-1]
    n = fft_size or 1 << max(0, (length + klen - 2).bit_length())
    spec_v, spec_k = np.fft.rfft(v, n=n), np.fft.rfft(k, n=n)
    z = np.fft.irfft(spec_v * spec_k, n=n)[..., :length]
    dz = dy if post is None else dy * post
    spec_dz = np.fft.rfft(dz, n=n)
    dv = np.fft.irfft(spec_dz * np.conj(spec_k), n=n)[..., :length]
    if skip is not None:
        dv = dv + skip[:, None] * dz
    batch_axes = tuple(range(v.ndim - 2))
    dk = np.fft.irfft(np.conj(spec_v) * spec_dz, n=n)[..., :klen].sum(axis=batch_axes)
    if klen > n:
        raise ValueError("Lk > N")
    du = dv if pre is None else dv * pre
    dpre = None if pre is None else dv * u
    y_pre_post = z if skip is None else z + skip[:, None] * v
    dpost = None if post is None else dy * y_pre_post
    dskip = None if skip is None else (dz * v).sum(axis=batch_axes + (v.ndim - 1,))
    return swap(du), dk, swap(dpre), swap(dpost), dskip


def depthwise64_vjp(dy, x, w, bias=None, pad=(0, 0), layout="BLH"):
    """float64 cotangents (dx, dw, dbias) of `depthwise64`."""
    dy, x, w = map(f64, (dy, x, w))
    if layout == "BHL":
        dy, x = np.swapaxes(dy, -1, -2), np.swapaxes(x, -1, -2)
    lo, hi = pad
    k = w.shape[0]
    length = x.shape[-2]
    xp = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(lo, hi), (0, 0)])
    out_len = dy.shape[-2]
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    batch_axes = tuple(range(x.ndim - 2))
    for j in range(k):
        dxp[..., j:j + out_len, :] += w[j] * dy
        dw[j] = (dy * xp[..., j:j + out_len, :]).sum(axis=batch_axes + (x.ndim - 2,))
    dx = dxp[..., lo:lo + length, :]
    dbias = None if bias is None else dy.sum(axis=batch_axes + (x.ndim - 2,))
    if layout == "BHL":
        dx = np.swapaxes(dx, -1, -2)
    return dx, dw, dbias
