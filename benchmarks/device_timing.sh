#!/usr/bin/env bash
# Device-side timing (DESIGN.md section 4) of the issue tables in one device call (about 9 minutes on an H200),
# from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_timing.sh
#
# With JFF_BENCH_DEVICE_TIMING=1 every bench point is reported device-side (harness.device_time: each
# program's span from first kernel start to last kernel end under jax.profiler, per op call), the floor's copy
# too, with the wall-clock median beside it. In order of priority, each step getting what is left of DEADLINE seconds (default 560):
# 1. the package build, with outer_selftest, long_bwd_selftest and monarch_selftest compiled alongside;
# 2. bench_fftconv's issue-3 table (B=64 H=768 bf16 gated, BHL, N 256..32K) with device timing;
# 3. the long path's kernel timings (outer_selftest --bench, long_bwd_selftest --bench);
# 4. the forward's next-item L2 prefetch (JFF_MONARCH_L2_PREFETCH=1) against the default at N = 4K..32K,
#    two interleaved rounds of monarch_selftest's timed rows (PREFETCH_ROWS, ';'-separated);
# 5. bench_depthwise's L = 1K forward grid with device timing, DW_RUNS (default 2) processes.
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
("${nv[@]}" -o $b/outer_selftest cuda/fftconv_long/outer_selftest.cu &&
  "${nv[@]}" -o $b/long_bwd_selftest cuda/fftconv_long/long_bwd_selftest.cu && echo built long) \
  >"$OUT/build_long.log" 2>&1 &
("${nv[@]}" -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu && echo built monarch) \
  >"$OUT/build_monarch.log" 2>&1 &
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
wait
tail -n 1 "$OUT/build.log" "$OUT/build_long.log" "$OUT/build_monarch.log"

export JFF_BENCH_DEVICE_TIMING=1
run_left bench.log python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT" --no-plot --name fftconv
grep -h "device timing\|ours wall ms\|^ *fwd" "$OUT/bench.log" | head -n 40

run_left long.log $b/outer_selftest --bench
run_left long.log $b/long_bwd_selftest --bench
grep -h "inner\|bwd \|tc  fwd" "$OUT/long.log" | cut -c1-220

IFS=';' read -ra rows <<<"${PREFETCH_ROWS:-T bf16 N4096;T bf16 N8192;T bf16 N16384;T bf16 N32768}"
for round in 1 2; do
  for pf in 0 1; do
    echo "## round $round JFF_MONARCH_L2_PREFETCH=$pf" >>"$OUT/prefetch.log"
    for r in "${rows[@]}"; do
      run_left prefetch.log env JFF_MONARCH_L2_PREFETCH=$pf $b/monarch_selftest --only "$r"
    done
  done
done
grep -h "^## \|^T " "$OUT/prefetch.log"

for i in $(seq 1 "${DW_RUNS:-2}"); do
  run_left depthwise.log python3 benchmarks/bench_depthwise.py --lengths 1K --k 3,4,5,7 --target-s 0.1 --modes fwd \
    --no-accuracy --out "$OUT" --no-plot --name "dw-devtime-run$i"
done
grep -h "wall/floor\|device timing" "$OUT/depthwise.log" | head -n 5
