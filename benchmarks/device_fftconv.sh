#!/usr/bin/env bash
# Issue 3's checks and table in one device call (about 9 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_fftconv.sh
#
# In order of priority, each step getting what is left of DEADLINE seconds (default 560):
# 1. the package build, with the fused kernels' self-tests and outer_selftest compiled alongside;
# 2. compute-sanitizer memcheck on monarch_selftest --small and monarch_bwd_selftest --small, racecheck on the
#    fused forward's "full" rows at N = 256, 4K and 32K (RACE_ROWS, ';'-separated --only names) and the
#    backward's at 32K (BWD_RACE_ROWS);
# 3. outer_selftest --quick (the long path's inner pass shares the fused kernels' routines);
# 3b. with BWD_AB (define sets as device_monarch_ab.sh takes them, e.g. "-DJFF_AB_BASELINE -DX=1"): the backward
#    self-test built once per set alongside step 1, and its rows BWD_AB_ROWS run twice, interleaved, for at most
#    BWD_AB_SECONDS (default 150: a 32K backward row takes 40-50 s with its float64 checks; the builds make step
#    1 take ~300 s instead of ~225); SMALL=1 runs each A/B build's --small cases first, and BWD_AB_RACE (';'-separated
#    --only names) racecheck on the second build (the first is the baseline) after the rows;
# 4. bench_fftconv's issue-3 table (B=64 H=768 bf16 gated, BHL, N 256..32K, L = N and causal, fwd, fwd+bwd);
#    STEP=1 adds the training-step rows beside fwd+bwd (L = N, fftconv-step.json); BLH=1 the BLH table after the
#    BHL one (fftconv-blh.json; that file was last measured in session 11, wall clock);
# 5. with SLOT_AB (';'-separated rows, e.g. "T bf16 N16384"): those backward self-test rows once per dk slot cap
#    in SLOT_CAPS (MB, default "64 320 1024"; JFF_MONARCH_BWD_SLOT_CAP_MB, monarch_bwd.cu's bwd_slot_cap_bytes);
# 6. the GPU tests -k "fftconv and not long", then -k long.
# TABLE=0 leaves out step 4, OUTER=0 step 3.
# The table is timed device-side (JFF_BENCH_DEVICE_TIMING=1, like results/<device>-fftconv.json; the wall-clock
# median stays beside it). SKIP_CHECKS=1 runs only steps 1 (the package) and 4 (for code already checked), and
# with TESTS=1 the first part of step 6.
# FWD_QUICK=1: a short call after a change to the forward's kernels (about 6 minutes): the package with
# monarch_selftest alongside, its --small cases, the BHL table (step 4, with STEP / BLH as above), then in what
# time is left memcheck on monarch_selftest --small and racecheck on RACE_ROWS; no GPU tests.
# BWD_QUICK=1: a short call after a change to the backward's kernels (about 6 minutes): the package with
# monarch_bwd_selftest alongside, its --small cases, memcheck on them and racecheck on BWD_RACE_ROWS, the GPU tests
# -k "fftconv and not long" (or TEST_K), the BHL table at SIZES (default all; e.g. 256,1024,4096; BLH=1 the BLH one too), then
# the ENV_AB and PROFILE_RUNS steps described there, in what time is left.
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
# The quick modes' start: the package build with one fused self-test (NAME, built from SOURCES) compiled alongside,
# then that self-test's --small cases.
package_and_small() {
  local name=$1 compile
  shift
  "${nv[@]}" -o "$b/$name" "$@" >"$OUT/selftests.log" 2>&1 &
  compile=$!
  bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
  tail -n 2 "$OUT/build.log"
  wait "$compile" || echo "self-test compile failed" | tee -a "$OUT/selftests.log"
  run_left selftests.log "$b/$name" --small
}
# memcheck on the self-test NAME's --small cases, racecheck on each of ROWS (';'-separated --only names).
sanitize() {
  local name=$1 r rows
  run_left selftests.log compute-sanitizer --tool memcheck --error-exitcode 1 "$b/$name" --small
  IFS=';' read -ra rows <<<"$2"
  for r in "${rows[@]}"; do
    run_left selftests.log compute-sanitizer --tool racecheck --error-exitcode 1 "$b/$name" --only "$r"
  done
  grep -h "ALL PASS\|FAIL\|ERROR SUMMARY\|RACECHECK SUMMARY\|exit" "$OUT/selftests.log"
}
if [ "${BWD_QUICK:-0}" = 1 ]; then
  package_and_small monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu
  sanitize monarch_bwd_selftest "${BWD_RACE_ROWS:-}"
  gpu_tests "${TEST_K:-fftconv and not long}"
  tail -n 3 "$OUT/test.log"
  export JFF_BENCH_DEVICE_TIMING=1
  run_left bench.log python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT" --no-plot --name fftconv \
    ${SIZES:+--sizes "$SIZES"}
  if [ "${BLH:-0}" = 1 ]; then
    run_left bench.log python3 benchmarks/bench_fftconv.py --layout BLH --target-s 0.2 --out "$OUT" --no-plot \
      --name fftconv-blh ${SIZES:+--sizes "$SIZES"}
  fi
  grep -vE "^  " "$OUT/bench.log" | tail -n 30
  # ENV_AB (';'-separated sets of run-time switches, e.g. "JFF_MONARCH_BWD_ACC=global"): the fwd+bwd rows at SIZES
  # once per set and once with none ("default"), ROUNDS (default 2) interleaved rounds, no accuracy check;
  # AB_LAYOUT=BLH times those rows in BLH.
  if [ -n "${ENV_AB:-}" ]; then
    IFS=';' read -ra env_sets <<<"default;$ENV_AB"
    for round in $(seq "${ROUNDS:-2}"); do
      for e in "${env_sets[@]}"; do
        echo "## round $round: $e" >>"$OUT/env_ab.log"
        # shellcheck disable=SC2086  # a set is several VAR=value words
        run_left env_ab.log env $([ "$e" = default ] || echo $e) python3 benchmarks/bench_fftconv.py --modes fwd+bwd \
          --no-accuracy --no-save --target-s 0.2 ${SIZES:+--sizes "$SIZES"} ${AB_LAYOUT:+--layout "$AB_LAYOUT"}
      done
    done
    grep -hE "^## |^fwd\+bwd|exit" "$OUT/env_ab.log"
  fi
  # PROFILE_RUNS (';'-separated profile_kernels.py argument sets): which kernels the rows ran, and their times.
  run_profiles "${PROFILE_RUNS:-}"
  [ -n "${PROFILE_RUNS:-}" ] && grep -E "^ +[0-9.]+ +[0-9.]+ |^NVIDIA|^kernel" "$OUT/profile.log"
  exit 0
