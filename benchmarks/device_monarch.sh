#!/usr/bin/env bash
# The fused (N <= 32K) forward and backward self-tests in one device call, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_monarch.sh
#
# Builds monarch_selftest and monarch_bwd_selftest (-lineinfo), runs both whole (correctness cases, then the
# timed issue-3 table: B=64 H=768 bf16 gated, L = N and N/2), then Nsight Compute's shared-memory and
# warp-state sections on one forward launch at NCU_N (default 4096; empty: no profile).
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
("${nv[@]}" -lineinfo -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  echo built monarch_selftest) >"$OUT/build.log" 2>&1 &
("${nv[@]}" -lineinfo -DJFF_WITH_FWD -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu \
  cuda/fftconv/monarch_bwd.cu cuda/fftconv/monarch_fwd.cu && echo built monarch_bwd_selftest) >"$OUT/build_bwd.log" 2>&1 &
wait
grep -h "^built" "$OUT"/build*.log
run_left selftests.log $b/monarch_selftest
run_left selftests.log $b/monarch_bwd_selftest
grep -h "ALL PASS\|FAIL\|T bf16\|T fp16" "$OUT/selftests.log"
n=${NCU_N-4096}
if [ -n "$n" ]; then
  run_left ncu.log ncu --clock-control none -k regex:monarch_fwd_big --launch-skip 2 -c 1 --section SpeedOfLight \
    --section MemoryWorkloadAnalysis_Tables --section SourceCounters --section WarpStateStats --section Occupancy \
    --print-details all $b/monarch_selftest --only "T bf16 N$n L=N"
fi
