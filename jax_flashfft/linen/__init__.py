"""Flax linen layers: `DepthwiseConv1d`, `LongConv`, `HyenaFilter`, `HyenaOperator` (same parameters and math
as `jax_flashfft.nnx`)."""

from jax_flashfft.linen.layers import DepthwiseConv1d, HyenaFilter, HyenaOperator, LongConv

__all__ = ["DepthwiseConv1d", "LongConv", "HyenaFilter", "HyenaOperator"]
