"""jff.depthwise_conv1d (our kernels) vs lax.conv_general_dilated (the pure-JAX path) vs the memory floor.

Short depthwise convolution with "same" padding and a bias, forward and forward+backward, over a grid of
lengths and channel counts. Run from the repository root:

    python benchmarks/bench_depthwise.py            # B=16, L = 1K..8K, D = 768..8192, K=5, fp16 and bf16, BLH and BHL
    python benchmarks/bench_depthwise.py --quick    # a CPU-sized sweep in seconds

Floor: the forward must read x and write y; forward+backward (a training step: the forward output and the
gradients with respect to x, w and bias are all returned) must in addition read x and dy and write dx,
5·B·L·D elements, plus the weights. Bytes ÷ the copy bandwidth measured at the start of the same run.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

MODES = ("fwd", "fwd+bwd")
GRAD_NAMES = ("dx", "dw", "dbias")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small CPU-sized sweep")
    p.add_argument("--batch", type=int, help="B (default 16; 2 with --quick)")
    p.add_argument("--lengths", help="L values, comma separated (default 1K,2K,4K,8K; 1K,2K with --quick)")
    p.add_argument("--channels", help="D values (default 768,1024,2048,8192; 128 with --quick)")
    p.add_argument("--k", default="5", help="kernel sizes K, comma separated (default 5)")
    p.add_argument("--dtype", help="activation dtypes, comma separated (default fp16,bf16; bf16 with --quick)")
    p.add_argument("--w-dtype", default="same", help="weight/bias dtype: 'same' as x (default) or fp32")
    p.add_argument("--layout", default="BLH,BHL", help="layouts, comma separated (default BLH,BHL)")
    p.add_argument("--padding", default="same", help="same, causal or valid (default same)")
    p.add_argument("--no-bias", action="store_true")
    p.add_argument("--modes", default=",".join(MODES), help="fwd and/or fwd+bwd")
    p.add_argument("--target-s", type=float, help="seconds of timing per measurement (default 0.5; 0.1 with --quick)")
    p.add_argument("--out", help="results folder (default benchmarks/results)")
    p.add_argument("--name", help="results name (default depthwise, depthwise-quick with --quick)")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--skip-measured", action="append", default=[], metavar="JSON",
                   help="results file(s) whose points are not measured again (a grid finished over several "
                   "device calls; merge the parts with merge_results.py)")
    p.add_argument("--copy-reference", action="store_true",
                   help="fwd rows also time an XLA elementwise op reading x and writing y of the same shape "
                   "(-x), with the same method: copy_ms and ours_over_copy, what the floor costs at this size")
    a = p.parse_args(argv)
    a.batch = a.batch or (2 if a.quick else 16)
    a.lengths = [
        harness.parse_size(s) for s in harness.parse_list(a.lengths or ("1K,2K" if a.quick else "1K,2K,4K,8K"))
    ]
    a.channels = [
        harness.parse_size(s) for s in harness.parse_list(a.channels or ("128" if a.quick else "768,1024,2048,8192"))
    ]
    a.k = [int(x) for x in harness.parse_list(a.k)]
    a.dtypes = [harness.parse_dtype(d) for d in harness.parse_list(a.dtype or ("bf16" if a.quick else "fp16,bf16"))]
    a.layouts = [x.upper() for x in harness.parse_list(a.layout)]
    a.modes = harness.parse_list(a.modes)
    a.target_s = a.target_s or (0.1 if a.quick else 0.5)
    a.name = a.name or ("depthwise-quick" if a.quick else "depthwise")
    for m in a.modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}")
    for lay in a.layouts:
        if lay not in ("BLH", "BHL"):
            p.error(f"unknown layout {lay!r}")
    if a.padding not in ("same", "causal", "valid"):
        p.error("--padding must be same, causal or valid")
    return a


def pad_amounts(padding, k):
    if padding == "same":
        lo = (k - 1) // 2
        return lo, k - 1 - lo
    if padding == "causal":
        return k - 1, 0
    return 0, 0


def shape_of(batch, length, channels, layout):
    return (batch, length, channels) if layout == "BLH" else (batch, channels, length)


def make_set(key, shape, k, channels, dtype, w_dtype, bias, with_dy, out_shape):
    ks = jax.random.split(key, 4)
    x = harness.random_normal(ks[0], shape, dtype)
    w = (jax.random.normal(ks[1], (k, channels), jnp.float32) / np.sqrt(k)).astype(w_dtype)
    b = jax.random.normal(ks[2], (channels,), jnp.float32).astype(w_dtype) if bias else None
    arrays = [x, w, b]
    if with_dy:
        arrays.append(harness.random_normal(ks[3], out_shape, dtype))
    return tuple(jax.block_until_ready(arrays))


def fwd_fn(conv):
    def f(x, w, b):
        return conv(x, w, b)

    return f


def fwd_bwd_fn(conv, has_bias):
    """A training step's share of the op: the output and the gradients with respect to x, w and bias."""

    def f(x, w, b, dy):
        if has_bias:
            y, vjp = jax.vjp(conv, x, w, b)
        else:
            y, vjp = jax.vjp(lambda x_, w_: conv(x_, w_, None), x, w)
        return (y, *vjp(dy))

    return f


