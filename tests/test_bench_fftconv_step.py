"""benchmarks/bench_fftconv.py --modes step: a training step's op (y live, then the gradients), timed and checked."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_fftconv  # noqa: E402


def test_step_rows_carry_the_step_outputs_errors(tmp_path):
    bench_fftconv.main(["--quick", "--sizes", "256", "--batch", "1", "--heads", "2", "--modes", "fwd,step",
                        "--target-s", "0.01", "--out", str(tmp_path), "--name", "step-test", "--no-plot"])
    [path] = tmp_path.glob("*-step-test.json")
    rows = json.loads(path.read_text())["rows"]
    assert [(r["mode"], r["case"]) for r in rows] == [("fwd", "full"), ("step", "full"), ("fwd", "causal"),
                                                      ("step", "causal")]
    for r in rows:
        assert r["ours_ms"] > 0 and r["baseline_ms"] > 0
        errs = r["accuracy"]["ours"]
        # The step's own outputs (y and the four gradients) are checked against float64, not copied from the
        # fwd / fwd+bwd functions: bf16 inputs, the CPU handlers compute in double.
        step_names = ["step_y", "step_du", "step_dk", "step_dpre", "step_dpost"]
        assert all(name in errs for name in step_names)
        assert max(errs[n] for n in step_names) < 1e-2
        if r["mode"] == "step":
            assert r["ours_rel_l2"] == max(errs[n] for n in step_names)
            # the floor of a step: the forward's (u, pre, post, y; k) and then the backward's (dy, u, pre, post,
            # du, dpre, dpost; k, dk), bf16 activations of B=1 H=2, fp32 filters
            assert r["floor_bytes"] == 11 * 1 * 2 * r["L"] * 2 + 3 * 2 * r["Lk"] * 4
