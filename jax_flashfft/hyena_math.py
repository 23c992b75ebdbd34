"""Math shared by the Flax front ends (`jax_flashfft.nnx`, `jax_flashfft.linen`).

Everything here is a pure function of arrays and static configuration, so the two front ends differ only
in how they create and store parameters. Filters come out as `(channels, length)` float32 arrays, the layout
`fftconv` takes for `k`.

Facts used (Hyena, arXiv 2302.10866, and its public implementation): the implicit filter is
`h(t) = window(t) * MLP(z(t))` where `z` are sinusoidal positional features, the MLP uses sine activations
with a learnable frequency, and the window is an exponential decay whose rate differs per channel so that
some channels see far and others near. Long-conv regularisation (Fu et al., arXiv 2302.06646): squash
(soft-threshold the kernel weights) keeps explicit long kernels sparse and smooth enough to train.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np


def positional_features(seq_len: int, max_len: int, emb_dim: int) -> tuple[jax.Array, jax.Array]:
    """Sinusoidal features of the first `seq_len` of `max_len` positions.

    Returns `z` `(seq_len, emb_dim)` = `[t, cos(2π f_b n / max_len), -sin(2π f_b n / max_len)]` with `b`
    over `(emb_dim - 1) // 2` frequency bands `f_b` spread over `[1e-4, bands - 1]`, and `t` `(seq_len, 1)`,
    the position scaled to `[0, 1]` over `max_len`. Features depend on `max_len`, not on `seq_len`, so a
    filter evaluated on a shorter sequence is the prefix of the long one (causal models stay consistent).
    """
    if emb_dim < 3 or emb_dim % 2 == 0:
        raise ValueError(f"emb_dim must be odd and >= 3 (t plus cos/sin pairs); got {emb_dim}")
    if not 1 <= seq_len <= max_len:
        raise ValueError(f"sequence length must be in [1, max_len={max_len}]; got {seq_len}")
    bands = (emb_dim - 1) // 2
    # Built in numpy: constants of the static shapes, folded into the compiled graph.
    n = np.arange(seq_len, dtype=np.float64)[:, None]
    t = n / max(max_len - 1, 1)
    freqs = np.linspace(1e-4, bands - 1, bands)[None, :]
    angle = 2.0 * math.pi * freqs * n / max_len
    z = np.concatenate([t, np.cos(angle), -np.sin(angle)], axis=-1)
    return jnp.asarray(z, jnp.float32), jnp.asarray(t, jnp.float32)


def decay_rates(channels: int, fast_decay_pct: float, slow_decay_pct: float, target: float) -> np.ndarray:
    """Per-channel rates `a_c` so that `exp(-a_c t)` falls to `target` at `t = slow_decay_pct` for the
    first channel and at `t = fast_decay_pct` for the last (t in [0, 1] over the maximum length)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"decay target must be in (0, 1); got {target}")
    if fast_decay_pct <= 0 or slow_decay_pct <= 0:
        raise ValueError(f"decay percentages must be > 0; got fast={fast_decay_pct}, slow={slow_decay_pct}")
    slow = -math.log(target) / slow_decay_pct
    fast = -math.log(target) / fast_decay_pct
    return np.linspace(slow, fast, channels)


def exponential_window(
    t: jax.Array,
    channels: int,
    *,
    fast_decay_pct: float = 0.3,
    slow_decay_pct: float = 1.5,
    target: float = 1e-2,
    shift: float = 0.0,
) -> jax.Array:
    """`(L, channels)` window `exp(-a_c t) + shift`: the exponential modulation of Hyena filters."""
    rates = jnp.asarray(decay_rates(channels, fast_decay_pct, slow_decay_pct, target), jnp.float32)
    return jnp.exp(-t * rates[None, :]) + shift


