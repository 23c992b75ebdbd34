#!/usr/bin/env bash
# Issue 5's measurement in one device call (about 9 minutes on an H200), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_long.sh
#
# 1. the package build (device_run.sh build; incremental when the package was built before in this call) and,
#    alongside it, the long path's two self-tests compiled (SKIP_SELFTESTS=1 leaves out step 1's compile and step 2);
# 2. the self-tests: long_bwd_selftest's default set, outer_selftest --quick, then both --bench (kernel timings);
# 3. bench_fftconv's long table, first part (64K..2M, peak memory), then the 4M H=384 part (with 2M at H=384 too on
#    a GPU under 100 GB), the causal part, then the GPU tests `-k long`. Every step after the build gets what is
#    left of DEADLINE seconds (default 560) and is skipped when under 20 s are left, so the call ends inside the
#    device's 10-minute limit.
# TESTS_K="expr" selects the GPU tests (default "long"); TESTS=0 leaves them out; TESTS_FIRST=1 runs them right after
# the build and the self-tests, before the tables (a launch change checked before the time runs out).
# The tables are timed device-side (DESIGN.md section 4: JFF_BENCH_DEVICE_TIMING=1, the wall-clock median beside it;
# JFF_BENCH_DEVICE_TIMING=0 for wall clock, as the long rows were measured up to session 26).
# STEP=1 adds training-step rows (bench_fftconv --modes step) at 64K..2M and 4M H=384 (fftconv-long-step.json and
# fftconv-long-step-4m-h384.json; summary.txt then goes into build.log, test.log into bench.log).
# SELFTEST_BENCH=0 leaves the self-tests' kernel benches (--bench) out of step 2.
# SANITIZE_BWD="racecheck memcheck" runs those tools on long_bwd_selftest --quick right after the self-tests,
# SANITIZE_OUTER="racecheck" on outer_selftest --quick.
# MEMCHECK=1 adds compute-sanitizer memcheck of `outer_selftest --quick` and `long_bwd_selftest --quick` at the end.
# Files under $OUT (8 at most): summary.txt build.log selftests.log bench.log test.log and the three JSON parts
# (merge them with benchmarks/merge_results.py --floor-bandwidth max).
# BWD_ONLY=1: a short call after a backward-only change: the package build with long_bwd_selftest and outer_selftest
# alongside, long_bwd --quick, outer --quick, the SANITIZE_BWD tools, long_bwd --bench (BWD_AB="defines": a variant's
# bench, then the default's again), then the fwd+bwd rows alone (64K..2M, 4M H=384, causal; no peak memory, no GPU
# tests unless BWD_TESTS="expr" selects some): fftconv-long-fwdbwd.json, fftconv-long-fwdbwd-4m-h384.json,
# fftconv-long-fwdbwd-causal.json (BWD_ROWS=0 leaves those rows out).
source "$(dirname "$0")/device_lib.sh"
export JFF_BENCH_DEVICE_TIMING=${JFF_BENCH_DEVICE_TIMING:-1}

