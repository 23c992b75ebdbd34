"""benchmarks/bench_fftconv.py --replot: the PNG of a results file written without one (device runs)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_fftconv  # noqa: E402


def test_replot_draws_the_png_next_to_the_json(tmp_path):
    rows = [
        {"mode": mode, "case": "full", "dtype": "bfloat16", "layout": "BHL", "B": 64, "H": 768, "N": n, "L": n,
         "ours_ms": 0.1 * n / 256, "baseline_ms": 0.5 * n / 256, "floor_ms": 0.05 * n / 256}
        for mode in ("fwd", "fwd+bwd") for n in (256, 1024)
    ]  # fmt: skip
    meta = {"device_kind": "NVIDIA H200", "jax_version": "0.11.2", "date_utc": "2026-12-01T00:00:00Z"}
    path = tmp_path / "nvidia-h200-fftconv.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    bench_fftconv.main(["--replot", str(path)])
    png = path.with_suffix(".png")
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
