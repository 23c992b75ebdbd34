"""Merge result files of one benchmark measured in several device calls into one results file (and plot).

A device call may run 10 minutes, so a grid such as issue 4's is measured in parts (e.g. one dtype per call),
each part writing its own `<device>-<name>.json` with its own copy bandwidth and floors. This keeps every row
as measured, tags it with the part it came from, and records each part's command line, date and bandwidth:

    python benchmarks/merge_results.py --out benchmarks/results/nvidia-h200-depthwise.json \\
        part-fp16.json part-bf16.json

An input may itself be a merged file (its parts are carried over). The copy bandwidth a process measures at
its start varies between device calls (3.4 to 4.1 TB/s seen on H200s); `--floor-bandwidth max` recomputes
every row's floor with the largest bandwidth of all parts, so that no part's ratios are flattered by a slow
measurement (the part's own floor stays in `floor_ms_own`).

`--median` is for the same points measured in several processes: per-process state (buffer placement, clocks)
moved the smallest depthwise points by 10-25% between processes while each process's own samples agreed
(benchmarks/notes_depthwise.md, session 8). Each point then keeps the row of the run with the median `ours_ms`
(the slower of the middle two for an even count), with every run's time in `ours_ms_runs` (in part order).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

def _median_row(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda r: r["ours_ms"])
    row = dict(ordered[len(ordered) // 2])
    row["ours_ms_runs"] = [r["ours_ms"] for r in runs]
    return row


def merge(paths: list[Path], supersede: bool = False, median: bool = False) -> dict:
    """With `supersede`, a point measured again in a later file replaces the earlier row (e.g. after a kernel
    change); the later part records how many rows it superseded. With `median`, repeated points are runs of
    one measurement (see the module doc). Without either a repeated point is an error."""
    if supersede and median:
        raise SystemExit("--supersede and --median exclude each other")
    parts, rows, seen = [], {}, {}
    first = None
    for path in paths:
        data = json.loads(path.read_text())
        meta = data["meta"]
        if first is None:
            first = meta
        for field in ("device_kind", "timing_method", "floor_definition", "baseline", "ours"):
            if meta.get(field) != first.get(field):
                raise SystemExit(f"{path}: {field} differs from {paths[0]}: {meta.get(field)!r} vs {first.get(field)!r}")
        if "parts" in meta:  # an earlier merge: its parts and its rows' part tags stay as they are
            parts.extend(meta["parts"])
            this = None
        else:
            this = {
                "file": path.name,
                "argv": meta.get("argv"),
                "date_utc": meta.get("date_utc"),
                "copy_bandwidth": meta.get("copy_bandwidth"),
                "complete": meta.get("complete", True),
            }
            parts.append(this)
        replaced = 0
        for row in data["rows"]:
            point = harness.point_of(row)
            if point in seen and not median:
                if not supersede:
                    raise SystemExit(f"{path}: point {dict(point)} also measured in {seen[point]}")
                replaced += 1
            seen[point] = path.name
            if median:
                rows.setdefault(point, []).append({"part": path.name, **row})
            else:
                rows[point] = {"part": path.name, **row}
        if this is not None and replaced:
            this["superseded_rows"] = replaced
    rows = [_median_row(r) for r in rows.values()] if median else list(rows.values())
    meta = {k: v for k, v in first.items()
            if k not in ("argv", "date_utc", "copy_bandwidth", "complete", "floor_bandwidth_Bps")}
    meta["parts"] = parts
    meta["complete"] = all(p["complete"] for p in parts)
    meta["merged_by"] = "benchmarks/merge_results.py: rows exactly as each part measured them, floors from each part's own copy bandwidth"
    if median:
        meta["merged_by"] += "; repeated points: the run with the median ours_ms (all runs in ours_ms_runs)"
    return {"meta": meta, "rows": rows}


def use_max_bandwidth(merged: dict) -> None:
    """Every row's floor from the largest copy bandwidth of all parts (the part's own floor kept)."""
    bw = max(p["copy_bandwidth"]["bandwidth_Bps"] for p in merged["meta"]["parts"])
    for row in merged["rows"]:
        row.setdefault("floor_ms_own", row["floor_ms"])
        row["floor_ms"] = harness.floor_ms(row["floor_bytes"], bw)
        row["ours_over_floor"] = harness.ratio(row["ours_ms"], row["floor_ms"])
    merged["meta"]["floor_bandwidth_Bps"] = bw
    merged["meta"]["merged_by"] = merged["meta"]["merged_by"].replace(
        "merge_results.py: rows exactly as each part measured them, floors from each part's own copy bandwidth",
        "merge_results.py --floor-bandwidth max: times exactly as each part measured them; floors from the largest "
        f"copy bandwidth of all parts ({bw / 1e12:.2f} TB/s), each part's own floor in floor_ms_own")


def plot_merged(merged: dict, png: Path) -> Path:
    """The merged rows' plot, titled with the parts' device (not the machine merging them, often a CPU-only one)."""
    meta = merged["meta"]
    runs = len(meta.get("parts", [])) or 1  # a file bench_*.py wrote itself (never merged) is one run
    keys = [k for k in ("N", "L", "D", "K") if k in merged["rows"][0]]
    return harness.plot(
        merged["rows"],
        png,
        x_label=lambda r: " ".join(f"{k}={harness.fmt_size(r[k]) if k in ('N', 'L') else r[k]}" for k in keys),
        title=meta.get("benchmark", ""),
        panel=lambda r: " ".join(str(r[k]) for k in ("mode", "dtype", "layout", "case") if k in r),
        device_line=f"{meta.get('device_kind', '?')}, jax {meta.get('jax_version', '?')}, "
        f"{runs} benchmark run{'s' if runs > 1 else ''}",
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="merged results file (.json); the plot goes next to it (.png)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--floor-bandwidth", choices=("part", "max"), default="part",
                   help="floors from each part's own copy bandwidth (default) or the largest of all parts")
    p.add_argument("--supersede", action="store_true",
                   help="a point measured again in a later part replaces the earlier row (else: an error)")
    p.add_argument("--median", action="store_true",
                   help="repeated points are runs in separate processes: keep each point's median run")
    p.add_argument("--replot", action="store_true",
                   help="no merge: redraw the plot of each given merged results file, next to it")
    p.add_argument("parts", nargs="+", type=Path)
    a = p.parse_args(argv)
    if a.replot:
        for path in a.parts:
            print(f"wrote {plot_merged(json.loads(path.read_text()), path.with_suffix('.png'))}")
        return
    if a.out is None:
        p.error("--out is required (except with --replot)")
    merged = merge(a.parts, a.supersede, a.median)
    if a.floor_bandwidth == "max":
        use_max_bandwidth(merged)
    out = Path(a.out)
    out.write_text(json.dumps(merged, indent=1) + "\n")
    print(f"wrote {out}: {len(merged['rows'])} rows from {len(a.parts)} parts")
    if not a.no_plot:
        print(f"wrote {plot_merged(merged, out.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
