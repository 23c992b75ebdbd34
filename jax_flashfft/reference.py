"""Pure-JAX implementations of the contract (the oracle, and `backend="xla"`).

Arguments are assumed validated (see `fftconv.py` / `depthwise.py`). FFTs run in float32 because
`jnp.fft` rejects half types; results are cast back to the input dtype. Gradients come from JAX's autodiff.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def fftconv_xla(u, k, pre_gate=None, post_gate=None, skip=None, *, fft_size: int, layout: str = "BHL"):
    """`y = post * (irfft(rfft(pre*u, N) * rfft(k, N), N)[:L] + skip * pre*u)`, per (batch, h) row."""
    out_dtype = u.dtype
    v = u.astype(jnp.float32)
    if pre_gate is not None:
        v = v * pre_gate.astype(jnp.float32)
    if layout == "BLH":
        v = jnp.swapaxes(v, -1, -2)  # (..., H, L)
    length = v.shape[-1]
    spectrum = jnp.fft.rfft(v, n=fft_size) * jnp.fft.rfft(k.astype(jnp.float32), n=fft_size)
    z = jnp.fft.irfft(spectrum, n=fft_size)[..., :length]
    if skip is not None:
        z = z + skip.astype(jnp.float32)[:, None] * v
    if layout == "BLH":
        z = jnp.swapaxes(z, -1, -2)
    if post_gate is not None:
        z = z * post_gate.astype(jnp.float32)
    return z.astype(out_dtype)


def depthwise_conv1d_xla(x, w, bias=None, *, padding: tuple[int, int], layout: str = "BLH"):
    """Depthwise cross-correlation through `lax.conv_general_dilated(feature_group_count=D)`, float32 inside."""
    out_dtype = x.dtype
    lead = x.shape[:-2]
    x3 = x.reshape((-1,) + x.shape[-2:]).astype(jnp.float32)
    if layout == "BHL":
        x3 = jnp.swapaxes(x3, -1, -2)  # (B, L, D)
    channels = x3.shape[-1]
    y = lax.conv_general_dilated(
        x3,
        w.astype(jnp.float32)[:, None, :],  # (K, 1, D): WIO with one input feature per group
        window_strides=(1,),
        padding=[tuple(padding)],
        dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=channels,
        precision=lax.Precision.HIGHEST,
    )
    if bias is not None:
        y = y + bias.astype(jnp.float32)
    if layout == "BHL":
        y = jnp.swapaxes(y, -1, -2)
    return y.reshape(lead + y.shape[1:]).astype(out_dtype)
