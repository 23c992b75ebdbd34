"""`fftconv`: gated long convolution through FFTs, as one XLA FFI custom call per direction.

Structure, outermost first:
  fftconv()             validation, backend choice, reshape to the canonical 3-D form
  _fftconv_canonical    jax.custom_vjp: forward and backward both run through FFI targets
  _fwd_op / _bwd_op     jax.custom_batching.custom_vmap: vmap folds the mapped axis into the batch (free
                        reshape) instead of looping or copying k per batch element
  _spectrum_op          at the long sizes (N >= 65536): k's prepared spectrum K', computed once by the
                        forward and kept as a residual for the backward instead of being rebuilt there
  _partitioned(...)     custom_partitioning: under jit on a Mesh each shard runs the kernel on its own rows
                        (batch and H sharding need no all-gather; dk is all-reduced over batch shards)
  _ffi_*                jax.ffi.ffi_call of "jff_fftconv_fwd" / "_bwd" / "_filter_spectrum" (cuda/README.md)
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

MAX_FFT_SIZE = 1 << 24


def _default_fft_size(length: int, kernel_length: int) -> int:
    """Smallest power of two holding the full linear convolution (so the result is causal, not circular)."""
    needed = length + kernel_length - 1
    return 1 << max(0, (needed - 1).bit_length())


def fftconv(u, k, *, pre_gate=None, post_gate=None, skip=None, fft_size=None, layout="BHL", backend=None):
    """Gated FFT convolution along the sequence axis, computed per (batch, h) row.

    With `v = pre_gate * u` (gates default to 1):
    `y = post_gate * (irfft(rfft(v, N) * rfft(k[h], N), N)[:L] + skip[h] * v)`, in `u`'s dtype.

    Args:
      u: `(..., H, L)` for layout "BHL" or `(..., L, H)` for "BLH"; float16, bfloat16 or float32.
      k: `(H, Lk)` filters, any float dtype (used in float32); `1 <= Lk`.
      pre_gate, post_gate: optional, exactly `u`'s shape and dtype.
      skip: optional `(H,)` per-channel skip weights (used in float32).
      fft_size: None for the linear (causal) convolution; a power of two `N >= max(L, Lk)` for
        FlashFFTConv's semantics (circular when `N < L + Lk - 1`).
      layout: "BHL" or "BLH". On CUDA the tensor-core forwards (float16/bfloat16, N up to 32768; L <= 128
        at any such N) read BLH natively (N >= 4096 through thread block clusters, compute capability 9.0; on sm_80
        those sizes run the slower generic kernels in BLH). Their backwards, and the long-N kernels (N from
        65536 to 2^24; float32 up to 2^23) both ways, read BHL rows only: BLH input of those dtypes and sizes
        is transposed to BHL and back by XLA.
      backend: None or "ffi" for the compiled kernels, "xla" for the pure-JAX path. When None, the
        environment variables JFF_FFTCONV_BACKEND, then JFF_BACKEND, may select "xla".
    """
    layout = parse_layout(layout)
    u = as_array("u", u)
    k = as_array("k", k)
    pre_gate = as_array("pre_gate", pre_gate)
    post_gate = as_array("post_gate", post_gate)
    skip = as_array("skip", skip)

    check_activation_dtype("u", u)
    if u.ndim < 2:
        raise ValueError(f"u must have at least 2 dimensions (..., {'H, L' if layout == 'BHL' else 'L, H'}); got shape {u.shape}")
    heads, length = (u.shape[-2], u.shape[-1]) if layout == "BHL" else (u.shape[-1], u.shape[-2])
    if heads < 1 or length < 1:
        raise ValueError(f"u must have H >= 1 and L >= 1; got shape {u.shape} with layout {layout}")

    check_float_dtype("k", k)
    if k.ndim == 3 and k.shape[0] == 1:
        k = k[0]  # Hyena ports often carry a (1, H, Lk) filter; the squeeze keeps dk's shape matching k's.
    if k.ndim != 2:
        raise ValueError(f"k must have shape (H, Lk) = ({heads}, Lk); got shape {k.shape}")
    if k.shape[0] != heads:
        raise ValueError(f"k has {k.shape[0]} channels but u has H = {heads} (u shape {u.shape}, layout {layout})")
    kernel_length = k.shape[1]
    if kernel_length < 1:
        raise ValueError(f"k must have Lk >= 1; got shape {k.shape}")

    for name, gate in (("pre_gate", pre_gate), ("post_gate", post_gate)):
        if gate is None:
            continue
        if gate.shape != u.shape:
            raise ValueError(f"{name} must have u's shape {u.shape}; got {gate.shape}")
        if gate.dtype != u.dtype:
            raise TypeError(f"{name} must have u's dtype {u.dtype}; got {gate.dtype}")
    if skip is not None:
        check_float_dtype("skip", skip)
        if skip.shape != (heads,):
            raise ValueError(f"skip must have shape (H,) = ({heads},); got {skip.shape}")

    if fft_size is None:
        fft_size = _default_fft_size(length, kernel_length)
        if fft_size > MAX_FFT_SIZE:
            raise ValueError(
                f"L + Lk - 1 = {length + kernel_length - 1} needs an FFT of size {fft_size}, above the maximum "
                f"{MAX_FFT_SIZE}; shorten the sequence or the filter, or pass fft_size for a circular convolution")
    else:
        if isinstance(fft_size, bool) or not isinstance(fft_size, int) or fft_size < 1 or fft_size & (fft_size - 1):
            raise ValueError(f"fft_size must be None or a positive power of two; got {fft_size!r}")
        if fft_size > MAX_FFT_SIZE:
            raise ValueError(f"fft_size must be at most {MAX_FFT_SIZE}; got {fft_size}")
        if fft_size < max(length, kernel_length):
            raise ValueError(
                f"fft_size must be >= max(L, Lk) = max({length}, {kernel_length}); got {fft_size}")

    if resolve_backend(backend, "JFF_FFTCONV_BACKEND") == "xla" or u.size == 0:
        return reference.fftconv_xla(u, k, pre_gate, post_gate, skip, fft_size=fft_size, layout=layout)

    _ffi.require_extension()
    lead = u.shape[:-2]
    canon = (math.prod(lead),) + u.shape[-2:]
    reshape = lambda x: None if x is None else x.reshape(canon)  # noqa: E731
    k32 = k.astype(jnp.float32)[None]
    skip32 = None if skip is None else skip.astype(jnp.float32)[None]

    prepared = _long_size(u.dtype, fft_size)

    def run(layout_name, u, pre, post):
        return _fftconv_canonical(u, k32, pre, post, skip32, fft_size, LAYOUT_CODE[layout_name], prepared)

    u3, pre3, post3 = reshape(u), reshape(pre_gate), reshape(post_gate)
    if layout == "BLH" and prepared:  # the long kernels read BHL rows only
        y = _platform_bhl(run, [u3, pre3, post3], lambda y, swap: swap(y))
    else:
        y = run(layout, u3, pre3, post3)
    return y.reshape(u.shape)


# FFT sizes and dtypes of the CUDA kernels that read BHL rows only: the long-N path (cuda/fftconv_long/,
# float32 through CUDA cores up to 2^23: its fp32 inner row is at most 16384 points) both ways, and the
# tensor-core kernels' backward (cuda/fftconv/short_conv.cu for every N <= 128 and L <= 128 above it, or its
# A/B switch's L <= 256; monarch_bwd.cu from 256 to 32768; their forwards read BLH natively). Elsewhere the
# generic CUDA kernels run, natively in both layouts.
SHORT_MAX_FFT = 128
TENSOR_CORE_MIN_FFT, TENSOR_CORE_MAX_FFT = 256, 32768
LONG_MIN_FFT, LONG_MAX_FFT, LONG_MAX_FFT_F32 = 1 << 16, 1 << 24, 1 << 23
# The long path's split N = N1 x N2 (cuda/fftconv_long/long_plan.h, default_n1): K' holds N1/2 + 1 slices of
# N2 complex values per filter. The handlers check K''s shape against their own table.
_LONG_N1 = {1 << 16: 16, 1 << 17: 32, 1 << 18: 32, 1 << 19: 32, 1 << 20: 256, 1 << 21: 512, 1 << 22: 512,
            1 << 23: 512, 1 << 24: 512}


def _half(dtype) -> bool:
    return dtype in (jnp.float16, jnp.bfloat16)


def _long_size(dtype, fft_size: int) -> bool:
    """True where the CUDA long-N kernels take the call (BHL rows, k's spectrum prepared by its own op)."""
    return LONG_MIN_FFT <= fft_size <= (LONG_MAX_FFT if _half(dtype) else LONG_MAX_FFT_F32)


def _tensor_core_backward(dtype, fft_size: int) -> bool:
    return _half(dtype) and (fft_size <= SHORT_MAX_FFT or TENSOR_CORE_MIN_FFT <= fft_size <= TENSOR_CORE_MAX_FFT)


def _prepared_spectrum_floats(fft_size: int, bfloat16_data: bool) -> int:
    """K''s last axis (long_plan.h prepared_spectrum_floats): N1/2 + 1 slices of N2 complex values in float32, or in
    bfloat16 for bfloat16 data (two to a float: half the memory for the residual the backward keeps)."""
    n1 = _LONG_N1[fft_size]
    return (n1 // 2 + 1) * (fft_size // n1) * (1 if bfloat16_data else 2)


def _platform_bhl(compute, activations, transpose_results):
    """compute(layout_name, *activations) for BLH activations, on CUDA through the BHL kernels.

    Interim, CUDA only: XLA transposes each activation to BHL and each activation-shaped result back
    (`transpose_results(results, swap)` applies `swap` to those): one extra pass each way, which XLA may
    fuse into producers -- still 2-3x faster than the generic kernels' native BLH at these sizes. Other
    platforms run the native BLH kernels.
    """
    def swap(x):
        return None if x is None else jnp.swapaxes(x, -1, -2)

    def via_bhl(*acts):
        return transpose_results(compute("BHL", *(swap(a) for a in acts)), swap)

    return jax.lax.platform_dependent(*activations, cuda=via_bhl, default=lambda *acts: compute("BLH", *acts))


# ---------------------------------------------------------------------------------------------------
# custom VJP over the canonical form: u (B, H, L) / (B, L, H), k (1, H, Lk) f32, skip (1, H) f32.


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _fftconv_canonical(u, k, pre, post, skip, fft_size, layout, prepared):
    return _fftconv_canonical_fwd(u, k, pre, post, skip, fft_size, layout, prepared)[0]


def _fftconv_canonical_fwd(u, k, pre, post, skip, fft_size, layout, prepared):
    """y, and the residuals: the inputs, and K' where the call prepares it (`prepared`, the long sizes).

    K' is an explicit residual, so one jitted training step computes it once for both directions (about a
    tenth of the 1M fwd+bwd); under jax.checkpoint the policy decides whether it is kept or recomputed."""
    static = _Static(fft_size, layout, u.shape[0], pre is not None, post is not None, skip is not None, prepared)
    kspec = _spectrum_op(static, u.dtype == jnp.bfloat16)(k, *_present(skip)) if prepared else None
    y = _fwd_op(static)(u, k, *_present(pre, post, skip, kspec))
    return y, (u, k, pre, post, skip, kspec)


def _fftconv_canonical_bwd(fft_size, layout, prepared, residuals, dy):
    u, k, pre, post, skip, kspec = residuals

    def grads(layout_name, dy, u, pre, post):
        static = _Static(fft_size, LAYOUT_CODE[layout_name], u.shape[0], pre is not None, post is not None,
                         skip is not None, prepared)
        du, dk, *rest = _bwd_op(static)(dy, u, k, *_present(pre, post, skip, kspec))
        return (du, dk) + _split_optionals(static, rest)

    # The native BLH backward kernel (CUDA self-test rows only) measured 2.2-3.9x the BHL kernel's time on the H100
    # at 4K-32K, the transposes 1.65-2.07x (benchmarks/notes_monarch.md, session 45).
    if layout == LAYOUT_CODE["BLH"] and _tensor_core_backward(u.dtype, fft_size):
        def transpose_results(g, swap):  # du, dpre, dpost have u's shape; dk and dskip have no L axis
            du, dk, dpre, dpost, dskip = g
            return swap(du), dk, swap(dpre), swap(dpost), dskip

        return _platform_bhl(grads, [dy, u, pre, post], transpose_results)
    return grads("BLH" if layout == LAYOUT_CODE["BLH"] else "BHL", dy, u, pre, post)


_fftconv_canonical.defvjp(_fftconv_canonical_fwd, _fftconv_canonical_bwd)


class _Static(tuple):
    """Hashable static configuration of one call: FFT size, layout, rows_per_group, which optionals exist,
    and whether k's spectrum K' is prepared by its own op (then the last operand of the forward and backward)."""

    def __new__(cls, fft_size, layout, rows_per_group, has_pre, has_post, has_skip, prepared):
        return super().__new__(cls, (int(fft_size), int(layout), int(rows_per_group), bool(has_pre), bool(has_post),
                                     bool(has_skip), bool(prepared)))

    fft_size = property(lambda s: s[0])
    layout = property(lambda s: s[1])
    rows_per_group = property(lambda s: s[2])
    has_pre = property(lambda s: s[3])
    has_post = property(lambda s: s[4])
    has_skip = property(lambda s: s[5])
    prepared = property(lambda s: s[6])


def _present(*xs):
    return tuple(x for x in xs if x is not None)


def _split_optionals(static, opts):
    """(pre, post, skip) with None for the absent ones, from the packed tuple of present ones."""
    opts = iter(opts)
    pre = next(opts) if static.has_pre else None
    post = next(opts) if static.has_post else None
    skip = next(opts) if static.has_skip else None
    return pre, post, skip


def _split_operands(static, opts):
    """(pre, post, skip, kspec) from the forward's and backward's packed optional operands."""
    opts = list(opts)
    kspec = opts.pop() if static.prepared else None
    return _split_optionals(static, opts) + (kspec,)


# ---------------------------------------------------------------------------------------------------
# vmap: batch row b of the kernel uses filter group (b // rows_per_group) % G, so a mapped axis over the
# activations folds into the batch with a free reshape and k is never copied per batch element. The filter
# operands (k (G, H, Lk), skip (G, H), K' (G, H, S)) all fold the same way.


def _fold_batched(axis_size, static, u_like, u_batched, filters, filters_batched):
    """Folds the vmapped axis into the canonical batch (activations) and filter-group (filters) axes.

    `u_like` is the list of activation-shaped operands (dy, u, gates); `u_batched` their batched flags.
    `filters` is [k, skip, kspec] (None where absent), mapped along axis 0 when `filters_batched`.
    Returns the folded operands, the folded filters, and the tiling factor applied to the groups.
    """
    batch = next(x.shape[1] if b else x.shape[0] for x, b in zip(u_like, u_batched))
    if filters_batched or any(u_batched):
        u_like = [x if b else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, b in zip(u_like, u_batched)]
        u_like = [x.reshape((axis_size * batch,) + x.shape[2:]) for x in u_like]
    k = filters[0]
    groups = k.shape[1] if filters_batched else k.shape[0]
    tile = 1
    if filters_batched:
        # Batch index v*B + b must map to group v*G' + (b // R); that holds once B == R * G'.
        tile = batch // (static.rows_per_group * groups)

        def fold(x):
            if x is None:
                return None
            if tile > 1:
                x = jnp.tile(x, (1, tile) + (1,) * (x.ndim - 2))
            return x.reshape((-1,) + x.shape[2:])

        filters = [fold(x) for x in filters]
    return u_like, filters, tile


def _broadcast_filters(axis_size, filters, batched):
    """Every present filter operand mapped along a new axis 0 (broadcast where it was not)."""
    return [x if x is None or b else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, b in zip(filters, batched)]


@functools.lru_cache(maxsize=None)
def _fwd_op(static):
    @custom_vmap
    def op(u, k, *opts):
        return _partitioned("fwd", static)(u, k, *opts)

    @op.def_vmap
    def rule(axis_size, in_batched, u, k, *opts):
        pre, post, skip, kspec = _split_operands(static, opts)
        u_b, k_b, *opt_b = in_batched
        pre_b, post_b, skip_b, kspec_b = _split_operands(static, opt_b)
        acts = [u] + [g for g in (pre, post) if g is not None]
        acts_b = [u_b] + [b for g, b in ((pre, pre_b), (post, post_b)) if g is not None]
        filters, filters_b = [k, skip, kspec], [k_b, bool(skip_b), bool(kspec_b)]
        filters_batched = any(filters_b)
        if filters_batched:
            filters = _broadcast_filters(axis_size, filters, filters_b)
        acts, (k, skip, kspec), _ = _fold_batched(axis_size, static, acts, acts_b, filters, filters_batched)
        u, gates = acts[0], iter(acts[1:])
        pre = next(gates) if static.has_pre else None
        post = next(gates) if static.has_post else None
        y = _fwd_op(static)(u, k, *_present(pre, post, skip, kspec))
        return y.reshape((axis_size, -1) + y.shape[1:]), True

    return op


@functools.lru_cache(maxsize=None)
def _bwd_op(static):
    @custom_vmap
    def op(dy, u, k, *opts):
        return _partitioned("bwd", static)(dy, u, k, *opts)

    @op.def_vmap
    def rule(axis_size, in_batched, dy, u, k, *opts):
        pre, post, skip, kspec = _split_operands(static, opts)
        dy_b, u_b, k_b, *opt_b = in_batched
        pre_b, post_b, skip_b, kspec_b = _split_operands(static, opt_b)
        # Gradients of k and skip must come back per mapped element (vmap of grad needs them), so the
        # filters are always treated as mapped here; broadcasting them costs only G*H*Lk floats.
        filters = _broadcast_filters(axis_size, [k, skip, kspec], [k_b, bool(skip_b), bool(kspec_b)])
        groups = filters[0].shape[1]
        acts = [dy, u] + [g for g in (pre, post) if g is not None]
        acts_b = [dy_b, u_b] + [b for g, b in ((pre, pre_b), (post, post_b)) if g is not None]
        acts, (k, skip, kspec), tile = _fold_batched(axis_size, static, acts, acts_b, filters, True)
        dy, u, gates = acts[0], acts[1], iter(acts[2:])
        pre = next(gates) if static.has_pre else None
        post = next(gates) if static.has_post else None
        du, dk, *rest = _bwd_op(static)(dy, u, k, *_present(pre, post, skip, kspec))
        unfold = lambda x: x.reshape((axis_size, -1) + x.shape[1:])  # noqa: E731

        def untile(x):
            # Groups that were tiled to line up with the batch are summed back, in a fixed order.
            x = x.reshape((axis_size, tile, groups) + x.shape[1:])
            return functools.reduce(jnp.add, [x[:, i] for i in range(tile)])

        rest = iter(rest)
        outs = [unfold(du), untile(dk)]
        if static.has_pre:
            outs.append(unfold(next(rest)))
        if static.has_post:
            outs.append(unfold(next(rest)))
        if static.has_skip:
            outs.append(untile(next(rest)))
        return tuple(outs), tuple(True for _ in outs)

    return op


@functools.lru_cache(maxsize=None)
def _spectrum_op(static, bfloat16_data):
    # bfloat16_data: K' holds bfloat16 values for bfloat16 data (CUDA's slices, the CPU's copy of k), in half the
    # floats.
    @custom_vmap
    def op(k, *skip):
        return _partitioned("spectrum", static, bfloat16_data)(k, *skip)

    @op.def_vmap
    def rule(axis_size, in_batched, k, *skip):
        # A mapped axis joins the filter groups; the forward and backward fold a mapped K' the same way.
        folded = [x.reshape((-1,) + x.shape[2:]) for x in _broadcast_filters(axis_size, [k, *skip], in_batched)]
        kspec = _spectrum_op(static, bfloat16_data)(*folded)
        return kspec.reshape((axis_size, -1) + kspec.shape[1:]), True

    return op


# ---------------------------------------------------------------------------------------------------
# Sharding: each shard runs the kernel on its own batch rows and channels. L and Lk (and K''s last axis)
# must be whole on every shard (an FFT needs the full sequence), so those axes are replicated.


def _act_spec(layout, batch_axes, head_axes):
    return P(batch_axes, head_axes, None) if layout == LAYOUT_CODE["BHL"] else P(batch_axes, None, head_axes)


def _spec_axes(sharding, ndim):
    return tuple(sharding.spec) + (None,) * ndim if isinstance(sharding, NamedSharding) else (None,) * ndim


def _shard_axes(static, u_sharding, groups):
    spec = _spec_axes(u_sharding, 3)
    batch_axes = spec[0]
    head_axes = spec[1] if static.layout == LAYOUT_CODE["BHL"] else spec[2]
    if groups > 1:
        batch_axes = None  # Filter groups index global batch rows: keep the batch whole (vmap-of-k case only).
    return batch_axes, head_axes


def _shardings(kind, static, mesh, arg_shapes):
    if kind == "spectrum":  # k and skip in, K' out: split along H like k
        head_axes = _spec_axes(arg_shapes[0].sharding, 3)[1]
        filt = NamedSharding(mesh, P(None, head_axes, None))
        return None, [filt] + [NamedSharding(mesh, P(None, head_axes))] * static.has_skip, filt
    u_index = 0 if kind == "fwd" else 1
    groups = arg_shapes[u_index + 1].shape[0]
    batch_axes, head_axes = _shard_axes(static, arg_shapes[u_index].sharding, groups)
    act = NamedSharding(mesh, _act_spec(static.layout, batch_axes, head_axes))
    filt = NamedSharding(mesh, P(None, head_axes, None))
    vec = NamedSharding(mesh, P(None, head_axes))
    gates = [act] * (static.has_pre + static.has_post)
    opts = gates + [vec] * static.has_skip + [filt] * static.prepared
    if kind == "fwd":
        args = [act, filt] + opts
        results = act
    else:
        args = [act, act, filt] + opts
        results = (act, filt) + tuple(gates) + (vec,) * static.has_skip
    return batch_axes, args, results


def _sharding_rule(kind, static):
    """Shardy's rule: b = batch, h = channels, l = sequence, g = filter groups, k = taps, s = K''s last axis."""
    seq = "h l" if static.layout == LAYOUT_CODE["BHL"] else "l h"
    act = f"b {seq}"
    if kind == "spectrum":
        return ", ".join(["g h k"] + ["g h"] * static.has_skip) + " -> g h s"
    opts = [act] * (static.has_pre + static.has_post) + ["g h"] * static.has_skip + ["g h s"] * static.prepared
    if kind == "fwd":
        return ", ".join([act, "g h k"] + opts) + f" -> {act}"
    outs = [act, "g h k"] + [act] * (static.has_pre + static.has_post) + ["g h"] * static.has_skip
    return ", ".join([act, act, "g h k"] + opts) + " -> " + ", ".join(outs)


@functools.lru_cache(maxsize=None)
def _partitioned(kind, static, bfloat16_data=False):
    ffi_fn = {"fwd": _ffi_fwd, "bwd": _ffi_bwd,
              "spectrum": functools.partial(_ffi_spectrum, bfloat16_data=bfloat16_data)}[kind]

    @custom_partitioning
    def op(*args):
        return ffi_fn(static, *args)

    def partition(mesh, arg_shapes, result_shape):
        batch_axes, arg_shardings, result_shardings = _shardings(kind, static, mesh, arg_shapes)

        def lower(*args):
            out = ffi_fn(static, *args)
            if kind == "bwd" and batch_axes is not None:
                # dk and dskip are sums over the batch: add up the per-shard partial sums.
                du, dk, *rest = out
                dk = jax.lax.psum(dk, batch_axes)
                if static.has_skip:
                    rest[-1] = jax.lax.psum(rest[-1], batch_axes)
                out = (du, dk, *rest)
            return out

        return mesh, lower, result_shardings, tuple(arg_shardings)

    def infer_sharding_from_operands(mesh, arg_shapes, result_shape):
        return _shardings(kind, static, mesh, arg_shapes)[2]

    rule = _sharding_rule(kind, static)
    op.def_partition(
        partition=partition,
        infer_sharding_from_operands=infer_sharding_from_operands,
        sharding_rule=rule,
        need_replication_factors=in_rule_order(rule, tuple(f for f in ("l", "k", "g", "s") if f in rule.split())),
    )
    return op


# ---------------------------------------------------------------------------------------------------
# FFI calls (cuda/README.md). Absent optionals travel as empty (0,) arrays.


def _absent(dtype):
    return jnp.zeros((0,), dtype)


def _attrs(static):
    return dict(
        fft_size=np.int64(static.fft_size),
        layout=np.int32(static.layout),
        rows_per_group=np.int64(static.rows_per_group),
    )


def _optional_operands(static, dtype, opts):
    """pre, post, skip, kspec as the targets take them: every one present or (0,)."""
    pre, post, skip, kspec = _split_operands(static, opts)
    return (_absent(dtype) if pre is None else pre, _absent(dtype) if post is None else post,
            _absent(jnp.float32) if skip is None else skip, _absent(jnp.float32) if kspec is None else kspec)


def _ffi_fwd(static, u, k, *opts):
    call = jax.ffi.ffi_call("jff_fftconv_fwd", jax.ShapeDtypeStruct(u.shape, u.dtype))
    return call(u, k, *_optional_operands(static, u.dtype, opts), **_attrs(static))


def _ffi_bwd(static, dy, u, k, *opts):
    act = jax.ShapeDtypeStruct(u.shape, u.dtype)
    none_act = jax.ShapeDtypeStruct((0,), u.dtype)
    none_f32 = jax.ShapeDtypeStruct((0,), jnp.float32)
    operands = _optional_operands(static, u.dtype, opts)
    result_shapes = (
        act,
        jax.ShapeDtypeStruct(k.shape, jnp.float32),
        act if static.has_pre else none_act,
        act if static.has_post else none_act,
        jax.ShapeDtypeStruct(k.shape[:2], jnp.float32) if static.has_skip else none_f32,
        # kspec_ws: K''s memory handed back as the backward's dk workspace. Where K' is dead after the backward
        # (a training step) XLA aliases the two buffers; where it is not, XLA copies K' first.
        jax.ShapeDtypeStruct(operands[-1].shape, jnp.float32) if static.prepared else none_f32,
    )
    aliases = {6: 5} if static.prepared else {}  # operand kspec -> result kspec_ws
    call = jax.ffi.ffi_call("jff_fftconv_bwd", result_shapes, input_output_aliases=aliases)
    du, dk, dpre, dpost, dskip, _ = call(dy, u, k, *operands, **_attrs(static))
    return (du, dk) + tuple(x for x, has in ((dpre, static.has_pre), (dpost, static.has_post), (dskip, static.has_skip)) if has)


def _ffi_spectrum(static, k, *skip, bfloat16_data):
    shape = k.shape[:2] + (_prepared_spectrum_floats(static.fft_size, bfloat16_data),)
    call = jax.ffi.ffi_call("jff_fftconv_filter_spectrum", jax.ShapeDtypeStruct(shape, jnp.float32))
    return call(k, skip[0] if skip else _absent(jnp.float32), fft_size=np.int64(static.fft_size),
                bfloat16_data=np.int32(bfloat16_data))
