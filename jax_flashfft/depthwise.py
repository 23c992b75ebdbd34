"""`depthwise_conv1d`: short depthwise (per-channel) convolution, as one XLA FFI custom call per direction.

Same structure as `fftconv.py`: validation -> custom_vjp -> custom_vmap (the mapped axis folds into the batch,
or into the channels when the weights are mapped) -> custom_partitioning (batch and channel sharding stay
local; dw and dbias are all-reduced over batch shards) -> ffi_call of "jff_depthwise_fwd" / "jff_depthwise_bwd".
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec as P

from jax_flashfft import _ffi, reference
from jax_flashfft._common import (
    LAYOUT_CODE,
    as_array,
    check_activation_dtype,
    check_float_dtype,
    in_rule_order,
    parse_layout,
    resolve_backend,
)

MAX_KERNEL_SIZE = 128


def _parse_padding(padding, kernel_size: int) -> tuple[int, int]:
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "same":
            lo = (kernel_size - 1) // 2
            return lo, kernel_size - 1 - lo
        if mode == "causal":
            return kernel_size - 1, 0
        if mode == "valid":
            return 0, 0
        raise ValueError(f"padding must be 'same', 'causal', 'valid', an int or a (lo, hi) pair; got {padding!r}")
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"padding must be >= 0; got {padding}")
        return int(padding), int(padding)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in padding
    ):
        lo, hi = int(padding[0]), int(padding[1])
        if lo < 0 or hi < 0:
            raise ValueError(f"padding (lo, hi) must both be >= 0; got {tuple(padding)}")
        return lo, hi
    raise ValueError(f"padding must be 'same', 'causal', 'valid', an int or a (lo, hi) pair; got {padding!r}")


def depthwise_conv1d(x, w, bias=None, *, padding="same", layout="BLH", backend=None):
    """Depthwise 1-D cross-correlation: `y[t, d] = bias[d] + sum_j w[j, d] * x_padded[t + j, d]`.

    Matches `lax.conv_general_dilated(..., feature_group_count=D)` and PyTorch `Conv1d(groups=D)`.

    Args:
      x: `(..., L, D)` for layout "BLH" or `(..., D, L)` for "BHL"; float16, bfloat16 or float32.
      w: `(K, D)` taps x channels, `1 <= K <= 128`; float32 or x's dtype (other floats are used in float32).
      bias: optional `(D,)`.
      padding: "same" (lo = (K-1)//2), "causal" (lo = K-1), "valid", an int p (both sides) or (lo, hi).
      layout: "BLH" or "BHL".
      backend: None or "ffi" for the compiled kernels, "xla" for `lax.conv_general_dilated`. When None, the
        environment variables JFF_DEPTHWISE_BACKEND, then JFF_BACKEND, may select "xla".
    Returns:
      `(..., L_out, D)` (or `(..., D, L_out)`) in x's dtype, `L_out = L + lo + hi - K + 1`.
    """
    layout = parse_layout(layout)
    x = as_array("x", x)
    w = as_array("w", w)
    bias = as_array("bias", bias)
    check_activation_dtype("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dimensions (..., {'L, D' if layout == 'BLH' else 'D, L'}); got shape {x.shape}")
    length, channels = (x.shape[-2], x.shape[-1]) if layout == "BLH" else (x.shape[-1], x.shape[-2])
    check_float_dtype("w", w)
    if w.ndim != 2 or w.shape[1] != channels:
        raise ValueError(f"w must have shape (K, D) = (K, {channels}); got {w.shape}")
    kernel_size = w.shape[0]
    if not 1 <= kernel_size <= MAX_KERNEL_SIZE:
        raise ValueError(f"w's kernel size K must be in 1..{MAX_KERNEL_SIZE}; got K = {kernel_size}")
    if bias is not None:
        check_float_dtype("bias", bias)
        if bias.shape != (channels,):
            raise ValueError(f"bias must have shape (D,) = ({channels},); got {bias.shape}")
    lo, hi = _parse_padding(padding, kernel_size)
    out_length = length + lo + hi - kernel_size + 1
    if out_length < 1:
        raise ValueError(
            f"output length L + lo + hi - K + 1 = {length} + {lo} + {hi} - {kernel_size} + 1 = {out_length} "
            f"is empty; pad more or use a shorter kernel")

    if resolve_backend(backend, "JFF_DEPTHWISE_BACKEND") == "xla" or x.size == 0:
        return reference.depthwise_conv1d_xla(x, w, bias, padding=(lo, hi), layout=layout)

    _ffi.require_extension()
    # The kernels take weights in float32 or in x's dtype; anything else is used in float32.
    w_dtype = w.dtype if w.dtype in (x.dtype, jnp.float32) else jnp.float32
    lead = x.shape[:-2]
    x3 = x.reshape((math.prod(lead),) + x.shape[-2:])
    y = _depthwise_canonical(
        x3, w.astype(w_dtype), None if bias is None else bias.astype(w_dtype), lo, hi, LAYOUT_CODE[layout])
    return y.reshape(lead + y.shape[1:])


# ---------------------------------------------------------------------------------------------------
# custom VJP over the canonical form: x (B, L, D) / (B, D, L), w (K, D), bias (D,).


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _depthwise_canonical(x, w, bias, pad_lo, pad_hi, layout):
    static = (pad_lo, pad_hi, layout, bias is not None)
    return _fwd_op(static)(x, w, *([] if bias is None else [bias]))


def _depthwise_canonical_fwd(x, w, bias, pad_lo, pad_hi, layout):
    return _depthwise_canonical(x, w, bias, pad_lo, pad_hi, layout), (x, w, bias)


def _depthwise_canonical_bwd(pad_lo, pad_hi, layout, residuals, dy):
    x, w, bias = residuals
    static = (pad_lo, pad_hi, layout, bias is not None)
    dx, dw, *dbias = _bwd_op(static)(dy, x, w)
    return dx, dw.astype(w.dtype), dbias[0].astype(bias.dtype) if bias is not None else None


_depthwise_canonical.defvjp(_depthwise_canonical_fwd, _depthwise_canonical_bwd)


# ---------------------------------------------------------------------------------------------------
# vmap. Mapped activations fold into the batch (free). Mapped weights (or gradients that must come back per
# mapped element) fold into the channel axis, which needs a transpose of the activations.


def _channel_axis(layout):
    return 2 if layout == LAYOUT_CODE["BLH"] else 1


def _to_channels(x, layout):
    """(V, B, ..., D, ...) -> (B, ..., V*D, ...): the mapped axis becomes part of the channels."""
    axis = _channel_axis(layout)
    x = jnp.moveaxis(x, 0, axis)  # V lands just before D
    return x.reshape(x.shape[:axis] + (-1,) + x.shape[axis + 2:])


def _from_channels(x, layout, axis_size):
    axis = _channel_axis(layout)
    x = x.reshape(x.shape[:axis] + (axis_size, -1) + x.shape[axis + 1:])
    return jnp.moveaxis(x, axis, 0)


def _bcast(x, batched, axis_size):
    return x if batched else jnp.broadcast_to(x, (axis_size,) + x.shape)


@functools.lru_cache(maxsize=None)
def _fwd_op(static):
    layout, has_bias = static[2], static[3]

    @custom_vmap
    def op(x, w, *bias):
        return _partitioned("fwd", static)(x, w, *bias)

    @op.def_vmap
    def rule(axis_size, in_batched, x, w, *bias):
        x_b, w_b, *bias_b = in_batched
        if not w_b and not any(bias_b):
            y = _fwd_op(static)(x.reshape((-1,) + x.shape[2:]), w, *bias)
            return y.reshape((axis_size, -1) + y.shape[1:]), True
        x = _to_channels(_bcast(x, x_b, axis_size), layout)
        w = jnp.moveaxis(_bcast(w, w_b, axis_size), 0, 1).reshape(w.shape[-2], -1)  # (K, V*D)
        bias = [_bcast(b, bb, axis_size).reshape(-1) for b, bb in zip(bias, bias_b)]
        y = _fwd_op(static)(x, w, *bias)
        return _from_channels(y, layout, axis_size), True

    return op


@functools.lru_cache(maxsize=None)
def _bwd_op(static):
    layout, has_bias = static[2], static[3]

    @custom_vmap
    def op(dy, x, w):
        return _partitioned("bwd", static)(dy, x, w)

    @op.def_vmap
    def rule(axis_size, in_batched, dy, x, w):
        dy_b, x_b, w_b = in_batched
        # dw and dbias must come back per mapped element, so the mapped axis goes into the channels.
        dy = _to_channels(_bcast(dy, dy_b, axis_size), layout)
        x = _to_channels(_bcast(x, x_b, axis_size), layout)
        kernel_size = w.shape[-2]
        w = jnp.moveaxis(_bcast(w, w_b, axis_size), 0, 1).reshape(kernel_size, -1)
        dx, dw, *dbias = _bwd_op(static)(dy, x, w)
        outs = [_from_channels(dx, layout, axis_size), jnp.moveaxis(dw.reshape(kernel_size, axis_size, -1), 1, 0)]
        outs += [db.reshape(axis_size, -1) for db in dbias]
        return tuple(outs), tuple(True for _ in outs)

    return op


# ---------------------------------------------------------------------------------------------------
# Sharding: batch and channels stay sharded; the length axis is replicated (the halo crosses shards).


def _specs(layout, batch_axes, chan_axes):
    act = P(batch_axes, None, chan_axes) if layout == LAYOUT_CODE["BLH"] else P(batch_axes, chan_axes, None)
    return act, P(None, chan_axes), P(chan_axes)


def _shardings(kind, static, mesh, arg_shapes):
    layout, has_bias = static[2], static[3]
    sharding = arg_shapes[0].sharding
    spec = tuple(sharding.spec) + (None,) * 3 if isinstance(sharding, NamedSharding) else (None,) * 3
    batch_axes, chan_axes = spec[0], spec[_channel_axis(layout)]
    act, mat, vec = (NamedSharding(mesh, s) for s in _specs(layout, batch_axes, chan_axes))
    if kind == "fwd":
        return batch_axes, [act, mat] + [vec] * has_bias, act
    return batch_axes, [act, act, mat], (act, mat) + (vec,) * has_bias


@functools.lru_cache(maxsize=None)
def _partitioned(kind, static):
    ffi_fn = _ffi_fwd if kind == "fwd" else _ffi_bwd
    layout, has_bias = static[2], static[3]

    @custom_partitioning
    def op(*args):
        return ffi_fn(static, *args)

    def partition(mesh, arg_shapes, result_shape):
        batch_axes, arg_shardings, result_shardings = _shardings(kind, static, mesh, arg_shapes)

        def lower(*args):
            out = ffi_fn(static, *args)
            if kind == "bwd" and batch_axes is not None:
                dx, *sums = out
                out = (dx, *(jax.lax.psum(s, batch_axes) for s in sums))
            return out

        return mesh, lower, result_shardings, tuple(arg_shardings)

    def infer_sharding_from_operands(mesh, arg_shapes, result_shape):
        return _shardings(kind, static, mesh, arg_shapes)[2]

    # Input and output lengths differ (l vs o); both must stay whole on each shard.
    x_in, y_out = ("b l d", "b o d") if layout == LAYOUT_CODE["BLH"] else ("b d l", "b d o")
    if kind == "fwd":
        rule = ", ".join([x_in, "k d"] + ["d"] * has_bias) + f" -> {y_out}"
    else:
        rule = f"{y_out}, {x_in}, k d -> " + ", ".join([x_in, "k d"] + ["d"] * has_bias)
    op.def_partition(
        partition=partition,
        infer_sharding_from_operands=infer_sharding_from_operands,
        sharding_rule=rule,
        need_replication_factors=in_rule_order(rule, ("l", "o", "k")),
    )
    return op


# ---------------------------------------------------------------------------------------------------
# FFI calls (cuda/README.md). An absent bias travels as an empty (0,) array.


def _attrs(static):
    return dict(pad_lo=np.int64(static[0]), pad_hi=np.int64(static[1]), layout=np.int32(static[2]))


def _out_shape(static, x_shape, kernel_size):
    pad_lo, pad_hi, layout = static[:3]
    length_axis = 1 if layout == LAYOUT_CODE["BLH"] else 2
    shape = list(x_shape)
    shape[length_axis] = x_shape[length_axis] + pad_lo + pad_hi - kernel_size + 1
    return tuple(shape)


def _ffi_fwd(static, x, w, *bias):
    out = jax.ShapeDtypeStruct(_out_shape(static, x.shape, w.shape[0]), x.dtype)
    bias_arg = bias[0] if bias else jnp.zeros((0,), w.dtype)
    return jax.ffi.ffi_call("jff_depthwise_fwd", out)(x, w, bias_arg, **_attrs(static))


def _ffi_bwd(static, dy, x, w):
    has_bias = static[3]
    results = (
        jax.ShapeDtypeStruct(x.shape, x.dtype),
        jax.ShapeDtypeStruct(w.shape, jnp.float32),
        jax.ShapeDtypeStruct((w.shape[1],) if has_bias else (0,), jnp.float32),
    )
    dx, dw, dbias = jax.ffi.ffi_call("jff_depthwise_bwd", results)(dy, x, w, **_attrs(static))
    return (dx, dw, dbias) if has_bias else (dx, dw)
