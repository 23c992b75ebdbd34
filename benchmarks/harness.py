"""Shared measuring utilities for the benchmark scripts (DESIGN.md §4).

Every number these helpers report was measured in the running process: the memory floor uses the copy
bandwidth measured in the same run on the same device, and ratios are taken between timings made side by
side. Nothing here knows any published figure.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Rotating input sets must not fit in the last-level cache, or a kernel that re-reads its input looks
# faster than it is. 256 MiB is several times the L2 of current data-centre GPUs (50-60 MB on H100/H200).
GPU_MIN_INPUT_BYTES = 256 << 20
CPU_MIN_INPUT_BYTES = 64 << 20
MAX_INPUT_SETS = 16
# Fast calls are timed as one program over all input sets (see time_fn); small sets come this many at a time
# when they fit in this many bytes.
PROGRAM_CALLS = 16
PROGRAM_MAX_BYTES = 2 << 30
# Problems up to this many activation elements are checked for accuracy whole, with the very functions
# that are timed (no extra compilation); larger ones on a small slice.
ACCURACY_FULL_MAX_ELEMENTS = 1 << 21

DTYPES = {
    "float16": jnp.float16,
    "fp16": jnp.float16,
    "f16": jnp.float16,
    "half": jnp.float16,
    "bfloat16": jnp.bfloat16,
    "bf16": jnp.bfloat16,
    "float32": jnp.float32,
    "fp32": jnp.float32,
    "f32": jnp.float32,
}


# ---------------------------------------------------------------------------------------------------------
# Device facts


def device():
    return jax.devices()[0]


def on_gpu() -> bool:
    return device().platform == "gpu"


def device_kind() -> str:
    return device().device_kind


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def device_slug() -> str:
    return slugify(device_kind())


def device_memory_bytes() -> int | None:
    """Bytes the device allocator may hand out, where the backend tells (GPU); None on CPU."""
    try:
        stats = device().memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats raise various errors
        return None
    if not stats:
        return None
    return stats.get("bytes_limit")


def parse_dtype(name: str):
    try:
        return DTYPES[name.strip().lower()]
    except KeyError:
        raise SystemExit(f"unknown dtype {name!r}; use one of {sorted(set(DTYPES))}") from None


def dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def parse_size(text: str) -> int:
    """'256', '4K', '1M', '2^20' -> int."""
    t = text.strip().upper()
    if t.startswith("2^"):
        return 1 << int(t[2:])
    mult = 1
    if t.endswith("K"):
        mult, t = 1 << 10, t[:-1]
    elif t.endswith("M"):
        mult, t = 1 << 20, t[:-1]
    return int(t) * mult


def parse_list(text: str, conv=str) -> list:
    return [conv(x) for x in text.split(",") if x.strip()]


def fmt_size(n: int) -> str:
    for unit, shift in (("M", 20), ("K", 10)):
        if n >= (1 << shift) and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


# ---------------------------------------------------------------------------------------------------------
# Timing


def input_set_count(set_bytes: int, *, min_sets: int = 1) -> int:
    """How many independent input sets to rotate through: together they must exceed the cache (one set that
    alone is that large is enough, and leaves the device memory to the op at the largest sizes). Small sets
    come PROGRAM_CALLS at a time where they fit in PROGRAM_MAX_BYTES: `time_fn` runs fast calls as one
    compiled program over all the sets, and a program of many small calls keeps the device busy while the
    host dispatches the next one."""
    floor_bytes = GPU_MIN_INPUT_BYTES if on_gpu() else CPU_MIN_INPUT_BYTES
    n = max(math.ceil(floor_bytes / max(set_bytes, 1)), min_sets)
    n = max(n, min(PROGRAM_CALLS, PROGRAM_MAX_BYTES // max(set_bytes, 1)))
    return int(min(n, MAX_INPUT_SETS))


# Device-side timing (DESIGN.md section 4). JFF_BENCH_DEVICE_TIMING=1 adds, to every time_fn result, the device's own
# time for the same programs: one more sample of programs (at least DEVICE_MIN_PROGRAMS) runs under jax.profiler, and
# each program's device span (first kernel start to last kernel end: the launch gaps inside a program count, the
# host's gaps between programs do not) is divided by its op calls. That device-side median is then the reported figure
# (`reported_ms`), for both sides and for the copy that sets the floor; the wall-clock median stays in the record next
# to it. Without the variable (or where the profile gives no device time, which the record says) the wall-clock median
# is reported. Wall clock counts what the device waits between programs: about 0.5 ms per blocked call for the 2.4 ms
# fftconv backward on an H200 (logs/*device-timing-session12*), and 10-25% between processes at the 20 us depthwise
# points (notes_depthwise.md).
DEVICE_TIMING = os.environ.get("JFF_BENCH_DEVICE_TIMING", "0") not in ("", "0")
DEVICE_MIN_PROGRAMS = 10
# Lines of a device plane that the profiler derives from others (they repeat the kernels' time).
_DERIVED_LINES = ("XLA Modules", "XLA Ops", "Steps", "Source", "TensorFlow Name Scope", "TensorFlow Ops",
                  "Launch Stats", "Framework Name Scope", "Framework Ops", "XLA TraceMe", "Async XLA Ops")


def device_plane(planes: Sequence[Any]) -> Any:
    """The first device plane of a profile's planes; ValueError when there is none."""
    device = [pl for pl in planes if pl.name.startswith("/device:")]
    if not device:
        raise ValueError("no device plane in the profile (CPU run, or the profiler saw no device activity)")
    return device[0]


