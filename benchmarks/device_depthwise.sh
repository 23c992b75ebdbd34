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
#    first with JFF_PDL=0 (no programmatic dependent launch), then as shipped. With BENCH_RUNS=n instead n runs
#    as shipped in separate processes (modes BENCH_MODES, default fwd), merged by merge_results.py --median into
#    $OUT/dw-median.json (per-process state moves these small points by 10-25%: notes_depthwise.md).
#    DEVICE_TIMING=1 reports each point device-side, wall clock beside it (JFF_BENCH_DEVICE_TIMING, harness.py).
# SKIP_CHECKS=1 leaves out steps 2 and 3. Every step after the build gets what is left of DEADLINE seconds
# (default 560).
# Files under $OUT: summary.txt build.log selftests.log test.log bench.log and the bench JSON parts.
source "$(dirname "$0")/device_lib.sh"

"${nv[@]}" -o build/selftests/dw_selftest cuda/depthwise/depthwise_selftest.cu \
  cuda/depthwise/depthwise_kernels.cu >"$OUT/selftests.log" 2>&1 &
compile=$!
bash benchmarks/device_run.sh build >/dev/null
wait "$compile" || echo "self-test compile failed" | tee -a "$OUT/selftests.log"

if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  run_left selftests.log build/selftests/dw_selftest --check
  run_left selftests.log compute-sanitizer --tool memcheck --error-exitcode 1 build/selftests/dw_selftest --small
  grep -h "PDL chain\|correctness:\|ERROR SUMMARY" "$OUT/selftests.log"
  gpu_tests depthwise
  tail -n 3 "$OUT/test.log"
  run_left selftests.log build/selftests/dw_selftest --pdl-bench
fi

bench=(python3 benchmarks/bench_depthwise.py --lengths "${BENCH_LENGTHS:-1K}" --k 3,4,5,7 --target-s 0.1
  --out "$OUT" --no-plot)
[ "${DEVICE_TIMING:-0}" = 1 ] && export JFF_BENCH_DEVICE_TIMING=1
if [ "${BENCH_RUNS:-0}" -gt 0 ]; then
  for i in $(seq 1 "$BENCH_RUNS"); do
    run_left bench.log "${bench[@]}" --modes "${BENCH_MODES:-fwd}" --no-accuracy --name "dw-run$i"
  done
  run_left bench.log python3 benchmarks/merge_results.py --median --no-plot --out "$OUT/dw-median.json" \
    "$OUT"/*-dw-run*.json
  run_left bench.log python3 -c "
import json, sys
rows = json.load(open(sys.argv[1]))['rows']
over = [r for r in rows if r['ours_ms'] / r['floor_ms'] > (1.5 if r['mode'] == 'fwd' else 2.5)]
print(f'median of runs: {len(over)} of {len(rows)} points over the bar')
for r in over:  # ours_ms is device-side where the run measured it (DEVICE_TIMING=1), see reported_by
    print(' ', r['mode'], r['dtype'], r['layout'], r['L'], r['D'], r['K'], round(r['ours_ms'] / r['floor_ms'], 2),
          [round(t * 1e3, 1) for t in r['ours_ms_runs']], r['ours_timing'].get('reported_by', 'wall clock'))
" "$OUT/dw-median.json"
else
  run_left bench.log env JFF_PDL=0 "${bench[@]}" --no-accuracy --name dw-nopdl
  run_left bench.log "${bench[@]}" --name dw-pdl
fi
grep -h "worst\|max\|ratio\|median of runs\|^  " "$OUT/bench.log" | tail -n 40
