"""benchmarks/harness.py: device-side time per program from a profile (JFF_BENCH_DEVICE_TIMING=1)."""

import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import harness  # noqa: E402


def _line(name, intervals):
    return NS(name=name, events=[NS(start_ns=a, end_ns=b) for a, b in intervals])


def _device(*lines):
    host = NS(name="/host:CPU", lines=[_line("python", [(0, 10_000_000)])])
    return [host, NS(name="/device:GPU:0", lines=list(lines))]


def test_modules_line_gives_one_span_per_program():
    planes = _device(_line("XLA Modules", [(1000, 5000), (9000, 12000)]), _line("Stream #13(Compute)", [(1000, 2000)]))
    spans, how = harness.program_spans_ns(planes, 2)
    assert spans == [4000, 3000]
    assert how == "XLA Modules line"


def test_kernels_are_cut_into_equal_runs_and_host_gaps_left_out():
    # Two programs of three kernels; the gap between the programs (5000 -> 20000) is the host's.
    kernels = [(1000, 2000), (2500, 3000), (3500, 5000), (20000, 21000), (21400, 22000), (22500, 26000)]
    stream = _line("Stream #13(Compute)", kernels)
    spans, how = harness.program_spans_ns(_device(stream, _line("XLA Ops", [(1000, 5000)])), 2)
    assert spans == [4000, 6000]
    assert how == "3 device events per program"


def test_a_run_ends_at_its_latest_kernel_on_any_stream():
    a = _line("Stream #13", [(0, 100), (1000, 1100)])
    b = _line("Stream #14", [(50, 900), (1050, 1500)])
    spans, _ = harness.program_spans_ns(_device(a, b), 2)
    assert spans == [900, 500]


def test_mismatched_counts_and_missing_device_are_errors():
    with pytest.raises(ValueError, match="do not split into 2 programs"):
        harness.program_spans_ns(_device(_line("Stream #13", [(0, 1), (2, 3), (4, 5)])), 2)
    with pytest.raises(ValueError, match="no device plane"):
        harness.program_spans_ns([NS(name="/host:CPU", lines=[])], 1)


def test_time_fn_reports_why_there_is_no_device_time_on_cpu(monkeypatch):
    import jax.numpy as jnp

    monkeypatch.setattr(harness, "DEVICE_TIMING", True)
    sets = [(jnp.full((256,), float(i)),) for i in range(3)]
    t = harness.time_fn(lambda x: x * 2 + 1, *sets, min_samples=2, max_samples=3, target_s=0.01)
    assert t["median_ms"] > 0
    if harness.on_gpu():
        assert t.get("device_median_ms", 0) > 0, t
    else:
        assert "no device plane" in t["device_error"]


def test_device_time_is_the_reported_figure_when_measured(monkeypatch):
    import jax.numpy as jnp

    monkeypatch.setattr(harness, "DEVICE_TIMING", True)
    monkeypatch.setattr(harness, "device_time", lambda *a: {"device_median_ms": 1e-6, "device_method": "test"})
    sets = [(jnp.full((256,), float(i)),) for i in range(3)]
    t = harness.time_fn(lambda x: x * 2 + 1, *sets, min_samples=2, max_samples=3, target_s=0.01)
    assert t["reported_by"] == "device" and t["reported_ms"] == 1e-6 and t["median_ms"] > 1e-6
    assert harness.timing_method().startswith("device-side")
    row = {"floor_ms": 1.0}
    harness.time_sides(row, {"ours": (lambda x: x + 1, None), "baseline": (lambda x: x - 1, None)}, "fwd", sets, [],
                       target_s=0.01)
    assert row["ours_ms"] == 1e-6 and row["ours_wall_ms"] > row["ours_ms"]
    assert row["ours_over_floor"] == 1e-6 and row["baseline_over_ours"] == 1.0


def test_the_profiled_sample_holds_at_least_the_minimum_of_programs(monkeypatch):
    # A fast op's timing sample is one or two programs; the profiled sample must still give the median
    # DEVICE_MIN_PROGRAMS spans (one disturbed program out of three moved a point 1.7x).
    import jax.numpy as jnp

    seen = []

    def fake_device_time(run_programs, programs, calls_per_program):
        run_programs()  # dispatches `programs` programs and blocks
        seen.append((programs, calls_per_program))
        return {"device_median_ms": 1e-6, "device_method": "test"}

    monkeypatch.setattr(harness, "DEVICE_TIMING", True)
    monkeypatch.setattr(harness, "device_time", fake_device_time)
    sets = [(jnp.full((256,), float(i)),) for i in range(3)]
    # min_sample_s below one program's time: a timing sample of a single program
    t = harness.time_fn(lambda x: x * 2 + 1, *sets, min_samples=2, max_samples=3, target_s=0.01, min_sample_s=1e-9)
    assert t["method"] == "program" and t["calls_per_sample"] == len(sets)
    assert seen and seen[0][0] >= harness.DEVICE_MIN_PROGRAMS and seen[0][1] == len(sets)


def test_wall_clock_is_reported_when_the_profile_gives_no_device_time(monkeypatch):
    import io

    import jax.numpy as jnp

    monkeypatch.setattr(harness, "DEVICE_TIMING", True)
    monkeypatch.setattr(harness, "device_time", lambda *a: {"device_error": "no device plane in the profile"})
    sets = [(jnp.full((256,), float(i)),) for i in range(3)]
    row = {"floor_ms": 1.0, "name": "r"}
    harness.time_sides(row, {"ours": (lambda x: x + 1, None), "baseline": (lambda x: x - 1, None)}, "fwd", sets,
                       [], target_s=0.01)
    assert row["ours_timing"]["reported_by"] == "wall clock"
    assert row["ours_ms"] == row["ours_timing"]["median_ms"] and "ours_wall_ms" not in row
    out = io.StringIO()
    harness.print_table([row], [("name", "name")], file=out)
    assert "device timing, wall clock reported: no device plane" in out.getvalue()
