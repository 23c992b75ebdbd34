#!/usr/bin/env bash
# The native BLH backward of the fused kernels (monarch_bwd_blh_kernel) in one device call, from the
# repository root:
#
#   OUT=/some/dir bash benchmarks/device_blh_bwd.sh
#
# Builds monarch_selftest, monarch_bwd_selftest (with the forward, -DJFF_WITH_FWD) and the package in parallel.
# 1. monarch_selftest --small and the same under compute-sanitizer memcheck (the forward's BLH cases);
# 2. monarch_bwd_selftest --small (every case in BHL and in BLH on the same data: float64 checks, poison,
#    determinism); SANITIZE_BWD=1 adds memcheck on it and racecheck on a one-CTA tile case and a cluster case;
# 3. its timed table (B=64 H=768 bf16 gated: BHL and BLH rows, forward and backward; SKIP_TABLE=1 leaves it out);
# 4. the GPU tests -k "fftconv and not long" (the package's BLH gradients: BHL kernels + XLA transposes);
# 5. bench_fftconv --layout BLH (issue 3's BLH table, forward and forward+backward; SKIP_BENCH=1 leaves it out;
#    the package reads JFF_MONARCH_BLH_BWD too, but Python never asks it for a BLH backward).
source "$(dirname "$0")/device_lib.sh"
export JFF_MONARCH_BLH_BWD=1  # the BLH backward runs only with it (slower than BHL + XLA transposes)

b=build/selftests
("${nv[@]}" -lineinfo -o $b/monarch_selftest cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  echo built monarch_selftest) >"$OUT/build_fwd.log" 2>&1 &
fwd_build=$!
("${nv[@]}" -lineinfo -DJFF_WITH_FWD -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu \
  cuda/fftconv/monarch_bwd.cu cuda/fftconv/monarch_fwd.cu && echo built monarch_bwd_selftest) >"$OUT/build_bwd.log" 2>&1 &
bwd_build=$!
bash benchmarks/device_run.sh build >"$OUT/build.log" 2>&1 &
package_build=$!
san=(compute-sanitizer --error-exitcode 1)

wait $fwd_build
grep -h "^built\| error" "$OUT/build_fwd.log"
run_left fwd.log timeout 90 $b/monarch_selftest --small
run_left fwd.log timeout 150 "${san[@]}" --tool memcheck $b/monarch_selftest --small
grep -h "ALL PASS\|SOME FAILED\|FAIL\|ERROR SUMMARY\|exit" "$OUT/fwd.log"

wait $bwd_build
grep -h "^built\| error" "$OUT/build_bwd.log"
run_left bwd.log timeout 120 $b/monarch_bwd_selftest --small
grep -h "FAIL\|ALL PASS\|SOME FAILED\|exit" "$OUT/bwd.log"
if [ "${SANITIZE_BWD:-0}" = 1 ]; then
  run_left bwd.log timeout 150 "${san[@]}" --tool memcheck $b/monarch_bwd_selftest --small
  run_left bwd.log timeout 60 "${san[@]}" --tool racecheck $b/monarch_bwd_selftest --small --only "N1024 B4 H64"
  run_left bwd.log timeout 90 "${san[@]}" --tool racecheck $b/monarch_bwd_selftest --small --only "N4096 B2 H16"
  grep -h "ERROR SUMMARY\|RACECHECK SUMMARY" "$OUT/bwd.log"
fi
if [ "${SKIP_TABLE:-0}" != 1 ]; then
  run_left table.log timeout 200 $b/monarch_bwd_selftest --only "T "
  grep -h "^T \|^  BLH T \|copy\|exit" "$OUT/table.log"
fi

wait $package_build
tail -n 2 "$OUT/build.log"
(cd tests && run_left test.log python3 -m pytest -p no:cacheprovider -q -rfE -m gpu -k "fftconv and not long")
grep -h "passed\|failed\|error" "$OUT/test.log" | tail -n 6
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  run_left bench.log python3 benchmarks/bench_fftconv.py --layout BLH --target-s 0.2 --out "$OUT" --no-plot --name fftconv-blh
  tail -n 30 "$OUT/bench.log"
fi
