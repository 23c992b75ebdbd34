"""jax-flashfft: fused FFT long convolutions and short depthwise convolutions for JAX.

    y = jax_flashfft.fftconv(u, k, pre_gate=..., post_gate=..., skip=..., fft_size=None, layout="BHL")
    y = jax_flashfft.depthwise_conv1d(x, w, bias, padding="same", layout="BLH")

Flax layers live in `jax_flashfft.nnx` and `jax_flashfft.linen` (import them explicitly; they need flax).
"""

from jax_flashfft._ffi import cuda_available
from jax_flashfft.depthwise import depthwise_conv1d
from jax_flashfft.fftconv import fftconv

__all__ = ["fftconv", "depthwise_conv1d", "cuda_available"]
__version__ = "0.1.0"
