"""Flax NNX layers: `DepthwiseConv1d`, `LongConv`, `HyenaFilter`, `HyenaOperator` (channels-last, BLH path)."""

from jax_flashfft.nnx.layers import DepthwiseConv1d, HyenaFilter, HyenaOperator, LongConv

__all__ = ["DepthwiseConv1d", "LongConv", "HyenaFilter", "HyenaOperator"]
