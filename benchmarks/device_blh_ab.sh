#!/usr/bin/env bash
# A/B of a compile-time switch of the BLH forward in one device call, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_blh_ab.sh -DJFF_BLH_BUFS=1
#
# Builds monarch_selftest as is (A) and with the given flags (B); runs the BLH small cases of both (each case
# also checks BLH against float64 and BHL), then the timed rows at AB_SIZES (default 256 4096 8192) twice,
# interleaved A B A B.
source "$(dirname "$0")/device_lib.sh"

b=build/selftests
("${nv[@]}" -o $b/monarch_selftest_a cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  echo built A) >"$OUT/build_a.log" 2>&1 &
("${nv[@]}" "$@" -o $b/monarch_selftest_b cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu &&
  echo built B "$@") >"$OUT/build_b.log" 2>&1 &
wait
grep -h "^built\|error" "$OUT"/build_*.log
for v in a b; do
  run_left "small_$v.log" timeout 90 $b/monarch_selftest_$v --small
  echo "$v: $(grep -c PASS "$OUT/small_$v.log") PASS, $(grep -c FAIL "$OUT/small_$v.log") FAIL, $(tail -n 1 "$OUT/small_$v.log")"
done
for round in 1 2; do
  for v in a b; do
    for n in ${AB_SIZES:-256 4096 8192}; do
      run_left "t_$v.log" timeout 60 $b/monarch_selftest_$v --only "T bf16 N$n L=N"
    done
  done
done
for v in a b; do
  echo "== $v"
  grep -h "^T \|exit" "$OUT/t_$v.log"
done
