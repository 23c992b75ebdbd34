#!/usr/bin/env bash
# The fused backward's self-test alone (no package build; about 3-4 minutes): ROWS (a --only pattern, default
# N32768) under its float64 checks, then compute-sanitizer memcheck on those small cases and racecheck on RACE
# (default "bf16 N32768 full gated"), with JFF_MONARCH_REPORT=1 so the log shows which big-kernel variant ran.
#
#   OUT=/some/dir DEADLINE=260 bash benchmarks/device_bwd_sanitize.sh
source "$(dirname "$0")/device_lib.sh"
export JFF_MONARCH_REPORT=1
bin=build/selftests/monarch_bwd_selftest
"${nv[@]}" -o $bin cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu >"$OUT/build.log" 2>&1 ||
  { tail -n 20 "$OUT/build.log"; exit 1; }
rows=${ROWS:-N32768}
run_left sanitize.log $bin --small --only "$rows"
run_left sanitize.log compute-sanitizer --tool memcheck --error-exitcode 1 $bin --small --only "$rows"
run_left sanitize.log compute-sanitizer --tool racecheck --error-exitcode 1 $bin --only "${RACE:-bf16 N32768 full gated}"
grep -h "^===\|monarch backward\|PASS\|FAIL\|ERROR SUMMARY\|RACECHECK SUMMARY\|exit" "$OUT/sanitize.log"
