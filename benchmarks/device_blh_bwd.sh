#!/usr/bin/env bash
# First GPU run of the native BLH backward (monarch_bwd_blh_kernel, enabled by JFF_MONARCH_BLH_BWD=1 until
# verified), in one device call, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_blh_bwd.sh
#
# Builds monarch_bwd_selftest with the forward (-DJFF_WITH_FWD); with JFF_MONARCH_BLH_BWD=1 runs its small
# cases (each in BHL and in BLH on the same data: float64 checks, poison, determinism), the same under
# compute-sanitizer memcheck, racecheck on one one-CTA tile case and one cluster case, then the timed table
# (B=64 H=768 bf16 gated: BHL rows and BLH rows, forward and backward).
source "$(dirname "$0")/device_lib.sh"
export JFF_MONARCH_BLH_BWD=1

b=build/selftests
("${nv[@]}" -lineinfo -DJFF_WITH_FWD -o $b/monarch_bwd_selftest cuda/fftconv/monarch_bwd_selftest.cu \
  cuda/fftconv/monarch_bwd.cu cuda/fftconv/monarch_fwd.cu && echo built monarch_bwd_selftest) >"$OUT/build.log" 2>&1
grep -h "^built\| error" "$OUT/build.log"
run_left small.log timeout 120 $b/monarch_bwd_selftest --small
grep -h "PASS\|FAIL\|exit" "$OUT/small.log" | tail -n 70
san=(compute-sanitizer --error-exitcode 1)
run_left sanitizer.log timeout 150 "${san[@]}" --tool memcheck $b/monarch_bwd_selftest --small
run_left sanitizer.log timeout 60 "${san[@]}" --tool racecheck $b/monarch_bwd_selftest --small --only "N1024 B4 H64"
run_left sanitizer.log timeout 90 "${san[@]}" --tool racecheck $b/monarch_bwd_selftest --small --only "N4096 B2 H16"
grep -h "ALL PASS\|SOME FAILED\|ERROR SUMMARY\|RACECHECK SUMMARY\|exit" "$OUT/sanitizer.log"
run_left table.log timeout 200 $b/monarch_bwd_selftest --only "T "
grep -h "^T \|^  BLH T \|exit" "$OUT/table.log"
