#!/usr/bin/env bash
# Profile the fused kernels (monarch_fwd.cu, or with BWD=1 monarch_bwd.cu) on a CUDA machine, from the
# repository root:
#
#   OUT=/some/dir bash benchmarks/device_profile_monarch.sh [N ...]     (default N: 4096 8192 16384)
#   OUT=/some/dir KERNEL_REGEX=monarch_fwd_blh bash benchmarks/device_profile_monarch.sh 256 4096
#   OUT=/some/dir BWD=1 KERNEL_REGEX="monarch_bwd_big monarch_bwd_blh" bash benchmarks/device_profile_monarch.sh 4096
#
# Builds monarch_selftest (BWD=1: monarch_bwd_selftest, with JFF_MONARCH_BLH_BWD=1 so that its BLH rows run) with
# -lineinfo, times the issue-3 workload (B=64 H=768 bf16 gated, L = N; BHL and BLH rows) for each N, then runs
# Nsight Compute on one launch of each kernel matching KERNEL_REGEX (space-separated; default monarch_fwd, BWD=1:
# monarch_bwd_big): the full section set for the first N (report kept as $OUT/ncu-N.ncu-rep and printed to
# $OUT/ncu.log), the speed-of-light, occupancy, warp-state, scheduler, memory and source-counter sections for
# the others, with its source page (per CUDA line and per SASS instruction) as CSV in $OUT/ncu_source_*.csv.
# A summary of each profile (time, DRAM, occupancy, registers, stalls) is printed. SKIP_BUILD=1 uses the
# self-test binary already built (by the same nvcc line, e.g. alongside a package build).
# SHORT=1 profiles the short kernels instead (short_selftest; default KERNEL_REGEX "short_fwd_kernel
# short_bwd_kernel"). An argument with "L=" in it names the timed row itself, e.g. "256 L=N/2".
source "$(dirname "$0")/device_lib.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4096 8192 16384)
if [ "${SHORT:-0}" = 1 ]; then
  bin=build/selftests/short_selftest
  sources=(cuda/fftconv/short_selftest.cu)
  regexes=(${KERNEL_REGEX:-short_fwd_kernel short_bwd_kernel})
elif [ "${BWD:-0}" = 1 ]; then
  export JFF_MONARCH_BLH_BWD=1
  bin=build/selftests/monarch_bwd_selftest
  sources=(cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu)
  regexes=(${KERNEL_REGEX:-monarch_bwd_big})
else
  bin=build/selftests/monarch_selftest
  sources=(cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu)
  regexes=(${KERNEL_REGEX:-monarch_fwd})
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  "${nv[@]}" -lineinfo -o "$bin" "${sources[@]}" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
fi
first=1
for size in "${sizes[@]}"; do
  case $size in
    *L=*) row="T bf16 N$size" ;;
    *) row="T bf16 N$size L=N" ;;
  esac
  n=$(echo "$size" | tr -c '0-9A-Za-z\n' '_')  # for file names
  run_left time.log "$bin" --only "$row"
  for k in "${regexes[@]}"; do
    if [ $first = 1 ]; then
      sections=(--set full --import-source yes -o "$OUT/ncu-$n")
    else
      sections=(--section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats
        --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section LaunchStats
        --section SourceCounters)
    fi
    echo "=== $k $row" >>"$OUT/ncu.log"
    run_left ncu.log ncu --clock-control none -k "regex:$k" --launch-skip 2 -c 1 "${sections[@]}" \
      "$bin" --only "$row"
    if [ $first = 1 ]; then
      run_left ncu.log ncu -i "$OUT/ncu-$n.ncu-rep" --page details
      # Per-line counters (stall reasons, instructions executed) for reading without Nsight Compute.
      run_left ncu_source_cuda.csv ncu -i "$OUT/ncu-$n.ncu-rep" --page source --csv --print-source cuda
      run_left ncu_source_sass.csv ncu -i "$OUT/ncu-$n.ncu-rep" --page source --csv --print-source sass
    fi
    first=0
  done
done
grep -h "^T \|^  BLH T " "$OUT/time.log"
grep -hE "^=== |Duration|DRAM Throughput|Achieved Occupancy|Registers Per Thread|L2 Hit Rate For Loads|Warp Cycles Per Issued|Stall (Long Scoreboard|No Instruction|Wait|Barrier)" \
  "$OUT/ncu.log" | head -n 120