def sine_mlp(z: jax.Array, params: Mapping[str, jax.Array]) -> jax.Array:
    """The implicit filter network: `Linear -> sin -> (Linear -> sin) * depth -> Linear (no bias)`.

    `params`: `in_kernel (E, W)`, `in_bias (W,)`, `hidden_kernel (depth, W, W)`, `hidden_bias (depth, W)`,
    `out_kernel (W, C)` and `freq (W,)`, the sine frequency shared by every activation. Runs in float32:
    the filter feeds `fftconv`, which uses `k` in float32 anyway, and the network is tiny.
    """
    f32 = lambda name: jnp.asarray(params[name], jnp.float32)  # noqa: E731
    hp = jax.lax.Precision.HIGHEST  # a few KFLOPs; TF32 rounding here would shift every filter tap
    freq = f32("freq")
    h = jnp.sin(freq * (jnp.dot(z, f32("in_kernel"), precision=hp) + f32("in_bias")))
    hidden_kernel, hidden_bias = f32("hidden_kernel"), f32("hidden_bias")
    for i in range(hidden_kernel.shape[0]):
        h = jnp.sin(freq * (jnp.dot(h, hidden_kernel[i], precision=hp) + hidden_bias[i]))
    return jnp.dot(h, f32("out_kernel"), precision=hp)


def hyena_filter(
    params: Mapping[str, jax.Array],
    seq_len: int,
    *,
    max_len: int,
    emb_dim: int,
    fast_decay_pct: float = 0.3,
    slow_decay_pct: float = 1.5,
    target: float = 1e-2,
    shift: float = 0.0,
) -> jax.Array:
    """Implicit Hyena filter of length `seq_len`: `(C, seq_len)` float32, ready to be `fftconv`'s `k`."""
    z, t = positional_features(seq_len, max_len, emb_dim)
    h = sine_mlp(z, params)
    h = h * exponential_window(
        t, h.shape[-1], fast_decay_pct=fast_decay_pct, slow_decay_pct=slow_decay_pct, target=target, shift=shift)
    return h.T


def squash(kernel: jax.Array, threshold: float) -> jax.Array:
    """Soft threshold `sign(k) * max(|k| - threshold, 0)`: the "squash" long-conv regulariser.

    Small weights are zeroed (a sparse kernel is a smooth spectrum); the rest shrink by `threshold`.
    A weight inside the threshold gets no gradient, so keep `threshold` well under the init scale.
    """
    if threshold <= 0:
        return kernel
    return jnp.sign(kernel) * jax.nn.relu(jnp.abs(kernel) - threshold)


def long_conv_kernel(
    kernel: jax.Array,
    seq_len: int,
    *,
    squash_threshold: float = 0.0,
    decay: bool = True,
    fast_decay_pct: float = 0.3,
    slow_decay_pct: float = 1.5,
    target: float = 1e-2,
) -> jax.Array:
    """Regularised explicit kernel: squash the raw `(C, max_len)` weights, then apply the same per-channel
    exponential window as Hyena filters (scaled to `max_len`), and keep the first `min(seq_len, max_len)`
    taps. Returns float32 `(C, min(seq_len, max_len))`."""
    channels, max_len = kernel.shape
    length = min(seq_len, max_len)
    k = squash(jnp.asarray(kernel[:, :length], jnp.float32), squash_threshold)
    if decay:
        _, t = positional_features(length, max_len, 3)
        k = k * exponential_window(
            t, channels, fast_decay_pct=fast_decay_pct, slow_decay_pct=slow_decay_pct, target=target).T
    return k


def stacked(init: Callable, count: int) -> Callable:
    """Initializer of `(count, *shape)` made of `count` independent draws of `init(key, shape)`, so that
    fan-in based initializers see the shape of one layer, not of the stack."""

    def init_stack(key, shape, dtype=jnp.float32):
        if shape[0] != count:
            raise ValueError(f"stacked initializer expects leading dimension {count}; got shape {shape}")
        if count == 0:
            return jnp.zeros(shape, dtype)
        return jnp.stack([init(k, tuple(shape[1:]), dtype) for k in jax.random.split(key, count)])

    return init_stack


