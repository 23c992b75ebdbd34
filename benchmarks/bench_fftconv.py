"""jff.fftconv (our kernels) vs the pure-JAX path (jnp.fft in float32) vs the memory floor.

Gated convolution `y = post * conv(pre * u, k)`: forward, forward+backward (gradients with respect to `u`, `k`
and both gates) and, with `--modes step`, a training step (y and those gradients), at N = L (fft_size=N:
FlashFFTConv's setting) and the causal case L = N/2 (fft_size=None, so the op picks N itself). Run from the
repository root:

    python benchmarks/bench_fftconv.py            # B=64 H=768 bf16, N = 256 .. 32K (a GPU job)
    python benchmarks/bench_fftconv.py --quick    # a CPU-sized sweep in seconds
    python benchmarks/bench_fftconv.py --sizes 64K,256K,1M,2M,4M --batch-for 64K=16,256K=4,1M=1,2M=1,4M=1 \
        --scale-to-batch 64 --peak-memory --name fftconv-long    # long sizes: B chosen to fit, times scaled

Long sizes do not fit B=64: `--batch-for` sets B per size, `--scale-to-batch` adds times scaled linearly
to that B (the seed's method; ratios are those of the measured B), `--peak-memory` measures the peak device
memory of one forward+backward per side in a fresh process (jax's peak_bytes_in_use cannot be reset).

Floor (DESIGN.md §4): the gated forward must read u, pre, post and write y (4·B·H·L elements) plus read k;
forward+backward, where the forward output is dead and only the gradients are returned, must read dy, u,
pre, post and write du, dpre, dpost (7·B·H·L elements) plus read k and write dk. A step's floor is the two
together (11·B·H·L elements, k read twice, dk written): its forward and backward are separated by the rest of
the model (dy only exists after the forward), so the inputs cross memory once for each. Bytes ÷ the copy
bandwidth measured at the start of the same run.

The fwd+bwd rows cannot show work shared between the forward and the backward (XLA drops the dead forward);
the step rows can: at the long sizes k's filter spectrum is built once per step, in the forward, and the
backward reuses it.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

DEFAULT_SIZES = "256,1K,4K,8K,16K,32K"
QUICK_SIZES = "256,1K,4K"

MODES = ("fwd", "fwd+bwd", "step")
DEFAULT_MODES = ("fwd", "fwd+bwd")
GRAD_NAMES = ("du", "dk", "dpre", "dpost")
ACCURACY_NAMES = {"fwd": ("y",), "fwd+bwd": GRAD_NAMES, "step": tuple(f"step_{n}" for n in ("y",) + GRAD_NAMES)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small CPU-sized sweep (B=2, H=16, N=256..4K)")
    p.add_argument("--sizes", help=f"FFT sizes N, comma separated (default {DEFAULT_SIZES})")
    p.add_argument("--dtype", default="bf16", help="activation dtype: bf16, fp16 or fp32 (default bf16)")
    p.add_argument("--layout", default="BHL", help="BHL or BLH (default BHL)")
    p.add_argument("--batch", type=int, help="B (default 64; 2 with --quick)")
    p.add_argument("--heads", type=int, help="H (default 768; 16 with --quick)")
    p.add_argument("--batch-for", default="", help="per-size B overriding --batch, e.g. 1M=2,4M=1")
    p.add_argument("--scale-to-batch", type=int, help="also report times scaled linearly to this B")
    p.add_argument("--peak-memory", action="store_true",
                   help="peak device memory of fwd+bwd per side, each in a fresh process (GPU)")
    p.add_argument("--peak-child", help=argparse.SUPPRESS)  # internal: side measured by a child process
    p.add_argument("--cases", default="full,causal", help="full (L=N, fft_size=N) and/or causal (L=N/2, fft_size=None)")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES),
                   help="fwd, fwd+bwd and/or step (y and the gradients, the forward live; default fwd,fwd+bwd)")
    p.add_argument("--target-s", type=float, help="seconds of timing per measurement (default 1.0; 0.1 with --quick)")
    p.add_argument("--out", help="results folder (default benchmarks/results)")
    p.add_argument("--name", help="results name: <device>-<name>.json (default fftconv, fftconv-quick with --quick)")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--replot", metavar="JSON",
                   help="only draw the PNG of a results file written earlier (e.g. by a --no-plot device run)")
    p.add_argument("--no-accuracy", action="store_true", help="skip the float64 accuracy check")
    a = p.parse_args(argv)
    a.sizes = [
        harness.parse_size(s) for s in harness.parse_list(a.sizes or (QUICK_SIZES if a.quick else DEFAULT_SIZES))
    ]
    a.batch = a.batch or (2 if a.quick else 64)
    a.heads = a.heads or (16 if a.quick else 768)
    a.target_s = a.target_s or (0.1 if a.quick else 1.0)
    a.name = a.name or ("fftconv-quick" if a.quick else "fftconv")
    spec, a.batch_for = a.batch_for, {}
    for item in harness.parse_list(spec):
        size, _, b = item.partition("=")
        if not b.isdigit() or int(b) < 1:
            p.error(f"--batch-for items are SIZE=B with B >= 1; got {item!r}")
        a.batch_for[harness.parse_size(size)] = int(b)
    a.layout = a.layout.upper()
    a.cases = harness.parse_list(a.cases)
    a.modes = harness.parse_list(a.modes)
    for c in a.cases:
        if c not in ("full", "causal"):
            p.error(f"unknown case {c!r}")
    for m in a.modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r}")
    for n in a.sizes:
        if n < 2 or n & (n - 1):
            p.error(f"FFT sizes must be powers of two >= 2; got {n}")
    return a


def shape_of(batch, heads, length, layout):
    return (batch, heads, length) if layout == "BHL" else (batch, length, heads)


def make_set(key, shape, heads, lk, dtype, with_dy):
    """One independent input set: u, k, pre, post (and dy), all random normal, never zeros."""
    ks = jax.random.split(key, 5)
    act = lambda kk: harness.random_normal(kk, shape, dtype)  # noqa: E731
    k = harness.random_normal(ks[1], (heads, lk), jnp.float32) / np.sqrt(lk)
    arrays = [act(ks[0]), k, act(ks[2]), act(ks[3])]
    if with_dy:
        arrays.append(act(ks[4]))
    return tuple(jax.block_until_ready(arrays))


def op_fn(jff, backend, fft_size, layout):
    return partial(jff.fftconv, fft_size=fft_size, layout=layout, backend=backend)


def fwd_fn(conv):
    def f(u, k, pre, post):
        return conv(u, k, pre_gate=pre, post_gate=post)

    return f


def fwd_bwd_fn(conv):
    """Gradients only: the forward output is dead, so a fused backward that recomputes z is what runs."""

    def f(u, k, pre, post, dy):
        _, vjp = jax.vjp(lambda u_, k_, p_, q_: conv(u_, k_, pre_gate=p_, post_gate=q_), u, k, pre, post)
        return vjp(dy)

    return f


def step_fn(conv):
    """A training step's op: y (live, as a loss of y needs it) and the gradients for the cotangent dy."""

    def f(u, k, pre, post, dy):
        y, vjp = jax.vjp(lambda u_, k_, p_, q_: conv(u_, k_, pre_gate=p_, post_gate=q_), u, k, pre, post)
        return y, vjp(dy)

    return f


