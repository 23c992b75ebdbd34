"""Flax linen versions of the `jax_flashfft.nnx` layers: same arguments, parameter names and shapes, and the
same math (`jax_flashfft.hyena_math`), so a parameter tree moves between the two front ends unchanged.
See `jax_flashfft.nnx.layers` for the semantics of each layer and of `dtype`.
"""

from __future__ import annotations

import typing as tp

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.core import FrozenDict

import jax_flashfft as jff
from jax_flashfft import hyena_math

Initializer = tp.Callable[..., jax.Array]
_default_kernel_init = nn.initializers.lecun_normal()
_zeros = nn.initializers.zeros_init()


def _activation_dtype(dtype, x, *params):
    return dtype if dtype is not None else jnp.result_type(x, *[p for p in params if p is not None])


class DepthwiseConv1d(nn.Module):
    """Depthwise 1-D convolution; a drop-in for `nn.Conv(features, kernel_size,
    feature_group_count=features)` on `(..., L, features)`: params `kernel` `(K, 1, features)`, `bias`."""

    features: int
    kernel_size: int | tp.Sequence[int]
    padding: str | int | tp.Sequence = "SAME"
    use_bias: bool = True
    dtype: tp.Any = None
    param_dtype: tp.Any = jnp.float32
    kernel_init: Initializer = _default_kernel_init
    bias_init: Initializer = _zeros
    backend: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        size = self.kernel_size
        if not isinstance(size, int):
            if len(size) != 1:
                raise ValueError(f"kernel_size must be an int or a 1-tuple; got {size!r}")
            (size,) = size
        kernel = self.param("kernel", self.kernel_init, (size, 1, self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x = x.astype(_activation_dtype(self.dtype, x, kernel, bias))
        return jff.depthwise_conv1d(
            x, kernel[:, 0, :], bias, padding=hyena_math.conv_padding(self.padding), layout="BLH",
            backend=self.backend)


class LongConv(nn.Module):
    """Long convolution with an explicit, regularised learnable kernel per channel (exponential decay on by
    default, squash with `squash_threshold > 0`), optionally gated. Params `kernel` `(features, max_len)`
    and, with `use_skip`, `skip` `(features,)`."""

    features: int
    max_len: int
    use_skip: bool = True
    decay: bool = True
    fast_decay_pct: float = 0.3
    slow_decay_pct: float = 1.5
    decay_target: float = 1e-2
    squash_threshold: float = 0.0
    dtype: tp.Any = None
    param_dtype: tp.Any = jnp.float32
    kernel_init: Initializer | None = None
    skip_init: Initializer = hyena_math.SKIP_INIT
    backend: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, pre_gate: jax.Array | None = None,
                 post_gate: jax.Array | None = None) -> jax.Array:
        kernel_init = self.kernel_init or hyena_math.long_conv_kernel_init(self.max_len)
        kernel = self.param("kernel", kernel_init, (self.features, self.max_len), self.param_dtype)
        skip = self.param("skip", self.skip_init, (self.features,), self.param_dtype) if self.use_skip else None
        taps = hyena_math.long_conv_kernel(
            kernel, x.shape[-2], squash_threshold=self.squash_threshold, decay=self.decay,
            fast_decay_pct=self.fast_decay_pct, slow_decay_pct=self.slow_decay_pct, target=self.decay_target)
        dtype = _activation_dtype(self.dtype, x, kernel, skip)
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        return jff.fftconv(cast(x), taps, pre_gate=cast(pre_gate), post_gate=cast(post_gate), skip=skip,
                           layout="BLH", backend=self.backend)


class HyenaFilter(nn.Module):
    """Hyena's implicit long filter; `__call__(seq_len)` returns `(kernel (features, seq_len), bias)`."""

    features: int
    max_len: int
    emb_dim: int = 3
    width: int = 64
    depth: int = 2
    freq: float = 1.0
    fast_decay_pct: float = 0.3
    slow_decay_pct: float = 1.5
    decay_target: float = 1e-2
    decay_shift: float = 0.0
    param_dtype: tp.Any = jnp.float32
    kernel_init: Initializer = hyena_math.FILTER_KERNEL_INIT
    bias_init: Initializer = hyena_math.FILTER_BIAS_INIT
    skip_init: Initializer = hyena_math.SKIP_INIT

    @nn.compact
    def __call__(self, seq_len: int) -> tuple[jax.Array, jax.Array]:
        shapes = hyena_math.hyena_filter_shapes(self.emb_dim, self.width, self.depth, self.features)
        inits = hyena_math.hyena_filter_inits(self.kernel_init, self.bias_init, self.depth, self.freq)
        params = {name: self.param(name, inits[name], shape, self.param_dtype) for name, shape in shapes.items()}
        bias = self.param("bias", self.skip_init, (self.features,), self.param_dtype)
        kernel = hyena_math.hyena_filter(
            params, seq_len, max_len=self.max_len, emb_dim=self.emb_dim, fast_decay_pct=self.fast_decay_pct,
            slow_decay_pct=self.slow_decay_pct, target=self.decay_target, shift=self.decay_shift)
        return kernel, bias


class HyenaOperator(nn.Module):
    """Hyena operator of order N on `(..., L, d_model)`; submodules `in_proj`, `short_conv`, `filter`,
    `out_proj` as in the NNX layer, the long convolutions fused with their gates in `fftconv`."""

    d_model: int
    max_len: int
    order: int = 2
    short_kernel_size: int = 3
    filter_args: tp.Mapping[str, tp.Any] = FrozenDict()  # hashable: linen fields must be
    use_bias: bool = True
    dtype: tp.Any = None
    param_dtype: tp.Any = jnp.float32
    kernel_init: Initializer = _default_kernel_init
    bias_init: Initializer = _zeros
    backend: str | None = None

    def setup(self):
        if self.order < 2:
            raise ValueError(f"order must be >= 2; got {self.order}")
        dense = dict(use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
                     kernel_init=self.kernel_init, bias_init=self.bias_init)
        inner = (self.order + 1) * self.d_model
        self.in_proj = nn.Dense(inner, **dense)
        self.short_conv = DepthwiseConv1d(
            inner, self.short_kernel_size, padding="CAUSAL", dtype=self.dtype, param_dtype=self.param_dtype,
            backend=self.backend)
        self.filter = HyenaFilter((self.order - 1) * self.d_model, self.max_len, param_dtype=self.param_dtype,
                                  **dict(self.filter_args))
        self.out_proj = nn.Dense(self.d_model, **dense)

    def __call__(self, u: jax.Array) -> jax.Array:
        x = self.short_conv(self.in_proj(u))
        kernel, skip = self.filter(u.shape[-2])
        conv = lambda v, k, **kw: jff.fftconv(v, k, layout="BLH", backend=self.backend, **kw)  # noqa: E731
        y = hyena_math.hyena_recurrence(x, self.d_model, self.order, kernel, skip, conv)
        return self.out_proj(y)
