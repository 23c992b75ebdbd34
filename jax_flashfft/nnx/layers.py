"""Flax NNX layers over `fftconv` and `depthwise_conv1d`, channels-last `(..., L, D)` like `nnx.Conv`.

Inputs stay in `(..., L, D)` and reach the ops with `layout="BLH"`: no transposes around the kernels.
`dtype` is the activation (computation) dtype, `None` meaning "promote input and parameters" as in
`nnx.Linear`; filters and depthwise weights are handed to the ops in their parameter dtype because the
ops use them in float32 anyway (casting a float32 weight to bf16 would only lose precision).
"""

from __future__ import annotations

import typing as tp
from types import MappingProxyType

import jax
import jax.numpy as jnp
from flax import nnx

import jax_flashfft as jff
from jax_flashfft import hyena_math

Initializer = tp.Callable[..., jax.Array]
_default_kernel_init = nnx.initializers.lecun_normal()
_zeros = nnx.initializers.zeros_init()


def _activation_dtype(dtype, x, *params):
    return dtype if dtype is not None else jnp.result_type(x, *[p for p in params if p is not None])


class DepthwiseConv1d(nnx.Module):
    """Depthwise 1-D convolution; a drop-in for `nnx.Conv(features, features, kernel_size,
    feature_group_count=features)` on `(..., L, features)` inputs, with the same parameter shapes
    (`kernel` `(K, 1, features)`, `bias` `(features,)`) and padding vocabulary ('SAME', 'VALID', 'CAUSAL',
    an int, `(lo, hi)` or `[(lo, hi)]`). Strides and dilation are not supported.
    """

    def __init__(
        self,
        features: int,
        kernel_size: int | tp.Sequence[int],
        *,
        padding: str | int | tp.Sequence = "SAME",
        use_bias: bool = True,
        dtype: tp.Any = None,
        param_dtype: tp.Any = jnp.float32,
        kernel_init: Initializer = _default_kernel_init,
        bias_init: Initializer = _zeros,
        backend: str | None = None,
        rngs: nnx.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        bias_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ):
        if not isinstance(kernel_size, int):
            if len(kernel_size) != 1:
                raise ValueError(f"kernel_size must be an int or a 1-tuple; got {kernel_size!r}")
            (kernel_size,) = kernel_size
        self.kernel = nnx.Param(
            kernel_init(rngs.params(), (kernel_size, 1, features), param_dtype), **kernel_metadata)
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (features,), param_dtype), **bias_metadata)
            if use_bias else nnx.data(None))
        self.features = features
        self.kernel_size = kernel_size
        self.padding = hyena_math.conv_padding(padding)
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.backend = backend

    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.kernel[...]
        bias = self.bias[...] if self.bias is not None else None
        x = x.astype(_activation_dtype(self.dtype, x, kernel, bias))
        return jff.depthwise_conv1d(
            x, kernel[:, 0, :], bias, padding=self.padding, layout="BLH", backend=self.backend)


class LongConv(nnx.Module):
    """Long convolution with an explicit learnable kernel per channel, optionally gated.

    `y = post_gate * (k * (pre_gate * x) + skip * (pre_gate * x))` along the sequence (causal), with
    `k` the regularised kernel, `min(L, max_len)` taps long. Regularisation (see `hyena_math`):
      - exponential decay (default on): the kernel is multiplied by a fixed per-channel window
        `exp(-a_c t)`, `t = tap / max_len`, falling to `decay_target` between `fast_decay_pct` and
        `slow_decay_pct` of `max_len` across channels. It biases the kernels toward short memory
        without forbidding long memory, and keeps the spectrum smooth.
      - squash (off by default; `squash_threshold > 0`): soft-thresholding of the raw weights, the
        sparsifying regulariser of Fu et al. (2023). Useful at very long `max_len` where most taps
        should be zero.
    Parameters: `kernel` `(features, max_len)` (the ops' `k` layout, no transpose) and, with
    `use_skip`, `skip` `(features,)`.
    """

    def __init__(
        self,
        features: int,
        max_len: int,
        *,
        use_skip: bool = True,
        decay: bool = True,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        decay_target: float = 1e-2,
        squash_threshold: float = 0.0,
        dtype: tp.Any = None,
        param_dtype: tp.Any = jnp.float32,
        kernel_init: Initializer | None = None,
        skip_init: Initializer = hyena_math.SKIP_INIT,
        backend: str | None = None,
        rngs: nnx.Rngs,
        kernel_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        skip_metadata: tp.Mapping[str, tp.Any] = MappingProxyType({}),
    ):
        kernel_init = kernel_init or hyena_math.long_conv_kernel_init(max_len)
        self.kernel = nnx.Param(kernel_init(rngs.params(), (features, max_len), param_dtype), **kernel_metadata)
        self.skip = (
            nnx.Param(skip_init(rngs.params(), (features,), param_dtype), **skip_metadata)
            if use_skip else nnx.data(None))
        self.features = features
        self.max_len = max_len
        self.regularisation = dict(
            squash_threshold=squash_threshold, decay=decay, fast_decay_pct=fast_decay_pct,
            slow_decay_pct=slow_decay_pct, target=decay_target)
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.backend = backend

    def kernel_taps(self, seq_len: int) -> jax.Array:
        """The regularised kernel the convolution uses, `(features, min(seq_len, max_len))` float32."""
        return hyena_math.long_conv_kernel(self.kernel[...], seq_len, **self.regularisation)

    def __call__(self, x: jax.Array, *, pre_gate: jax.Array | None = None,
                 post_gate: jax.Array | None = None) -> jax.Array:
        skip = self.skip[...] if self.skip is not None else None
        dtype = _activation_dtype(self.dtype, x, self.kernel[...], skip)
        cast = lambda a: None if a is None else a.astype(dtype)  # noqa: E731
        return jff.fftconv(
            cast(x), self.kernel_taps(x.shape[-2]), pre_gate=cast(pre_gate), post_gate=cast(post_gate),
            skip=skip, layout="BLH", backend=self.backend)