fi
if [ "${FWD_QUICK:-0}" = 1 ]; then
  package_and_small monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu
  export JFF_BENCH_DEVICE_TIMING=1
  run_left bench.log python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT" --no-plot --name fftconv
  if [ "${STEP:-0}" = 1 ]; then
    run_left bench.log python3 benchmarks/bench_fftconv.py --modes fwd+bwd,step --cases full --target-s 0.2 \
      --out "$OUT" --no-plot --name fftconv-step
  fi
  if [ "${BLH:-0}" = 1 ]; then
    run_left bench.log python3 benchmarks/bench_fftconv.py --layout BLH --target-s 0.2 --out "$OUT" --no-plot \
      --name fftconv-blh
  fi
  grep -vE "^  " "$OUT/bench.log" | tail -n 40
  sanitize monarch_selftest "${RACE_ROWS:-bf16 N256 full;bf16 N4096 full;bf16 N32768 full}"
  exit 0
fi
if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  ("${nv[@]}" -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
    "${nv[@]}" -DJFF_WITH_FWD -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu \
      cuda/fftconv/monarch_bwd.cu cuda/fftconv/monarch_fwd.cu && echo built monarch) >"$OUT/selftests.log" 2>&1 &
  ("${nv[@]}" -o $b/outer_selftest cuda/fftconv_long/outer_selftest.cu && echo built outer) >"$OUT/build_outer.log" 2>&1 &
fi
if [ -n "${BWD_AB:-}" ]; then
  (BWD=1 PHASE=build bash benchmarks/device_monarch_ab.sh $BWD_AB >"$OUT/ab_build.log" 2>&1) &
