#!/usr/bin/env bash
# Issue 4's checks and measurements in one device call (about 9 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_depthwise.sh
#
# 1. the package build (device_run.sh build) and, alongside it, dw_selftest compiled;
# 2. dw_selftest --check (every path against float64, and back-to-back PDL chains against serial runs),
#    compute-sanitizer memcheck on --small, then --pdl-bench (call streams with and without PDL);
# 3. the GPU tests `-k depthwise`;
# 4. bench_depthwise at L = BENCH_LENGTHS (default 1K) for every K and D of the grid, forward and fwd+bwd:
#    first with JFF_PDL=0 (no programmatic dependent launch), then as shipped.
# Every step after the build gets what is left of DEADLINE seconds (default 560).
# Files under $OUT: summary.txt build.log selftests.log test.log bench.log and the bench JSON parts.
source "$(dirname "$0")/device_lib.sh"

"${nv[@]}" -o build/selftests/dw_selftest cuda/depthwise/depthwise_selftest.cu \
  cuda/depthwise/depthwise_kernels.cu >"$OUT/selftests.log" 2>&1 &
compile=$!
bash benchmarks/device_run.sh build >/dev/null
wait "$compile" || echo "self-test compile failed" | tee -a "$OUT/selftests.log"

run_left selftests.log build/selftests/dw_selftest --check
run_left selftests.log compute-sanitizer --tool memcheck --error-exitcode 1 build/selftests/dw_selftest --small
grep -h "PDL chain\|correctness:\|ERROR SUMMARY" "$OUT/selftests.log"
(cd tests && run_left test.log python3 -m pytest -p no:cacheprovider -q -rfE -m gpu -k depthwise)
tail -n 3 "$OUT/test.log"
run_left selftests.log build/selftests/dw_selftest --pdl-bench

bench=(python3 benchmarks/bench_depthwise.py --lengths "${BENCH_LENGTHS:-1K}" --k 3,4,5,7 --target-s 0.1
  --out "$OUT" --no-plot)
run_left bench.log env JFF_PDL=0 "${bench[@]}" --no-accuracy --name dw-nopdl
run_left bench.log "${bench[@]}" --name dw-pdl
grep -h "worst\|max\|ratio" "$OUT/bench.log" | tail -n 20
