"""benchmarks/merge_results.py: joining result files measured in several device calls."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import merge_results  # noqa: E402


def _row(length, ours_ms, floor_bytes=4e6, bandwidth=4e12):
    floor = floor_bytes / bandwidth * 1e3
    return {
        "op": "depthwise_conv1d", "mode": "fwd", "dtype": "float16", "w_dtype": "float16", "layout": "BLH",
        "padding": "same", "B": 16, "K": 5, "L": length, "D": 768, "floor_bytes": floor_bytes,
        "floor_ms": floor, "ours_ms": ours_ms, "ours_over_floor": ours_ms / floor,
    }  # fmt: skip


def _part(tmp_path, name, rows, bandwidth):
    meta = {
        "device_kind": "NVIDIA H200", "timing_method": "m", "floor_definition": "f", "baseline": "b",
        "ours": "o", "argv": ["--name", name], "date_utc": "2026-11-30T00:00:00Z", "complete": True,
        "copy_bandwidth": {"bandwidth_Bps": bandwidth},
    }  # fmt: skip
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    return path


def test_parts_are_joined_with_their_tags_and_floors(tmp_path):
    a = _part(tmp_path, "a", [_row(1024, 0.02)], 4e12)
    b = _part(tmp_path, "b", [_row(2048, 0.03, bandwidth=3e12)], 3e12)
    merged = merge_results.merge([a, b])
    assert [r["part"] for r in merged["rows"]] == ["a.json", "b.json"]
    assert [p["file"] for p in merged["meta"]["parts"]] == ["a.json", "b.json"]
    assert merged["rows"][1]["floor_ms"] == pytest.approx(4e6 / 3e12 * 1e3)  # the part's own bandwidth


def test_a_point_measured_twice_is_refused_unless_superseded(tmp_path):
    a = _part(tmp_path, "a", [_row(1024, 0.02), _row(2048, 0.03)], 4e12)
    b = _part(tmp_path, "b", [_row(1024, 0.015)], 4e12)
    with pytest.raises(SystemExit, match="also measured"):
        merge_results.merge([a, b])
    merged = merge_results.merge([a, b], supersede=True)
    by_length = {r["L"]: r for r in merged["rows"]}
    assert len(merged["rows"]) == 2
    assert by_length[1024]["ours_ms"] == 0.015 and by_length[1024]["part"] == "b.json"
    assert by_length[2048]["part"] == "a.json"
    assert merged["meta"]["parts"][-1]["superseded_rows"] == 1


def test_a_merged_file_can_be_merged_again(tmp_path):
    a = _part(tmp_path, "a", [_row(1024, 0.02)], 4e12)
    b = _part(tmp_path, "b", [_row(2048, 0.03)], 4e12)
    first = tmp_path / "merged.json"
    first.write_text(json.dumps(merge_results.merge([a, b])))
    c = _part(tmp_path, "c", [_row(4096, 0.05)], 4e12)
    again = merge_results.merge([first, c])
    assert [p["file"] for p in again["meta"]["parts"]] == ["a.json", "b.json", "c.json"]
    assert [r["part"] for r in again["rows"]] == ["a.json", "b.json", "c.json"]


def test_floors_from_the_largest_bandwidth(tmp_path):
    a = _part(tmp_path, "a", [_row(1024, 0.02, bandwidth=4e12)], 4e12)
    b = _part(tmp_path, "b", [_row(2048, 0.02, bandwidth=3e12)], 3e12)
    merged = merge_results.merge([a, b])
    merge_results.use_max_bandwidth(merged)
    slow = merged["rows"][1]
    assert slow["floor_ms_own"] == pytest.approx(4e6 / 3e12 * 1e3)
    assert slow["floor_ms"] == pytest.approx(4e6 / 4e12 * 1e3)
    assert slow["ours_over_floor"] == pytest.approx(0.02 / slow["floor_ms"])
    assert merged["meta"]["floor_bandwidth_Bps"] == 4e12


def test_runs_in_several_processes_keep_the_median_run(tmp_path):
    runs = [_part(tmp_path, f"run{i}", [_row(1024, t), _row(2048, 0.03 + i * 0.001)], 4e12)
            for i, t in enumerate((0.020, 0.030, 0.025))]
    merged = merge_results.merge(runs, median=True)
    by_length = {r["L"]: r for r in merged["rows"]}
    assert by_length[1024]["ours_ms"] == 0.025 and by_length[1024]["part"] == "run2.json"
    assert by_length[1024]["ours_ms_runs"] == [0.020, 0.030, 0.025]
    assert by_length[2048]["ours_ms"] == pytest.approx(0.031)
    assert "median" in merged["meta"]["merged_by"]
    # An even count keeps the slower of the middle two.
    assert merge_results.merge(runs[:2], median=True)["rows"][0]["ours_ms"] == 0.030
    with pytest.raises(SystemExit, match="exclude"):
        merge_results.merge(runs, supersede=True, median=True)
    merge_results.use_max_bandwidth(merged)
    assert "median" in merged["meta"]["merged_by"] and "largest copy bandwidth" in merged["meta"]["merged_by"]


def test_the_plot_is_titled_with_the_parts_device_not_the_merging_machine(tmp_path, monkeypatch):
    seen = []

    def fake_plot(rows, png, **kw):
        seen.append((png, kw["device_line"], len(rows)))
        return png

    monkeypatch.setattr(merge_results.harness, "plot", fake_plot)
    a = _part(tmp_path, "a", [_row(1024, 0.02)], 4e12)
    b = _part(tmp_path, "b", [_row(2048, 0.03)], 4e12)
    out = tmp_path / "merged.json"
    merge_results.main(["--out", str(out), str(a), str(b)])
    merge_results.main(["--replot", str(out)])  # a results file merged earlier: the plot only, the file untouched
    assert seen == [(out.with_suffix(".png"), "NVIDIA H200, jax ?, 2 benchmark runs", 2)] * 2
    merge_results.main(["--replot", str(a)])  # a file a benchmark wrote itself (no parts): one run, not zero
    assert seen[-1] == (a.with_suffix(".png"), "NVIDIA H200, jax ?, 1 benchmark run", 1)
    with pytest.raises(SystemExit):
        merge_results.main([str(a)])  # merging needs --out