# ---------------------------------------------------------------------------------------------------------
# float64 reference (numpy), computed from the same rounded inputs


def reference_f64(x, w, b, dy, lo, hi, layout):
    to_blh = (lambda t: np.swapaxes(t, -1, -2)) if layout == "BHL" else (lambda t: t)
    x = to_blh(harness.to_f64(x))
    dy = to_blh(harness.to_f64(dy))
    w = harness.to_f64(w)
    k = w.shape[0]
    length = x.shape[1]
    xp = np.pad(x, ((0, 0), (lo, hi), (0, 0)))
    l_out = length + lo + hi - k + 1
    y = np.zeros(x.shape[:1] + (l_out,) + x.shape[2:])
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for j in range(k):
        y += w[j] * xp[:, j : j + l_out]
        dxp[:, j : j + l_out] += w[j] * dy
        dw[j] = (dy * xp[:, j : j + l_out]).sum(axis=(0, 1))
    ref = {"y": None, "dx": to_blh(dxp[:, lo : lo + length]), "dw": dw}
    if b is not None:
        y += harness.to_f64(b)
        ref["dbias"] = dy.sum(axis=(0, 1))
    ref["y"] = to_blh(y)
    return ref


def jitted_fns(jff, a, layout):
    fns = {}
    for side, backend in (("ours", "ffi"), ("baseline", "xla")):
        conv = partial(jff.depthwise_conv1d, padding=a.padding, layout=layout, backend=backend)
        fns[side] = (jax.jit(fwd_fn(conv)), jax.jit(fwd_bwd_fn(conv, not a.no_bias)))
    return fns


def accuracy(jff, cfg, a, key, fns, first_set):
    """Against float64: the whole first input set when small (same compiled functions as timed), else a
    slice of 2 batch rows and 16 channels at the full length."""
    if first_set is not None and a.batch * cfg["L"] * cfg["D"] <= harness.ACCURACY_FULL_MAX_ELEMENTS:
        arrays, where = first_set, "whole input"
    else:
        b, d = min(a.batch, 2), min(cfg["D"], 16)
        shape = shape_of(b, cfg["L"], d, cfg["layout"])
        out_shape = shape_of(b, cfg["L_out"], d, cfg["layout"])
        arrays = make_set(key, shape, cfg["K"], d, cfg["dtype"], cfg["w_dtype"], not a.no_bias, True, out_shape)
        fns, where = jitted_fns(jff, a, cfg["layout"]), f"slice B={b} D={d}"
    ref = reference_f64(*arrays, cfg["pad_lo"], cfg["pad_hi"], cfg["layout"])
    out = {"checked_on": where}
    for side, (_, fwd_bwd) in fns.items():
        try:
            y, *grads = fwd_bwd(*arrays)
            errs = {"y": harness.rel_l2(y, ref["y"])}
            errs.update({n: harness.rel_l2(g, ref[n]) for n, g in zip(GRAD_NAMES, grads)})
            out[side] = errs
        except Exception as e:  # noqa: BLE001 - recorded in the results, the sweep goes on
            out[side] = {"error": harness.error_text(e)}
    return out