def symmetric_uniform(bound: float) -> Callable:
    """`U(-bound, bound)`; jax's `uniform` initializer only draws from `[0, scale)`."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# Defaults shared by both front ends. Sine MLP weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's Linear
# default, what Hyena filters were tuned with); biases U(-1, 1) so the sines start at varied phases.
FILTER_KERNEL_INIT = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
FILTER_BIAS_INIT = symmetric_uniform(1.0)
# The skip (Hyena's filter bias, the "D" term of SSMs): N(0, 1) as in the Hyena reference code.
SKIP_INIT = jax.nn.initializers.normal(1.0)


def long_conv_kernel_init(max_len: int) -> Callable:
    """Default explicit-kernel init: N(0, 1/max_len), so that before the decay window a kernel has unit
    energy and the convolution roughly preserves the input's scale."""
    return jax.nn.initializers.normal(1.0 / math.sqrt(max_len))


def hyena_filter_shapes(emb_dim: int, width: int, depth: int, channels: int) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the implicit filter; names are the keys `sine_mlp` reads."""
    return {
        "in_kernel": (emb_dim, width),
        "in_bias": (width,),
        "hidden_kernel": (depth, width, width),
        "hidden_bias": (depth, width),
        "out_kernel": (width, channels),
        "freq": (width,),
    }


def hyena_filter_inits(kernel_init: Callable, bias_init: Callable, depth: int, freq: float) -> dict[str, Callable]:
    """Initializer per filter parameter (same keys as `hyena_filter_shapes`)."""
    return {
        "in_kernel": kernel_init,
        "in_bias": bias_init,
        "hidden_kernel": stacked(kernel_init, depth),
        "hidden_bias": stacked(bias_init, depth),
        "out_kernel": kernel_init,
        "freq": jax.nn.initializers.constant(freq),
    }


def hyena_recurrence(x: jax.Array, channels: int, order: int, kernel: jax.Array, skip: jax.Array, conv):
    """The order-N Hyena recurrence on the short-conv output `x` `(..., L, (order + 1) * channels)`.

    Chunks `x_0 .. x_{N-1}, v`; for `o = 0 .. N-2`: `v = conv(v, k_o, pre=x_{N-1-o}, skip=skip_o)`, with
    `post = x_0` fused into the last step. `conv(u, k, pre_gate, post_gate, skip)` is `fftconv` with the
    layout and backend bound; `kernel` is `(order - 1) * channels` filters, `skip` the matching skips.
    """
    if order < 2:
        raise ValueError(f"order must be >= 2 (one long convolution per order above 1); got {order}")
    chunks = [x[..., i * channels:(i + 1) * channels] for i in range(order + 1)]
    gates, v = chunks[:order], chunks[order]
    for o in range(order - 1):
        rows = slice(o * channels, (o + 1) * channels)
        post = gates[0] if o == order - 2 else None
        v = conv(v, kernel[rows], pre_gate=gates[order - 1 - o], post_gate=post, skip=skip[rows])
    return v


def conv_padding(padding):
    """Padding in `flax` Conv's vocabulary ('SAME', 'VALID', 'CAUSAL', int, (lo, hi) or [(lo, hi)]) in the
    form `depthwise_conv1d` takes."""
    if isinstance(padding, str):
        if padding.upper() in ("SAME", "VALID", "CAUSAL"):
            return padding.lower()
        raise ValueError(f"padding must be 'SAME', 'VALID', 'CAUSAL', an int or (lo, hi); got {padding!r}")
    if isinstance(padding, (list, tuple)) and len(padding) == 1 and isinstance(padding[0], (list, tuple)):
        padding = padding[0]  # flax's one-pair-per-spatial-dimension form
    if isinstance(padding, (list, tuple)):
        return tuple(padding)
    return padding
