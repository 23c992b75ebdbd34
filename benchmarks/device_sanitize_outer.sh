#!/usr/bin/env bash
# compute-sanitizer on the long path's outer passes, from the repository root:
#
#   OUT=/some/dir TOOLS="racecheck memcheck" bash benchmarks/device_sanitize_outer.sh
#
# Builds outer_selftest and runs `outer_selftest --quick` (147 small cases: every outer size, both directions,
# tensor-core and CUDA-core passes) under each tool of TOOLS (default: racecheck), within DEADLINE seconds.
# DEFS="-DX=1 ..." builds it with those defines (e.g. the staged-load switches).
# Output: $OUT/sanitize.log.
source "$(dirname "$0")/device_lib.sh"

# shellcheck disable=SC2086  # DEFS are separate words
"${nv[@]}" ${DEFS:-} -o build/selftests/outer_selftest cuda/fftconv_long/outer_selftest.cu >"$OUT/sanitize.log" 2>&1 ||
  { echo "build failed"; cat "$OUT/sanitize.log"; exit 1; }
for tool in ${TOOLS:-racecheck}; do
  run_left sanitize.log compute-sanitizer --tool "$tool" --error-exitcode 3 build/selftests/outer_selftest --quick
done
grep -hE "^=== |ERROR SUMMARY|RACECHECK SUMMARY|ALL PASS|FAIL|exit " "$OUT/sanitize.log"