def floor_bytes(mode, b, length, l_out, d, k, itemsize, w_itemsize, bias):
    weights = (k * d + (d if bias else 0)) * w_itemsize
    x = b * length * d * itemsize
    y = b * l_out * d * itemsize
    if mode == "fwd":
        return x + y + weights
    # forward: read x, write y; backward: read x and dy, write dx; weights read twice, dw and dbias written.
    return (x + y) + (x + y + x) + 2 * weights + weights


def main(argv=None):
    a = parse_args(argv)
    import jax_flashfft as jff

    print(f"device: {harness.device_kind()} ({harness.device().platform}), jax {jax.__version__}", flush=True)
    bw = harness.copy_bandwidth()
    bandwidth = bw["bandwidth_Bps"]
    print(
        f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s (read+write of {bw['bytes_per_copy'] / 2**20:.0f} MiB)", flush=True
    )

    meta = harness.metadata(
        a.name,
        {
            "copy_bandwidth": bw,
            "floor_definition": "fwd: read x + write y (+ weights); fwd+bwd (output and gradients returned): "
            "read x, write y, read x and dy, write dx (5 activation passes) + weights read twice and dw, dbias "
            "written; / copy bandwidth",
            "baseline": "jax_flashfft backend='xla': lax.conv_general_dilated(feature_group_count=D) in float32",
            "ours": "jax_flashfft backend='ffi'",
            "accuracy": "rel-L2 vs numpy float64 from the same rounded inputs: the whole first input set when "
            f"B*L*D <= {harness.ACCURACY_FULL_MAX_ELEMENTS}, else B=min(B,2), D=min(D,16) at full L (see checked_on)",
        },
    )
    key = jax.random.PRNGKey(0)
    measured = harness.measured_points(a.skip_measured)
    rows = []
    for dtype in a.dtypes:
        w_dtype = dtype if a.w_dtype == "same" else harness.parse_dtype(a.w_dtype)
        itemsize, w_itemsize = np.dtype(dtype).itemsize, np.dtype(w_dtype).itemsize
        for layout in a.layouts:
            for k in a.k:
                lo, hi = pad_amounts(a.padding, k)
                for length in a.lengths:
                    for d in a.channels:
                        l_out = length + lo + hi - k + 1
                        cfg = {
                            "dtype": dtype, "w_dtype": w_dtype, "layout": layout, "K": k, "L": length,
                            "D": d, "L_out": l_out, "pad_lo": lo, "pad_hi": hi,
                        }  # fmt: skip
                        probe = {
                            "op": "depthwise_conv1d", "dtype": harness.dtype_name(dtype), "layout": layout,
                            "w_dtype": harness.dtype_name(w_dtype), "padding": a.padding, "B": a.batch, "K": k,
                            "L": length, "D": d,
                        }  # fmt: skip
                        if all(harness.point_of({**probe, "mode": m}) in measured for m in a.modes):
                            continue
                        rows.extend(run_config(jff, a, cfg, itemsize, w_itemsize, bandwidth, key))
                        if not a.no_save:  # after every point, so that a run cut short keeps what it measured
                            harness.write_results(a.name, {**meta, "complete": False}, rows, a.out)
                        key = jax.random.fold_in(key, len(rows))

    title = (
        f"depthwise_conv1d, padding={a.padding}, bias={not a.no_bias}, B={a.batch} on {harness.device_kind()}"
        f" (copy bandwidth {bandwidth / 1e9:.1f} GB/s); ms are medians; err = max rel-L2 vs float64"
    )
    print()
    harness.print_table(
        rows,
        [("mode", "mode"), ("dtype", "dtype"), ("layout", "layout"), ("K", "K"), ("L", "L"), ("D", "D")],
        title=title,
    )
    if not a.no_save:
        path = harness.write_results(a.name, {**meta, "complete": True}, rows, a.out)
        print(f"\nwrote {path}")
        if not a.no_plot:
            png = harness.plot(
                rows,
                path.with_suffix(".png"),
                x_label=lambda r: f"L={harness.fmt_size(r['L'])} D={r['D']} K={r['K']}",
                title="depthwise",
                panel=lambda r: f"{r['mode']} {r['dtype']} {r['layout']}",
            )
            print(f"wrote {png}")


