"""benchmarks/make_readme_table.py: the fftconv table's long-N columns (B and H per row, times scaled to a
common B, peak memory) come from the rows themselves."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import make_readme_table  # noqa: E402


def _row(n, b, h, mode, ours, base, **extra):
    return {
        "op": "fftconv", "mode": mode, "case": "full", "dtype": "bfloat16", "layout": "BHL", "B": b, "H": h,
        "L": n, "Lk": n, "N": n, "floor_ms": 1.0, "ours_ms": ours, "baseline_ms": base,
        "ours_over_floor": ours, "baseline_over_ours": base / ours if ours else None, **extra,
    }  # fmt: skip


def _write(tmp_path, rows):
    meta = {"benchmark": "fftconv-long", "platform": "gpu", "device_kind": "NVIDIA H200", "jax_version": "0",
            "date_utc": "2026-12-01T00:00:00Z", "copy_bandwidth": {"bandwidth_Bps": 4e12}}
    (tmp_path / "gpu-fftconv-long.json").write_text(json.dumps({"meta": meta, "rows": rows}))


def test_long_rows_show_shape_scaled_times_and_peak(tmp_path):
    _write(tmp_path, [
        _row(1 << 16, 16, 768, "fwd+bwd", 40.0, 50.0, scaled_to_B=64, ours_peak_bytes=3 * 2**30,
             baseline_peak_bytes=6 * 2**30, peak_ratio=0.5),
        _row(1 << 22, 1, 384, "fwd", 60.0, 62.0),  # no scaled field: derived from the row's own B
        _row(1 << 22, 1, 768, "fwd+bwd", None, None, ours_peak_error="RESOURCE_EXHAUSTED"),
    ])  # fmt: skip
    text = make_readme_table.section(False, tmp_path)
    lines = [x for x in text.splitlines() if x.startswith("| full")]
    assert "B, H per row" in text and "ours ms at B=64" in text and "peak GiB" in text
    # 40 ms at B=16 is 160 ms at B=64; 60 ms at B=1 is 3840 ms.
    assert lines[0].split(" | ")[3:5] == ["16", "768"] and "| 160 | 200 |" in lines[0]
    assert "3.0 / 6.0 (0.50)" in lines[0]
    assert "| 3840 | 3968 |" in lines[1]
    assert lines[2].endswith("out of memory |")


def test_superseded_files_are_linked_not_tabled(tmp_path):
    _write(tmp_path, [_row(1 << 16, 16, 768, "fwd", 40.0, 50.0)])
    old = json.loads((tmp_path / "gpu-fftconv-long.json").read_text())
    old["meta"]["superseded_by"] = "gpu-fftconv-long.json"
    (tmp_path / "gpu-fftconv-long-old.json").write_text(json.dumps(old))
    text = make_readme_table.section(False, tmp_path)
    assert text.count("#### fftconv") == 1  # only the current file gets a table
    assert "[`gpu-fftconv-long-old.json`](benchmarks/results/gpu-fftconv-long-old.json)" in text
    assert "superseded by `gpu-fftconv-long.json`" in text


def test_published_flashfftconv_column_only_on_its_workload(tmp_path):
    _write(tmp_path, [
        _row(1024, 64, 768, "fwd", 0.145, 1.0),  # published 0.29 ms: 2.00x ours
        _row(1024, 64, 768, "fwd+bwd", 0.4, 2.0),  # no published backward figure
        _row(1 << 20, 2, 768, "fwd", 20.0, 60.0),  # 640 ms at B=64 against the published 1769
        _row(1 << 20, 2, 384, "fwd", 10.0, 30.0),  # another H: not the published workload
    ])  # fmt: skip
    text = make_readme_table.section(False, tmp_path)
    lines = [x for x in text.splitlines() if x.startswith("| full")]
    assert "FlashFFTConv published H100 ms" in text
    assert lines[0].endswith("| 0.29 (2.00×) |")
    assert lines[1].endswith("|  |") and lines[3].endswith("|  |")
    assert lines[2].endswith("| 1769 (2.76×) |")