# ---------------------------------------------------------------------------------------------------------
# float64 reference (numpy), computed from the same rounded inputs


def reference_f64(u, k, pre, post, dy, n, layout):
    to_bhl = (lambda x: np.swapaxes(x, -1, -2)) if layout == "BLH" else (lambda x: x)
    u, pre, post, dy = (to_bhl(harness.to_f64(x)) for x in (u, pre, post, dy))
    k = harness.to_f64(k)
    length, lk = u.shape[-1], k.shape[-1]
    kf = np.fft.rfft(k, n=n)
    v = pre * u
    vf = np.fft.rfft(v, n=n)
    z = np.fft.irfft(vf * kf, n=n)[..., :length]
    dz = dy * post
    dzf = np.fft.rfft(dz, n=n)
    # The adjoint of the circular convolution restricted to the first L outputs is a correlation.
    dv = np.fft.irfft(dzf * np.conj(kf), n=n)[..., :length]
    dk = np.fft.irfft((np.conj(vf) * dzf).sum(axis=0), n=n)[..., :lk]
    back = to_bhl  # swapping the last two axes is its own inverse
    return {
        "y": back(post * z),
        "du": back(dv * pre),
        "dk": dk,
        "dpre": back(dv * u),
        "dpost": back(dy * z),
    }