if [ "${BWD_ONLY:-0}" = 1 ]; then
  "${nv[@]}" -o build/selftests/long_bwd_selftest cuda/fftconv_long/long_bwd_selftest.cu >"$OUT/selftests.log" 2>&1 &
  compile=$!
  # The outer passes' self-test too (--quick below): a backward change may touch them.
  "${nv[@]}" -o build/selftests/outer_selftest cuda/fftconv_long/outer_selftest.cu >"$OUT/build_outer.log" 2>&1 &
  compile_outer=$!
  # BWD_AB="-DX=0 ...": a variant of long_bwd_selftest, benched after the default build for an A/B.
  if [ -n "${BWD_AB:-}" ]; then
    # shellcheck disable=SC2086  # the variant's defines are separate words
    "${nv[@]}" $BWD_AB -o build/selftests/long_bwd_selftest_ab cuda/fftconv_long/long_bwd_selftest.cu \
      >"$OUT/build_ab.log" 2>&1 &
    compile_ab=$!
  fi
  bash benchmarks/device_run.sh build >/dev/null
  wait "$compile" || echo "self-test compile failed" | tee -a "$OUT/selftests.log"
  wait "$compile_outer" || echo "outer self-test compile failed" | tee -a "$OUT/selftests.log"
  cat "$OUT/build_outer.log" >>"$OUT/selftests.log" && rm -f "$OUT/build_outer.log"
  run_left selftests.log build/selftests/long_bwd_selftest --quick
  run_left selftests.log build/selftests/outer_selftest --quick
  for tool in ${SANITIZE_BWD:-}; do
    run_left selftests.log compute-sanitizer --tool "$tool" --error-exitcode 3 build/selftests/long_bwd_selftest --quick
  done
  # BWD_CHUNKS=1: the bench also times smaller chunks of batch entries (long_bwd_selftest --bench-chunks).
  run_left selftests.log build/selftests/long_bwd_selftest --bench ${BWD_CHUNKS:+--bench-chunks}
  if [ -n "${BWD_AB:-}" ]; then
    wait "$compile_ab" || echo "variant compile failed" | tee -a "$OUT/selftests.log"
    cat "$OUT/build_ab.log" >>"$OUT/selftests.log" && rm -f "$OUT/build_ab.log"
    echo "--- variant $BWD_AB" >>"$OUT/selftests.log"
    run_left selftests.log build/selftests/long_bwd_selftest_ab --bench
    echo "--- default again" >>"$OUT/selftests.log"
    run_left selftests.log build/selftests/long_bwd_selftest --bench
  fi
  grep -hE "ALL PASS|FAIL|ERROR SUMMARY|RACECHECK SUMMARY|^--- |^bwd |^    " "$OUT/selftests.log"
  # BWD_ROWS=0 leaves the fwd+bwd rows out (a later call runs the whole table).
  if [ "${BWD_ROWS:-1}" = 1 ]; then
    bench=(python3 benchmarks/bench_fftconv.py --target-s 0.5 --scale-to-batch 64 --out "$OUT" --no-plot --modes fwd+bwd)
    run_left bench.log "${bench[@]}" --sizes 64K,256K,1M,2M --batch-for 64K=16,256K=4,1M=2,2M=1 --cases full \
      --name fftconv-long-fwdbwd
    run_left bench.log "${bench[@]}" --sizes 4M --heads 384 --batch 1 --cases full --name fftconv-long-fwdbwd-4m-h384
    run_left bench.log "${bench[@]}" --sizes 64K,1M --batch-for 64K=16,1M=2 --cases causal --name fftconv-long-fwdbwd-causal
    grep -hE "^fwd\+bwd " "$OUT/bench.log"
  fi
  # BWD_TESTS="expr": then the GPU tests -m gpu -k "expr" in what time is left (test.log).
  if [ -n "${BWD_TESTS:-}" ]; then
    gpu_tests "$BWD_TESTS"
    tail -n 3 "$OUT/test.log"
  fi
  exit 0
fi

if [ "${SKIP_SELFTESTS:-0}" != 1 ]; then
  ("${nv[@]}" -o build/selftests/outer_selftest cuda/fftconv_long/outer_selftest.cu &&
    "${nv[@]}" -o build/selftests/long_bwd_selftest cuda/fftconv_long/long_bwd_selftest.cu) >"$OUT/selftests.log" 2>&1 &
  compile=$!
