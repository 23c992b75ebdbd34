#!/usr/bin/env bash
# Profile of the tensor-core backward kernels in one device call, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_profile_bwd.sh
#
# Builds monarch_bwd_selftest (-lineinfo, without the forward); then Nsight Compute (speed of light, memory
# tables, warp states, occupancy, launch statistics, source counters) on one launch of each kernel matching
# KERNEL_REGEX (default monarch_bwd_big) in the timed case of each of NCU_SIZES (default 4096 32768; B=64 H=768
# bf16 gated, BHL and, with JFF_MONARCH_BLH_BWD=1 as set here, BLH: KERNEL_REGEX=monarch_bwd_blh profiles those).
source "$(dirname "$0")/device_lib.sh"
export JFF_MONARCH_BLH_BWD=1

b=build/selftests
("${nv[@]}" -lineinfo -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu &&
  echo built monarch_bwd_selftest) >"$OUT/build.log" 2>&1
grep -h "^built\|error" "$OUT/build.log"
for n in ${NCU_SIZES:-4096 32768}; do
  for k in ${KERNEL_REGEX:-monarch_bwd_big}; do
    run_left "ncu-$k-$n.log" timeout 150 ncu --clock-control none -k "regex:$k" --launch-skip 2 -c 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy \
      --section LaunchStats --section SourceCounters --section ComputeWorkloadAnalysis --print-details all \
      $b/monarch_bwd_selftest --only "T bf16 N$n L=N"
    echo "== $k N=$n"
    grep -h "monarch_bwd\|Duration\|Memory Throughput\|DRAM Throughput\|Compute (SM) Throughput\|Achieved Occupancy\|Registers Per\|Theoretical Occ\|Block Limit\|Stall\|L2 Hit\|L1/TEX Hit\|Warp Cycles Per Issued\|Issue Slots Busy\|Shared Memory Configuration Size\|Dynamic Shared\|Grid Size\|Block Size\|Local" "$OUT/ncu-$k-$n.log" | head -n 45
  done
done