def errors_against(ref, fns, arrays, with_step=False):
    """rel-L2 of y and of each gradient, per side (with_step: the step's outputs too, as step_y, step_du, ...);
    a failure is recorded in place of the numbers."""
    out = {}
    for side, (fwd, fwd_bwd, step) in fns.items():
        try:
            y = fwd(*arrays[:4])
            grads = fwd_bwd(*arrays)
            errs = {"y": harness.rel_l2(y, ref["y"])}
            errs.update({name: harness.rel_l2(g, ref[name]) for name, g in zip(GRAD_NAMES, grads)})
            if with_step:
                step_y, step_grads = step(*arrays)
                errs["step_y"] = harness.rel_l2(step_y, ref["y"])
                errs.update({f"step_{n}": harness.rel_l2(g, ref[n]) for n, g in zip(GRAD_NAMES, step_grads)})
            out[side] = errs
        except Exception as e:  # noqa: BLE001 - recorded in the results, the sweep goes on
            out[side] = {"error": harness.error_text(e)}
    return out


def jitted_fns(jff, fft_size, layout):
    return {
        side: (
            jax.jit(fwd_fn(op_fn(jff, backend, fft_size, layout))),
            jax.jit(fwd_bwd_fn(op_fn(jff, backend, fft_size, layout))),
            jax.jit(step_fn(op_fn(jff, backend, fft_size, layout))),
        )
        for side, backend in (("ours", "ffi"), ("baseline", "xla"))
    }


def accuracy(jff, case, a, dtype, key, fns, first_set, batch):
    """Against float64: the whole first input set when small (same compiled functions as timed), else a
    slice of 2 batch rows and 8 heads at the full length."""
    if first_set is not None and batch * a.heads * case["L"] <= harness.ACCURACY_FULL_MAX_ELEMENTS:
        arrays, where = first_set, "whole input"
    else:
        b, h = min(batch, 2), min(a.heads, 8)
        arrays = make_set(key, shape_of(b, h, case["L"], a.layout), h, case["Lk"], dtype, with_dy=True)
        fns, where = jitted_fns(jff, case["fft_size"], a.layout), f"slice B={b} H={h}"
    ref = reference_f64(*arrays, case["N"], a.layout)
    out = errors_against(ref, fns, arrays, with_step="step" in a.modes)
    out["checked_on"] = where
    return out


# ---------------------------------------------------------------------------------------------------------


