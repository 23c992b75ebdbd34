#!/usr/bin/env bash
# Profile the fused forward (monarch_fwd.cu) on a CUDA machine, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_profile_monarch.sh [N ...]     (default N: 4096 8192 16384)
#
# Builds monarch_selftest with -lineinfo, times the issue-3 workload (B=64 H=768 bf16 gated, L = N) for each N,
# then runs Nsight Compute on one launch of the main kernel of each: the full section set for the first N
# (report kept as $OUT/ncu-N.ncu-rep and printed to $OUT/ncu.log), the speed-of-light, occupancy, warp-state
# and scheduler sections for the others.
source "$(dirname "$0")/device_lib.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(4096 8192 16384)
bin=build/selftests/monarch_selftest
"${nv[@]}" -lineinfo -o "$bin" cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu >"$OUT/build.log" 2>&1 ||
  { cat "$OUT/build.log"; exit 1; }
first=1
for n in "${sizes[@]}"; do
  run_left time.log "$bin" --only "T bf16 N$n L=N"
  if [ $first = 1 ]; then
    sections=(--set full --import-source yes -o "$OUT/ncu-$n")
  else
    sections=(--section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats
      --section MemoryWorkloadAnalysis --section LaunchStats)
  fi
  run_left ncu.log ncu --clock-control none -k regex:monarch_fwd --launch-skip 2 -c 1 "${sections[@]}" \
    "$bin" --only "T bf16 N$n L=N"
  [ $first = 1 ] && run_left ncu.log ncu -i "$OUT/ncu-$n.ncu-rep" --page details
  first=0
done
grep -h "T bf16" "$OUT/time.log"
