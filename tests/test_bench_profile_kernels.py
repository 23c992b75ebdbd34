"""benchmarks/profile_kernels.py: device time per kernel name from a profile's planes."""

import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import profile_kernels  # noqa: E402


def _line(name, events):
    return NS(name=name, events=[NS(name=k, start_ns=a, end_ns=b, duration_ns=b - a) for k, a, b in events])


def test_kernel_time_summed_per_name_and_derived_lines_left_out():
    host = NS(name="/host:CPU", lines=[_line("python", [("call", 0, 10_000)])])
    device = NS(name="/device:GPU:0", lines=[
        _line("Stream #13(Compute)", [("inv", 100, 400), ("fwd", 500, 600), ("inv", 700, 1000)]),
        _line("Stream #14(Compute)", [("fwd", 650, 1200)]),
        _line("XLA Ops", [("fusion", 100, 1200)]),  # derived: repeats the kernels' time
    ])
    per, span = profile_kernels.kernel_times([host, device])
    assert dict(per) == {"inv": [600, 2], "fwd": [650, 2]}
    assert span == 1100  # first kernel start to last kernel end, over every stream


def test_no_device_plane_is_an_error():
    with pytest.raises(ValueError, match="no device plane"):
        profile_kernels.kernel_times([NS(name="/host:CPU", lines=[])])
