#!/usr/bin/env bash
# The tensor-core backward's self-test alone, in one device call, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_bwd.sh
#
# Builds monarch_bwd_selftest (without the forward: no forward timings in its table); runs its small cases
# (float64 checks, poison, determinism), the same under compute-sanitizer memcheck (only the cases matching
# MEMCHECK when it is set), racecheck on the cases matching each of RACECHECK (default "bf16 N2048 full"
# "bf16 N4096 full"), then the timed rows matching each of TIMED (default: N = 1024 odd L, 2048 .. 32768 bf16
# and 4096 fp16; B=64 H=768 gated), then the rows matching each of ACC_AB (';'-separated, default
# "T bf16 N4096") with the big kernel's dk accumulator forced to each variant (JFF_MONARCH_BWD_ACC=shared /
# global; the default rows show which one the device picks), ROUNDS times interleaved (default 1).
# JFF_MONARCH_BLH_BWD=1 in the environment adds the BLH rows. With PACKAGE=1 the package is built alongside
# and, last, bench_fftconv times fwd+bwd through JAX at BENCH_SIZES (default 8K,16K) once per variant.
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
[ "${PACKAGE:-0}" = 1 ] && (bash benchmarks/device_run.sh build >"$OUT/package.log" 2>&1; tail -n 1 "$OUT/package.log") &
("${nv[@]}" -lineinfo -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu &&
  echo built monarch_bwd_selftest) >"$OUT/build.log" 2>&1
grep -h "^built\| error" "$OUT/build.log"
run_left small.log timeout 120 $b/monarch_bwd_selftest --small
grep -h "FAIL\|ALL PASS\|SOME FAILED\|exit" "$OUT/small.log"
san=(compute-sanitizer --error-exitcode 1)
memcheck_only=()
[ -n "${MEMCHECK:-}" ] && memcheck_only=(--only "$MEMCHECK")
run_left sanitizer.log timeout 150 "${san[@]}" --tool memcheck $b/monarch_bwd_selftest --small "${memcheck_only[@]}"
IFS=';' read -ra races <<<"${RACECHECK:-bf16 N2048 full;bf16 N4096 full}"
for c in "${races[@]}"; do
  run_left sanitizer.log timeout 90 "${san[@]}" --tool racecheck $b/monarch_bwd_selftest --small --only "$c"
done
grep -h "ALL PASS\|SOME FAILED\|ERROR SUMMARY\|RACECHECK SUMMARY\|exit" "$OUT/sanitizer.log"
IFS=';' read -ra timed <<<"${TIMED:-T bf16 N1024 L=1020;T bf16 N2048;T bf16 N4096 L=N;T fp16 N4096;T bf16 N8192;T bf16 N16384 L=N;T bf16 N32768 L=N}"
for c in "${timed[@]}"; do
  run_left table.log timeout 90 $b/monarch_bwd_selftest --only "$c"
done
IFS=';' read -ra ab_rows <<<"${ACC_AB:-T bf16 N4096 L=N}"
for ((round = 1; round <= ${ROUNDS:-1}; ++round)); do
  for acc in shared global; do
    echo "## JFF_MONARCH_BWD_ACC=$acc round $round" >>"$OUT/table.log"
    for c in "${ab_rows[@]}"; do
      run_left table.log env JFF_MONARCH_BWD_ACC=$acc timeout 90 $b/monarch_bwd_selftest --only "$c"
    done
  done
done
grep -h "^T \|^  BLH T \|copy\|^## \|exit" "$OUT/table.log"
if [ "${PACKAGE:-0}" = 1 ]; then
  wait
  for acc in shared global; do
    echo "## JFF_MONARCH_BWD_ACC=$acc" >>"$OUT/bench.log"
    run_left bench.log env JFF_BENCH_DEVICE_TIMING=1 JFF_MONARCH_BWD_ACC=$acc python3 benchmarks/bench_fftconv.py \
      --sizes "${BENCH_SIZES:-8K,16K}" --cases full --modes fwd+bwd --target-s 0.2 --no-save --no-plot
  done
  grep -h "^## \|fwd+bwd\|exit" "$OUT/bench.log"
fi