def profile_planes(run: Callable[[], Any]) -> Sequence[Any]:
    """The planes of a jax.profiler trace of `run()` (which should block on its results); ValueError when the
    profiler wrote no trace."""
    import tempfile

    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            run()
        files = sorted(Path(d).rglob("*.xplane.pb"))
        if not files:
            raise ValueError("the profiler wrote no xplane file")
        return ProfileData.from_file(str(files[0])).planes


def program_spans_ns(planes: Sequence[Any], programs: int) -> tuple[list[float], str]:
    """Device time of each of `programs` back-to-back programs from profile planes (objects with .name,
    .lines; lines with .name, .events; events with .start_ns, .end_ns): the "XLA Modules" line's events
    when it has one per program, else the device's kernel events cut into `programs` equal runs (every
    program launches the same kernels). Returns (spans, how) and raises ValueError when neither fits."""
    plane = device_plane(planes)
    lines = {ln.name: sorted((e.start_ns, e.end_ns) for e in ln.events) for ln in plane.lines}
    modules = lines.get("XLA Modules", [])
    if len(modules) == programs:
        return [end - start for start, end in modules], "XLA Modules line"
    kernels = sorted(ev for name, evs in lines.items() if name not in _DERIVED_LINES for ev in evs)
    if not kernels or len(kernels) % programs:
        raise ValueError(f"{len(kernels)} device events on lines {sorted(lines)} do not split into {programs} programs")
    k = len(kernels) // programs
    spans = []
    for i in range(programs):
        run = kernels[i * k:(i + 1) * k]
        spans.append(max(end for _, end in run) - run[0][0])
    return spans, f"{k} device events per program"


def device_time(run_programs: Callable[[], Any], programs: int, calls_per_program: int) -> dict:
    """Runs `run_programs` (dispatches `programs` programs and blocks) under the profiler; the device time
    per op call of each program, summarised. Failures are reported in the result, not raised: time_fn then
    reports the wall-clock figure and the record says why."""
    try:
        spans, how = program_spans_ns(profile_planes(run_programs), programs)
    except Exception as e:  # noqa: BLE001 - reported next to the wall-clock result
        return {"device_error": error_text(e)}
    per_call = sorted(x / calls_per_program / 1e6 for x in spans)
    return {
        "device_median_ms": statistics.median(per_call),
        "device_min_ms": per_call[0],
        "device_max_ms": per_call[-1],
        "device_programs": programs,
        "device_method": how,
    }