fi
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
wait
tail -n 2 "$OUT/build.log"
if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  tail -n 1 "$OUT/build_outer.log"
  san=(compute-sanitizer --tool memcheck --error-exitcode 1)
  run_left selftests.log "${san[@]}" $b/monarch_selftest --small
  run_left selftests.log "${san[@]}" $b/monarch_bwd_selftest --small
  IFS=';' read -ra race_rows <<<"${RACE_ROWS:-bf16 N256 full;bf16 N4096 full;bf16 N32768 full}"
  for r in "${race_rows[@]}"; do
    run_left selftests.log compute-sanitizer --tool racecheck --error-exitcode 1 $b/monarch_selftest --only "$r"
  done
  IFS=';' read -ra race_rows <<<"${BWD_RACE_ROWS:-bf16 N32768 full gated}"
  for r in "${race_rows[@]}"; do
    run_left selftests.log compute-sanitizer --tool racecheck --error-exitcode 1 $b/monarch_bwd_selftest --only "$r"
  done
  [ "${OUTER:-1}" = 1 ] && run_left selftests.log $b/outer_selftest --quick
  grep -h "ALL PASS\|FAIL\|ERROR SUMMARY\|RACECHECK SUMMARY\|^built" "$OUT/selftests.log"
fi

if [ -n "${BWD_AB:-}" ]; then
  BWD=1 PHASE=run ONLY="${BWD_AB_ROWS:-T bf16 N16384 L=N;T bf16 N32768 L=N;T fp16 N32768}" \
    DEADLINE=$(( ${BWD_AB_SECONDS:-150} < deadline - (SECONDS - start) ? ${BWD_AB_SECONDS:-150} : deadline - (SECONDS - start) )) \
    bash benchmarks/device_monarch_ab.sh $BWD_AB >"$OUT/ab.log" 2>&1
  tail -n 40 "$OUT/ab.log"
  IFS=';' read -ra race_rows <<<"${BWD_AB_RACE:-}"
  for r in "${race_rows[@]}"; do
    run_left ab_race.log compute-sanitizer --tool racecheck --error-exitcode 1 build/selftests/monarch_ab_bwd_1 --small --only "$r"
  done
  [ -n "${BWD_AB_RACE:-}" ] && grep -h "PASS\|FAIL\|RACECHECK SUMMARY\|exit" "$OUT/ab_race.log"
fi

export JFF_BENCH_DEVICE_TIMING=1
# TABLE=0: no table (steps 1-3, then the GPU tests: a check of a changed default).
[ "${TABLE:-1}" = 1 ] && run_left bench.log python3 benchmarks/bench_fftconv.py --target-s 0.2 --out "$OUT" --no-plot \
  --name fftconv
# STEP=1: training steps beside fwd+bwd (y live; results/<device>-fftconv-step.json), L = N.
if [ "${STEP:-0}" = 1 ]; then
  run_left bench.log python3 benchmarks/bench_fftconv.py --modes fwd+bwd,step --cases full --target-s 0.2 --out "$OUT" \
    --no-plot --name fftconv-step
fi
# BLH=1: the same table with BLH activations (results/<device>-fftconv-blh.json), right after the BHL one in the same
# process environment, so the "BLH within 1.15x of BHL" bar is read side by side, device-side.
if [ "${BLH:-0}" = 1 ]; then
  run_left bench.log python3 benchmarks/bench_fftconv.py --layout BLH --target-s 0.2 --out "$OUT" --no-plot \
    --name fftconv-blh
fi
[ -f "$OUT/bench.log" ] && tail -n 30 "$OUT/bench.log"
if [ -n "${SLOT_AB:-}" ]; then
  IFS=';' read -ra slot_rows <<<"$SLOT_AB"
  for cap in ${SLOT_CAPS:-64 320 1024}; do
    echo "## JFF_MONARCH_BWD_SLOT_CAP_MB=$cap" >>"$OUT/slot_ab.log"
    for r in "${slot_rows[@]}"; do
      run_left slot_ab.log env JFF_MONARCH_BWD_SLOT_CAP_MB=$cap $b/monarch_bwd_selftest --only "$r"
    done
  done
  grep -h "^## \|^T \|exit" "$OUT/slot_ab.log"
fi
[ "${SKIP_CHECKS:-0}" = 1 ] && [ "${TESTS:-0}" != 1 ] && exit 0
gpu_tests "fftconv and not long"
[ "${SKIP_CHECKS:-0}" = 1 ] && { grep -h "passed\|failed\|error" "$OUT/test.log" | tail -n 4; exit 0; }
gpu_tests long
grep -h "passed\|failed\|error" "$OUT/test.log" | tail -n 4
