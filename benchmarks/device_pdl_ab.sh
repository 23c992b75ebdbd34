#!/usr/bin/env bash
# Programmatic dependent launch of the fused fftconv kernels, checked and timed in one device call, from the
# repository root:
#
#   OUT=/some/dir bash benchmarks/device_pdl_ab.sh
#
# 1. the package, with both fused self-tests compiled alongside;
# 2. both self-tests' --small cases (float64 checks, poisoned outputs, determinism) and the GPU tests
#    -k "fftconv and not long" under PDL_MODE (default main: JFF_FFTCONV_PDL=main, the main kernels launched with
#    the attribute, waiting for the k-spectrum pre-kernel only where they first read K');
# 3. bench_fftconv at SIZES (default 1024,4096,16384), MODES (default fwd,fwd+bwd), both cases, device-side, no
#    accuracy check, once per setting of JFF_FFTCONV_PDL in SETTINGS (default "0 main"), ROUNDS (default 2)
#    interleaved rounds, into ab.log.
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
("${nv[@]}" -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  "${nv[@]}" -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu &&
  echo built self-tests) >"$OUT/selftests.log" 2>&1 &
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1
wait
tail -n 2 "$OUT/build.log"
mode=${PDL_MODE:-main}
run_left selftests.log env JFF_FFTCONV_PDL="$mode" $b/monarch_selftest --small
run_left selftests.log env JFF_FFTCONV_PDL="$mode" $b/monarch_bwd_selftest --small
grep -h "ALL PASS\|FAIL\|^built\|exit" "$OUT/selftests.log"
(export JFF_FFTCONV_PDL="$mode"; gpu_tests "fftconv and not long")
grep -h "passed\|failed\|error" "$OUT/test.log" | tail -n 3

export JFF_BENCH_DEVICE_TIMING=1
for round in $(seq "${ROUNDS:-2}"); do
  for s in ${SETTINGS:-0 main}; do
    echo "## round $round: JFF_FFTCONV_PDL=$s" >>"$OUT/ab.log"
    run_left ab.log env JFF_FFTCONV_PDL="$s" python3 benchmarks/bench_fftconv.py --modes "${MODES:-fwd,fwd+bwd}" \
      --no-accuracy --no-save --target-s 0.2 --sizes "${SIZES:-1024,4096,16384}"
  done
done
grep -hE "^## |^fwd|exit" "$OUT/ab.log"