def cases_for(a):
    cases = []
    for n in a.sizes:
        b = a.batch_for.get(n, a.batch)
        if "full" in a.cases:
            cases.append({"case": "full", "N": n, "L": n, "Lk": n, "fft_size": n, "B": b})
        if "causal" in a.cases:
            # fft_size=None: the op picks the smallest N >= L + Lk - 1 = N - 1, i.e. N itself.
            cases.append({"case": "causal", "N": n, "L": n // 2, "Lk": n // 2, "fft_size": None, "B": b})
    return cases


PEAK_SCRIPT = """
import sys, json
sys.path.insert(0, {bench_dir!r})
import jax, bench_fftconv as b, harness
import jax_flashfft as jff
a = b.parse_args({argv!r})
case = b.cases_for(a)[0]
dtype = harness.parse_dtype(a.dtype)
arrays = b.make_set(jax.random.PRNGKey(1), b.shape_of(case["B"], a.heads, case["L"], a.layout), a.heads, case["Lk"],
                    dtype, with_dy=True)
jax.block_until_ready(arrays)
inputs = harness.device().memory_stats()["bytes_in_use"]
fn = jax.jit(b.fwd_bwd_fn(b.op_fn(jff, {backend!r}, case["fft_size"], a.layout)))
jax.block_until_ready(fn(*arrays))
print("PEAK", json.dumps(harness.device().memory_stats()["peak_bytes_in_use"]), json.dumps(inputs))
"""


def peak_memory(a, case, backend):
    """((peak, inputs), error): the peak device bytes in use over one jitted forward+backward (inputs included) and
    the bytes in use before it (the inputs), in a fresh process."""
    import subprocess

    argv = ["--sizes", str(case["N"]), "--cases", case["case"], "--batch", str(case["B"]), "--heads", str(a.heads),
            "--dtype", a.dtype, "--layout", a.layout]
    code = PEAK_SCRIPT.format(bench_dir=str(Path(__file__).resolve().parent), argv=argv, backend=backend)
    import os

    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env,
                             cwd=Path(__file__).resolve().parent)  # not the repository root: its jax_flashfft has no
        # compiled extension, the installed package must be the one imported
    except subprocess.TimeoutExpired:
        return (None, None), "timed out"
    for line in out.stdout.splitlines():
        if line.startswith("PEAK "):
            return (int(line.split()[1]), int(line.split()[2])), None
    lines = out.stderr.strip().splitlines() or ["no output"]
    return (None, None), next((x for x in reversed(lines) if "Error" in x), lines[-1])[:300]


def floor_bytes(mode, b, h, length, lk, itemsize):
    act = b * h * length * itemsize
    filt = h * lk * 4
    if mode == "fwd":
        return 4 * act + filt
    if mode == "step":  # the forward's floor + the backward's: dy arrives only after the forward has finished
        return floor_bytes("fwd", b, h, length, lk, itemsize) + floor_bytes("fwd+bwd", b, h, length, lk, itemsize)
    return 7 * act + 2 * filt


def print_extras(rows, a):
    """Times scaled to --scale-to-batch and the peak memory of fwd+bwd, one line per row."""
    gib = lambda x: "-" if x is None else f"{x / 2**30:.2f} GiB"  # noqa: E731
    for r in rows:
        line = f"  {r['mode']:7s} {r['case']:6s} N={harness.fmt_size(r['N']):>4s} B={r['B']}"
        if a.scale_to_batch:
            line += f"  at B={a.scale_to_batch}: ours {_ms(r.get('ours_ms_scaled'))} baseline "
            line += f"{_ms(r.get('baseline_ms_scaled'))} floor {_ms(r.get('floor_ms_scaled'))}"
        if "ours_peak_bytes" in r:
            ratio = r.get("peak_ratio")
            line += f"  peak: ours {gib(r['ours_peak_bytes'])} baseline {gib(r['baseline_peak_bytes'])}"
            line += f" ({'-' if ratio is None else f'{ratio:.2f}'} of baseline"
            above = r.get("peak_above_inputs_ratio")
            line += f"; above the inputs {'-' if above is None else f'{above:.2f}'})"
            for side in ("ours", "baseline"):
                if r.get(f"{side}_peak_error"):
                    line += f" [{side} failed: {r[f'{side}_peak_error']}]"
        print(line)


def _ms(x):
    return "failed" if x is None else f"{x:.4f} ms"


def main(argv=None):
    a = parse_args(argv)
    if a.replot:
        replot(a.replot)
        return
    import jax_flashfft as jff

    dtype = harness.parse_dtype(a.dtype)
    itemsize = np.dtype(dtype).itemsize
    # Before this process touches the GPU: XLA's client reserves most of its memory when it starts.
    peaks = {}
    if a.peak_memory and "fwd+bwd" in a.modes:
        for case in cases_for(a):
            for side, backend in (("ours", "ffi"), ("baseline", "xla")):
                peaks[(case["case"], case["N"], side)] = peak_memory(a, case, backend)
                print(f"peak memory {case['case']} N={harness.fmt_size(case['N'])} {side}: "
                      f"{peaks[(case['case'], case['N'], side)]}", flush=True)
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
            "floor_definition": "fwd: 4*B*H*L activation elements + H*Lk*4 bytes of k; fwd+bwd (gradients only, "
            "forward output dead): 7*B*H*L elements + 2*H*Lk*4 bytes (k read, dk written); step (y and the "
            "gradients): the sum of the two, 11*B*H*L elements + 3*H*Lk*4 bytes; / copy bandwidth",
            "baseline": "jax_flashfft backend='xla': jnp.fft.rfft/irfft in float32",
            "ours": "jax_flashfft backend='ffi'",
            "accuracy": "rel-L2 vs numpy float64 from the same rounded inputs: the whole first input set when "
            f"B*H*L <= {harness.ACCURACY_FULL_MAX_ELEMENTS}, else B=min(B,2), H=min(H,8) at full L (see checked_on)",
        },
    )
    key = jax.random.PRNGKey(0)
    rows = []
    for case in cases_for(a):
        batch = case["B"]
        shape = shape_of(batch, a.heads, case["L"], a.layout)
        set_bytes = 5 * batch * a.heads * case["L"] * itemsize + a.heads * case["Lk"] * 4
        sets, setup_error = [], None
        try:
            for _ in range(harness.input_set_count(set_bytes)):
                key, sub = jax.random.split(key)
                sets.append(make_set(sub, shape, a.heads, case["Lk"], dtype, with_dy=True))
        except Exception as e:  # noqa: BLE001 - out of memory at the largest sizes
            sets, setup_error = [], harness.error_text(e)
        fns = jitted_fns(jff, case["fft_size"], a.layout)
        acc = None
        if not a.no_accuracy:
            key, sub = jax.random.split(key)
            acc = accuracy(jff, case, a, dtype, sub, fns, sets[0] if sets else None, batch)
        for mode in a.modes:
            row = {
                "op": "fftconv",
                "mode": mode,
                "case": case["case"],
                "dtype": harness.dtype_name(dtype),
                "layout": a.layout,
                "B": batch,
                "H": a.heads,
                "L": case["L"],
                "Lk": case["Lk"],
                "N": case["N"],
                "fft_size": case["fft_size"],
                "gated": True,
                "input_sets": len(sets),
                "floor_bytes": floor_bytes(mode, batch, a.heads, case["L"], case["Lk"], itemsize),
            }
            row["floor_ms"] = harness.floor_ms(row["floor_bytes"], bandwidth)
            # time_sides takes (forward, 5-operand function) per side: the step is the latter in step mode.
            timed = {side: (fwd, step if mode == "step" else fwd_bwd) for side, (fwd, fwd_bwd, step) in fns.items()}
            harness.time_sides(row, timed, mode, [s[:4] for s in sets], sets, a.target_s, setup_error)
            harness.attach_accuracy(row, acc, ACCURACY_NAMES[mode])
            if a.scale_to_batch:
                row["scaled_to_B"] = a.scale_to_batch
                for side in ("ours", "baseline", "floor"):
                    ms = row.get(f"{side}_ms")
                    row[f"{side}_ms_scaled"] = None if ms is None else ms * a.scale_to_batch / batch
            if (case["case"], case["N"], "ours") in peaks and mode == "fwd+bwd":
                above = {}
                for side in ("ours", "baseline"):
                    (row[f"{side}_peak_bytes"], row[f"{side}_input_bytes"]), err = peaks[(case["case"], case["N"], side)]
                    if err:
                        row[f"{side}_peak_error"] = err
                    else:
                        above[side] = row[f"{side}_peak_bytes"] - row[f"{side}_input_bytes"]
                row["peak_ratio"] = harness.ratio(row.get("ours_peak_bytes"), row.get("baseline_peak_bytes"))
                # The op's own memory (outputs and workspace; the inputs exist before either side runs).
                row["peak_above_inputs_ratio"] = harness.ratio(above.get("ours"), above.get("baseline"))
            rows.append(row)
            print(
                f"  {case['case']:6s} N={harness.fmt_size(case['N']):>4s} L={harness.fmt_size(case['L']):>4s} {mode:7s}"
                f" ours={_ms(row['ours_ms'])} baseline={_ms(row['baseline_ms'])} floor={_ms(row['floor_ms'])}",
                flush=True,
            )
        del sets, fns
        if not a.no_save:  # after every point, so that a run cut short keeps what it measured
            harness.write_results(a.name, {**meta, "complete": False}, rows, a.out)

    title = (
        f"fftconv, gated, {harness.dtype_name(dtype)}, {a.layout}, B={'per row' if a.batch_for else a.batch} H={a.heads} on {harness.device_kind()}"
        f" (copy bandwidth {bandwidth / 1e9:.1f} GB/s); ms are medians; err = max rel-L2 vs float64"
    )
    print()
    harness.print_table(
        rows,
        [("mode", "mode"), ("case", "case"), ("N", "N"), ("L", "L")] + ([("B", "B")] if a.batch_for else []),
        title=title,
    )
    if a.scale_to_batch or a.peak_memory:
        print_extras(rows, a)
    if not a.no_save:
        path = harness.write_results(a.name, {**meta, "complete": True}, rows, a.out)
        print(f"\nwrote {path}")
        if not a.no_plot:
            print(f"wrote {plot_rows(rows, path.with_suffix('.png'))}")


def plot_rows(rows: list[dict], png: Path, device_line: str | None = None) -> Path:
    r0 = rows[0]
    return harness.plot(
        rows,
        png,
        x_label=lambda r: f"{r['case'][0]} N={harness.fmt_size(r['N'])}",
        title=f"fftconv {r0['dtype']} {r0['layout']} B={r0['B']} H={r0['H']}",
        device_line=device_line,
    )


def replot(json_path: str) -> None:
    doc = json.loads(Path(json_path).read_text())
    meta = doc["meta"]
    line = f"{meta['device_kind']}, jax {meta['jax_version']}, {meta['date_utc']}"
    print(f"wrote {plot_rows(doc['rows'], Path(json_path).with_suffix('.png'), line)}")


if __name__ == "__main__":
    main()