class HyenaFilter(nnx.Module):
    """Hyena's implicit long filter: positional features -> MLP with sine activations -> exponential window.

    `__call__(seq_len)` returns `(kernel, bias)`: `kernel` `(features, seq_len)` float32 (the ops' `k`),
    `bias` `(features,)`, the per-channel skip Hyena adds around its long convolution. Parameters as in
    `hyena_math.hyena_filter_shapes` plus `bias`. `seq_len` may be anything up to `max_len`; shorter
    filters are prefixes of the `max_len` one.
    """

    def __init__(
        self,
        features: int,
        max_len: int,
        *,
        emb_dim: int = 3,
        width: int = 64,
        depth: int = 2,
        freq: float = 1.0,
        fast_decay_pct: float = 0.3,
        slow_decay_pct: float = 1.5,
        decay_target: float = 1e-2,
        decay_shift: float = 0.0,
        param_dtype: tp.Any = jnp.float32,
        kernel_init: Initializer = hyena_math.FILTER_KERNEL_INIT,
        bias_init: Initializer = hyena_math.FILTER_BIAS_INIT,
        skip_init: Initializer = hyena_math.SKIP_INIT,
        rngs: nnx.Rngs,
    ):
        shapes = hyena_math.hyena_filter_shapes(emb_dim, width, depth, features)
        inits = hyena_math.hyena_filter_inits(kernel_init, bias_init, depth, freq)
        for name, shape in shapes.items():
            setattr(self, name, nnx.Param(inits[name](rngs.params(), shape, param_dtype)))
        self.bias = nnx.Param(skip_init(rngs.params(), (features,), param_dtype))
        self._names = tuple(shapes)
        self.features = features
        self.max_len = max_len
        self.emb_dim = emb_dim
        self.window = dict(
            fast_decay_pct=fast_decay_pct, slow_decay_pct=slow_decay_pct, target=decay_target, shift=decay_shift)

    def __call__(self, seq_len: int) -> tuple[jax.Array, jax.Array]:
        params = {name: getattr(self, name)[...] for name in self._names}
        kernel = hyena_math.hyena_filter(params, seq_len, max_len=self.max_len, emb_dim=self.emb_dim, **self.window)
        return kernel, self.bias[...]


class HyenaOperator(nnx.Module):
    """Hyena operator of order N on `(..., L, d_model)`, `L <= max_len`.

    `in_proj` (d_model -> (N+1) d_model) -> causal depthwise `short_conv` -> chunks `x_0..x_{N-1}, v` ->
    N-1 long convolutions with implicit `filter` kernels, each one `fftconv` call with its gates fused
    (`pre_gate = x_{N-1-o}`, `post_gate = x_0` on the last, `skip` = the filter bias) -> `out_proj`.
    `filter_args` are passed to `HyenaFilter` (emb_dim, width, depth, freq, decay settings, inits).
    """

    def __init__(
        self,
        d_model: int,
        max_len: int,
        *,
        order: int = 2,
        short_kernel_size: int = 3,
        filter_args: tp.Mapping[str, tp.Any] = MappingProxyType({}),
        use_bias: bool = True,
        dtype: tp.Any = None,
        param_dtype: tp.Any = jnp.float32,
        kernel_init: Initializer = _default_kernel_init,
        bias_init: Initializer = _zeros,
        backend: str | None = None,
        rngs: nnx.Rngs,
    ):
        if order < 2:
            raise ValueError(f"order must be >= 2; got {order}")
        inner = (order + 1) * d_model
        dense = dict(use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, kernel_init=kernel_init,
                     bias_init=bias_init, rngs=rngs)
        self.in_proj = nnx.Linear(d_model, inner, **dense)
        self.short_conv = DepthwiseConv1d(
            inner, short_kernel_size, padding="CAUSAL", dtype=dtype, param_dtype=param_dtype,
            backend=backend, rngs=rngs)
        self.filter = HyenaFilter((order - 1) * d_model, max_len, param_dtype=param_dtype, rngs=rngs,
                                  **dict(filter_args))
        self.out_proj = nnx.Linear(d_model, d_model, **dense)
        self.d_model = d_model
        self.order = order
        self.backend = backend

    def __call__(self, u: jax.Array) -> jax.Array:
        x = self.short_conv(self.in_proj(u))
        kernel, skip = self.filter(u.shape[-2])
        conv = lambda v, k, **kw: jff.fftconv(v, k, layout="BLH", backend=self.backend, **kw)  # noqa: E731
        y = hyena_math.hyena_recurrence(x, self.d_model, self.order, kernel, skip, conv)
        return self.out_proj(y)