def time_fn(
    fn: Callable,
    *arg_sets: Sequence[Any],
    warmup: int = 2,
    min_samples: int = 5,
    max_samples: int = 400,
    target_s: float = 1.0,
    per_call_above_s: float = 2e-3,
    min_sample_s: float = 5e-3,
) -> dict:
    """Median time of one call of `jax.jit(fn)` (or of `fn` itself if already jitted), in milliseconds.

    Fast calls (under `per_call_above_s`): one jitted program calls `fn` once on every input set (distinct
    arrays, so XLA cannot merge the calls) and returns all the results; a sample dispatches that program back
    to back for at least `min_sample_s` and blocks on the last result; one observation is the sample's time
    divided by the number of `fn` calls in it. JAX's host-side dispatch of a call (tens of microseconds)
    is then paid once per program and overlaps with the device's work, as it does inside a jit-compiled
    training step, instead of standing in for a 0.01-0.05 ms kernel's time. What remains is what a model
    pays: the kernels and the gaps between launches. Slow calls, where dispatch is noise: one blocked call
    per sample. Either way the input sets rotate, so no call finds its inputs in cache.
    """
    if not arg_sets:
        raise ValueError("time_fn needs at least one input set")
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    n_sets = len(arg_sets)

    def call(i):
        start = time.perf_counter()
        jax.block_until_ready(jitted(*arg_sets[i % n_sets]))
        return time.perf_counter() - start

    compile_s = call(0)
    estimate = min(call(i + 1) for i in range(max(warmup, 1)))

    if estimate >= per_call_above_s:
        method, calls = "per-call", 1
        n = int(min(max(target_s / estimate, 3), max_samples))
        samples = [call(i) for i in range(n)]
    else:
        method = "program"
        for i, a in enumerate(arg_sets):
            for b in arg_sets[:i]:
                if all(x is y for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))):
                    raise ValueError("time_fn: two input sets hold the same arrays; XLA would merge their calls")
        program = jax.jit(lambda sets: tuple(jitted(*s) for s in sets))
        sets = tuple(tuple(s) for s in arg_sets)
        jax.block_until_ready(program(sets))  # compile
        start = time.perf_counter()
        jax.block_until_ready(program(sets))
        program_s = time.perf_counter() - start
        programs = max(1, math.ceil(min_sample_s / max(program_s, 1e-9)))
        calls = programs * n_sets

        def one_sample() -> float:
            start = time.perf_counter()
            for _ in range(programs):
                out = program(sets)
            jax.block_until_ready(out)
            return (time.perf_counter() - start) / calls

        one_sample()
        n = int(min(max(target_s / max(program_s * programs, 1e-9), min_samples), max_samples))
        samples = [one_sample() for _ in range(n)]
    samples_ms = sorted(x * 1e3 for x in samples)
    extra = {}
    if DEVICE_TIMING:
        if method == "program":
            # At least DEVICE_MIN_PROGRAMS spans, so that the median survives a disturbance that slows a few
            # programs (seen: 2 of 3 spans 14% slow, one point 1.7x its other measurements).
            profiled = max(programs, DEVICE_MIN_PROGRAMS)

            def run_programs():
                for _ in range(profiled):
                    out = program(sets)
                jax.block_until_ready(out)

            extra = device_time(run_programs, profiled, n_sets)
        else:
            extra = device_time(lambda: [call(i) for i in range(5)], 5, 1)
    wall_ms = statistics.median(samples_ms)
    device_ms = extra.get("device_median_ms")
    return {
        **extra,
        "reported_ms": device_ms if device_ms is not None else wall_ms,
        "reported_by": "device" if device_ms is not None else "wall clock",
        "median_ms": wall_ms,
        "min_ms": samples_ms[0],
        "p10_ms": samples_ms[len(samples_ms) // 10],
        "p90_ms": samples_ms[(9 * len(samples_ms)) // 10],
        "samples": len(samples_ms),
        "method": method,
        "calls_per_sample": calls,
        "input_sets": n_sets,
        "first_call_s": compile_s,
    }


def timing_method() -> str:
    """How the reported times of this process were taken (the results' meta.timing_method)."""
    wall = (
        "wall clock after compilation and warm-up, input sets rotating; calls under 2 ms: one jitted program "
        "calls the op once on each input set (up to 16 distinct sets), samples of >= 5 ms of back-to-back "
        "asynchronous programs blocked on the last, observation = sample time / op calls; slower calls: one "
        "blocked call per sample"
    )
    if not DEVICE_TIMING:
        return wall + "; reported value = median of the observations"
    return (
        "device-side: the same programs once more under jax.profiler, each program's span from its first kernel's "
        "start to its last kernel's end divided by its op calls, reported value = median over the programs "
        "(copy bandwidth for the floor timed the same way); the wall-clock median (" + wall + ") is kept next "
        "to it"
    )


def copy_bandwidth(nbytes: int | None = None) -> dict:
    """Device memory bandwidth of an elementwise copy, bytes read + written per second.

    `x + 1` rather than `x + 0`: XLA may fold an addition of zero into a no-op alias.
    """
    if nbytes is None:
        nbytes = (1 << 30) if on_gpu() else (128 << 20)
        limit = device_memory_bytes()
        if limit:
            nbytes = min(nbytes, limit // 8)
    n = nbytes // 4
    sets = [(jnp.full((n,), float(i), jnp.float32),) for i in range(2)]
    jax.block_until_ready(sets)
    t = time_fn(lambda x: x + 1.0, *sets, target_s=1.0 if on_gpu() else 0.5, min_samples=5)
    moved = 2 * n * 4
    del sets
    return {
        "bytes_per_copy": moved,
        "median_ms": t["reported_ms"],
        "timed_by": t["reported_by"],
        "wall_median_ms": t["median_ms"],
        "bandwidth_Bps": moved / (t["reported_ms"] * 1e-3),
    }


def time_sides(row: dict, fns: dict, mode: str, fwd_sets: list, fwd_bwd_sets: list, target_s: float,
               setup_error: str | None = None) -> None:
    """Times each side's (`fns[side] = (fwd, fwd_bwd)`) function of `mode` into `row`: `<side>_ms` and
    `<side>_timing`, or `<side>_error` (the sweep goes on), then `ours_over_floor` and `baseline_over_ours`
    from `row["floor_ms"]`."""
    for side, (fwd, fwd_bwd) in fns.items():
        row[f"{side}_ms"] = None
        if setup_error:
            row[f"{side}_error"] = setup_error
            continue
        fn, args = (fwd, fwd_sets) if mode == "fwd" else (fwd_bwd, fwd_bwd_sets)
        try:
            t = time_fn(fn, *args, target_s=target_s)
        except Exception as e:  # noqa: BLE001 - recorded, the sweep goes on
            row[f"{side}_error"] = error_text(e)
            continue
        row[f"{side}_ms"] = t["reported_ms"]
        if t["reported_by"] == "device":
            row[f"{side}_wall_ms"] = t["median_ms"]
        row[f"{side}_timing"] = t
    row["ours_over_floor"] = ratio(row["ours_ms"], row["floor_ms"])
    row["baseline_over_ours"] = ratio(row["baseline_ms"], row["ours_ms"])


def attach_accuracy(row: dict, acc: dict | None, names) -> None:
    """`acc[side]` = {output name: rel-L2} or {"error": ...}; the row gets the whole record and, per side,
    the largest error over `names` (the outputs this row's mode returns)."""
    if acc is None:
        return
    row["accuracy"] = acc
    for side in ("ours", "baseline"):
        errs = acc[side]
        row[f"{side}_rel_l2"] = None if "error" in errs else max(errs[n] for n in names)


# Row fields that name a measured point (absent fields count as None): what merge_results.py refuses to see
# twice and what bench_depthwise.py --skip-measured skips.
POINT_KEYS = ("op", "mode", "dtype", "w_dtype", "layout", "padding", "case", "K", "N", "B", "H", "L", "D")


def point_of(row: dict) -> tuple:
    return tuple((k, row.get(k)) for k in POINT_KEYS)


def measured_points(paths) -> set:
    """`point_of` every row of the given results files."""
    return {point_of(r) for path in paths for r in json.loads(Path(path).read_text())["rows"]}


def floor_ms(nbytes: float, bandwidth_Bps: float) -> float:
    return nbytes / bandwidth_Bps * 1e3


# ---------------------------------------------------------------------------------------------------------
# Accuracy


@functools.lru_cache(maxsize=None)
def _normal_fn(shape: tuple, dtype_name: str):
    dtype = jnp.dtype(dtype_name)
    return jax.jit(lambda key: jax.random.normal(key, shape, jnp.float32).astype(dtype))


def random_normal(key, shape, dtype):
    """Standard normal data made on the device, in `dtype` without a float32 copy in memory."""
    return _normal_fn(tuple(shape), jnp.dtype(dtype).name)(key)


def rel_l2(out, ref) -> float:
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    den = np.linalg.norm(ref)
    num = np.linalg.norm(out - ref)
    return float(num / den) if den > 0 else float(num)


def to_f64(x) -> np.ndarray:
    """Host float64 copy of a device array: the reference is computed from the rounded inputs."""
    return np.asarray(jax.device_get(x)).astype(np.float64)


# ---------------------------------------------------------------------------------------------------------
# Results


def ratio(num, den):
    if num is None or den is None or den <= 0:
        return None
    return num / den


def metadata(name: str, extra: dict | None = None) -> dict:
    meta = {
        "benchmark": name,
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(__import__("jaxlib"), "__version__", None),
        "python": platform.python_version(),
        "platform": device().platform,
        "device_kind": device_kind(),
        "device_count": jax.device_count(),
        "host": platform.node(),
        "argv": sys.argv[1:],
        "timing_method": timing_method(),
    }
    try:
        import jax_flashfft

        meta["jax_flashfft_file"] = jax_flashfft.__file__
        meta["jax_flashfft_version"] = getattr(jax_flashfft, "__version__", None)
    except Exception:  # noqa: BLE001 - recorded for context only
        pass
    if extra:
        meta.update(extra)
    return meta


def results_path(name: str, out_dir: Path | str | None = None) -> Path:
    d = Path(out_dir) if out_dir is not None else RESULTS_DIR
    return d / f"{device_slug()}-{name}.json"


def write_results(name: str, meta: dict, rows: list[dict], out_dir: Path | str | None = None) -> Path:
    path = results_path(name, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


# ---------------------------------------------------------------------------------------------------------
# Presentation


def _fmt_ms(x) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.3f}"
    return f"{x:.4f}"


def _fmt_ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _fmt_err(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def print_table(rows: list[dict], key_cols: Sequence[tuple[str, str]], *, title: str = "", file=None) -> None:
    """Rows need `ours_ms`, `baseline_ms`, `floor_ms`; `key_cols` are (field, header) pairs shown first."""
    file = file or sys.stdout
    headers = [h for _, h in key_cols] + [
        "ours ms",
        "baseline ms",
        "floor ms",
        "ours/floor",
        "baseline/ours",
        "err ours",
        "err base",
    ]
    table = []
    for r in rows:
        cells = [str(r.get(f, "")) for f, _ in key_cols]
        cells += [
            _fmt_ms(r.get("ours_ms")) if r.get("ours_ms") is not None else ("ERR" if r.get("ours_error") else "-"),
            _fmt_ms(r.get("baseline_ms"))
            if r.get("baseline_ms") is not None
            else ("ERR" if r.get("baseline_error") else "-"),
            _fmt_ms(r.get("floor_ms")),
            _fmt_ratio(r.get("ours_over_floor")),
            _fmt_ratio(r.get("baseline_over_ours")),
            _fmt_err(r.get("ours_rel_l2")),
            _fmt_err(r.get("baseline_rel_l2")),
        ]
        table.append(cells)
    # Device-side times reported (JFF_BENCH_DEVICE_TIMING=1): our wall-clock median and its ratio next to them.
    wall = [r.get("ours_wall_ms") for r in rows]
    if any(x is not None for x in wall):
        headers += ["ours wall ms", "wall/floor"]
        for cells, r, x in zip(table, rows, wall):
            floor = r.get("floor_ms")
            cells += [_fmt_ms(x) if x is not None else "-", _fmt_ratio(x / floor) if x is not None and floor else "-"]
    widths = [max(len(h), *(len(c[i]) for c in table)) if table else len(h) for i, h in enumerate(headers)]
    if title:
        print(title, file=file)
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for cells in table:
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)), file=file)
    # One line per distinct failure: a missing extension fails every row the same way.
    failures: dict[str, list[str]] = {}
    for r in rows:
        label = " ".join(str(r.get(f, "")) for f, _ in key_cols)
        for side in ("ours", "baseline"):
            if r.get(f"{side}_error"):
                failures.setdefault(f"{side}: {r[f'{side}_error']}", []).append(label)
            device_error = (r.get(f"{side}_timing") or {}).get("device_error")
            if device_error:  # the row reports its wall-clock time instead
                failures.setdefault(f"{side} device timing, wall clock reported: {device_error}", []).append(label)
    for message, labels in failures.items():
        where = labels[0] if len(labels) == 1 else f"{labels[0]} and {len(labels) - 1} more rows"
        print(f"  failed ({where}) {message}", file=file)
    file.flush()


def plot(
    rows: list[dict],
    path: Path,
    *,
    x_label: Callable[[dict], str],
    title: str,
    panel: Callable[[dict], str] = lambda r: str(r.get("mode")),
    ncols: int = 2,
    device_line: str | None = None,
) -> Path:
    """One panel per `panel(row)`: ours, baseline and floor in ms on a log axis, one tick per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(panel(r), []).append(r)
    if not groups:
        raise ValueError("nothing to plot")
    ncols = min(ncols, len(groups))
    nrows = -(-len(groups) // ncols)
    width = max(6.0, 0.4 * max(len(g) for g in groups.values()) + 3.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(groups) :]:
        ax.set_visible(False)
    for ax, (name, rs) in zip(axes.flat, groups.items()):
        xs = np.arange(len(rs))
        for field, label, style in (
            ("ours_ms", "jax_flashfft", "o-"),
            ("baseline_ms", "baseline (pure JAX)", "s--"),
            ("floor_ms", "memory floor", "k:"),
        ):
            ys = [r.get(field) if r.get(field) is not None else np.nan for r in rs]
            ax.plot(xs, ys, style, label=label)
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels([x_label(r) for r in rs], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("ms (median)")
        ax.set_title(f"{title}: {name}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    # device_line: for rows measured elsewhere (re-plotting a results file); default the running device.
    fig.suptitle(device_line or f"{device_kind()}, jax {jax.__version__}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}"
    text = text.splitlines()[0] if text else type(e).__name__
    return text[:300]
