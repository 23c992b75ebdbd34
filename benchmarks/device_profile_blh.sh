#!/usr/bin/env bash
# Profile of the BLH forward (monarch_fwd_blh_kernel) in one device call, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_profile_blh.sh
#
# Builds monarch_selftest (-lineinfo); times the issue-3 rows at BLH_SIZES (default 256 4096 32768; BHL and
# BLH side by side); then Nsight Compute (speed of light, memory tables, warp states, occupancy, source counters) on one
# BLH launch at each of NCU_SIZES (default 256 4096).
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
("${nv[@]}" -lineinfo -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  echo built monarch_selftest) >"$OUT/build.log" 2>&1
grep -h "^built\|error" "$OUT/build.log"
for n in ${BLH_SIZES:-256 4096 32768}; do
  run_left table.log timeout 60 $b/monarch_selftest --only "T bf16 N$n L=N"
done
grep -h "^T \|exit" "$OUT/table.log"
for n in ${NCU_SIZES:-256 4096}; do
  run_left "ncu$n.log" timeout 90 ncu --clock-control none -k regex:monarch_fwd_blh --launch-skip 2 -c 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy \
    --section LaunchStats --section SourceCounters --print-details all $b/monarch_selftest --only "T bf16 N$n L=N"
  grep -h "Duration\|Memory Throughput\|DRAM Throughput\|Achieved Occupancy\|Registers Per\|Theoretical Occ\|Block Limit\|Stall\|L2 Hit\|L1/TEX Hit\|Warp Cycles Per Issued" "$OUT/ncu$n.log" | head -n 40
done