# The copy reference: one read of x and one write of y, fused by XLA, nothing else to do.
_negate = jax.jit(lambda x, w, b: -x)


def _ms(x):
    return "failed" if x is None else f"{x:.4f} ms"


def run_config(jff, a, cfg, itemsize, w_itemsize, bandwidth, key):
    b, length, d, k, layout, dtype = a.batch, cfg["L"], cfg["D"], cfg["K"], cfg["layout"], cfg["dtype"]
    has_bias = not a.no_bias
    shape = shape_of(b, length, d, layout)
    out_shape = shape_of(b, cfg["L_out"], d, layout)
    set_bytes = (2 * b * length * d + b * cfg["L_out"] * d) * itemsize
    setup_error = None
    sets = []
    try:
        for i in range(harness.input_set_count(set_bytes)):
            sets.append(
                make_set(
                    jax.random.fold_in(key, 100 + i), shape, k, d, dtype, cfg["w_dtype"], has_bias, True, out_shape
                )
            )
    except Exception as e:  # noqa: BLE001 - out of memory at the largest sizes
        sets, setup_error = [], harness.error_text(e)
    fns = jitted_fns(jff, a, layout)
    acc = None
    if not a.no_accuracy:
        acc = accuracy(jff, cfg, a, jax.random.fold_in(key, 1), fns, sets[0] if sets else None)
    rows = []
    for mode in a.modes:
        row = {
            "op": "depthwise_conv1d",
            "mode": mode,
            "dtype": harness.dtype_name(dtype),
            "w_dtype": harness.dtype_name(cfg["w_dtype"]),
            "layout": layout,
            "padding": a.padding,
            "bias": has_bias,
            "B": b,
            "L": length,
            "D": d,
            "K": k,
            "L_out": cfg["L_out"],
            "input_sets": len(sets),
            "floor_bytes": floor_bytes(mode, b, length, cfg["L_out"], d, k, itemsize, w_itemsize, has_bias),
        }
        row["floor_ms"] = harness.floor_ms(row["floor_bytes"], bandwidth)
        harness.time_sides(row, fns, mode, [s[:3] for s in sets], sets, a.target_s, setup_error)
        if a.copy_reference and mode == "fwd" and sets:
            t = harness.time_fn(_negate, *[s[:3] for s in sets], target_s=a.target_s)
            row["copy_ms"], row["copy_timing"] = t["reported_ms"], t
            row["ours_over_copy"] = harness.ratio(row["ours_ms"], row["copy_ms"])
        names = ("y",) if mode == "fwd" else ("y",) + GRAD_NAMES[: 3 if has_bias else 2]
        harness.attach_accuracy(row, acc, names)
        rows.append(row)
        print(
            f"  {row['dtype']:8s} {layout} K={k} L={harness.fmt_size(length):>3s} D={d:<5d} {mode:7s}"
            f" ours={_ms(row['ours_ms'])} baseline={_ms(row['baseline_ms'])} floor={_ms(row['floor_ms'])}"
            + (f" copy={_ms(row['copy_ms'])}" if "copy_ms" in row else ""),
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
