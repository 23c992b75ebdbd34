#!/usr/bin/env bash
# Native BLH forward of the fused kernels (N = 256..32K, thread block clusters) in one device call, from the
# repository root:
#
#   OUT=/some/dir bash benchmarks/device_blh.sh
#
# 1. monarch_selftest --small (each case also runs BLH on transposed copies: float64 check, BHL bitwise
#    comparison, poison, determinism), then under compute-sanitizer memcheck, then racecheck on the cases
#    matching RACECHECK_ONLY (default "N2048 H=16");
# 2. the self-test's timed table (B=64 H=768 bf16 gated, BHL and BLH side by side; SKIP_TABLE=1 leaves it out);
# 3. the package build, the GPU tests -k "fftconv and not long", and bench_fftconv --layout BLH (issue 3's
#    table).
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
("${nv[@]}" -lineinfo -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  echo built monarch_selftest) >"$OUT/build_selftest.log" 2>&1 &
selftest_build=$!
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1 &
wait $selftest_build
cat "$OUT/build_selftest.log" | grep -v warning | tail -n 3
run_left small.log timeout 90 $b/monarch_selftest --small
grep -h "PASS\|FAIL\|exit" "$OUT/small.log" | tail -n 45
san=(compute-sanitizer --error-exitcode 1)
run_left sanitizer.log timeout 150 "${san[@]}" --tool memcheck $b/monarch_selftest --small
run_left sanitizer.log timeout 100 "${san[@]}" --tool racecheck $b/monarch_selftest --small --only "${RACECHECK_ONLY:-N2048 H=16}"
grep -h "ALL PASS\|SOME FAILED\|ERROR SUMMARY\|RACECHECK SUMMARY\|exit" "$OUT/sanitizer.log"
if [ "${SKIP_TABLE:-0}" != 1 ]; then
  run_left table.log timeout 150 $b/monarch_selftest --only "T "
  grep -h "^T \|exit" "$OUT/table.log"
fi
wait
tail -n 2 "$OUT/build.log"
gpu_tests "fftconv and not long"
grep -h "passed\|failed\|error" "$OUT/test.log" | tail -n 4
run_left bench.log python3 benchmarks/bench_fftconv.py --layout BLH --target-s 0.2 --out "$OUT" --no-plot --name fftconv-blh
tail -n 30 "$OUT/bench.log"