fi
bash benchmarks/device_run.sh build >/dev/null
if [ "${SKIP_SELFTESTS:-0}" != 1 ]; then
  wait "$compile" || echo "self-test compile failed" | tee -a "$OUT/selftests.log"
  run_left selftests.log build/selftests/long_bwd_selftest
  run_left selftests.log build/selftests/outer_selftest --quick
  if [ "${SELFTEST_BENCH:-1}" = 1 ]; then
    run_left selftests.log build/selftests/outer_selftest --bench
    run_left selftests.log build/selftests/long_bwd_selftest --bench
  fi
  grep -h "ALL PASS\|FAIL" "$OUT/selftests.log"
  # SANITIZE_BWD="racecheck memcheck": those compute-sanitizer tools on long_bwd_selftest --quick, before the table;
  # SANITIZE_OUTER the same on outer_selftest --quick.
  for tool in ${SANITIZE_BWD:-}; do
    run_left selftests.log compute-sanitizer --tool "$tool" --error-exitcode 3 build/selftests/long_bwd_selftest --quick
  done
  for tool in ${SANITIZE_OUTER:-}; do
    run_left selftests.log compute-sanitizer --tool "$tool" --error-exitcode 3 build/selftests/outer_selftest --quick
  done
  [ -z "${SANITIZE_BWD:-}${SANITIZE_OUTER:-}" ] || grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/selftests.log"
fi

long_tests() {
  gpu_tests "${TESTS_K:-long}"
  tail -n 3 "$OUT/test.log"
}
[ "${TESTS:-1}" = 1 ] && [ "${TESTS_FIRST:-0}" = 1 ] && long_tests
bench=(python3 benchmarks/bench_fftconv.py --target-s 0.5 --scale-to-batch 64 --out "$OUT" --no-plot)
run_left bench.log "${bench[@]}" --sizes 64K,256K,1M,2M --batch-for 64K=16,256K=4,1M=2,2M=1 --cases full \
  --peak-memory --name fftconv-long
# H=384, B=1: 4M, and 2M too on a GPU under 100 GB (an H100: pure JAX's 2M forward+backward at H=768 does not fit).
h384_sizes=4M
mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -n 1)
[ -n "$mib" ] && [ "$mib" -lt 100000 ] && h384_sizes=2M,4M
run_left bench.log "${bench[@]}" --sizes "$h384_sizes" --heads 384 --batch 1 --cases full --peak-memory \
  --name fftconv-long-4m-h384
run_left bench.log "${bench[@]}" --sizes 64K,1M --batch-for 64K=16,1M=2 --cases causal --peak-memory \
  --name fftconv-long-causal
[ "${TESTS:-1}" = 1 ] && [ "${TESTS_FIRST:-0}" != 1 ] && long_tests
# STEP=1: training steps (y live, then the gradients: K' built once and shared) at 64K..2M, then 4M (H=384).
if [ "${STEP:-0}" = 1 ]; then
  run_left bench.log "${bench[@]}" --sizes 64K,256K,1M,2M --batch-for 64K=16,256K=4,1M=2,2M=1 --cases full \
    --modes step --name fftconv-long-step
  run_left bench.log "${bench[@]}" --sizes 4M --heads 384 --batch 1 --cases full --modes step \
    --name fftconv-long-step-4m-h384
  # the device returns 8 files at most
  cat "$OUT/summary.txt" >>"$OUT/build.log" && rm -f "$OUT/summary.txt"
  [ ! -f "$OUT/test.log" ] || { cat "$OUT/test.log" >>"$OUT/bench.log" && rm -f "$OUT/test.log"; }
fi
tail -n 40 "$OUT/bench.log"
# MEMCHECK=1: compute-sanitizer memcheck on both self-tests (--quick), in what time is left.
if [ "${MEMCHECK:-0}" = 1 ] && [ "${SKIP_SELFTESTS:-0}" != 1 ]; then
  run_left selftests.log compute-sanitizer --tool memcheck --error-exitcode 3 build/selftests/outer_selftest --quick
  run_left selftests.log compute-sanitizer --tool memcheck --error-exitcode 3 build/selftests/long_bwd_selftest --quick
  grep -h "ERROR SUMMARY\|ALL PASS\|FAIL" "$OUT/selftests.log" | tail -n 5
fi
