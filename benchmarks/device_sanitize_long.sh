#!/usr/bin/env bash
# The long-N path through XLA under compute-sanitizer memcheck (issue 5: N = 64K and 1M, B = 1, H = 2, bf16 and
# float32, forward + backward + float64 check; benchmarks/sanitize_long.py) in one short device call, from the
# repository root:
#
#   OUT=/some/dir DEADLINE=270 bash benchmarks/device_sanitize_long.sh
#
# TESTS_K="expr" first runs the GPU tests selected by `pytest -m gpu -k expr` (test.log).
source "$(dirname "$0")/device_lib.sh"

bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
tail -n 2 "$OUT/build.log"
if [ -n "${TESTS_K:-}" ]; then
  gpu_tests "$TESTS_K"
  tail -n 3 "$OUT/test.log"
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
root=$(pwd)
(cd /tmp && run_left sanitize_long.log compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 100 \
  python3 "$root/benchmarks/sanitize_long.py")
cat "$OUT/sanitize_long.log"
