#!/usr/bin/env bash
# A/B of a compile-time setting of the fused forward, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_monarch_ab.sh -DNAME=A -DNAME=B ...
#
# Builds monarch_selftest once per flag and runs each build's timed bf16 table (issue-3 workload, with its
# correctness checks) twice, interleaved (A B A B), so that drift between runs shows.
source "$(dirname "$0")/device_lib.sh"

i=0
for flag in "$@"; do
  "${nv[@]}" "$flag" -o build/selftests/monarch_ab_$i cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu \
    >"$OUT/build_$i.log" 2>&1 &
  i=$((i + 1))
done
wait
for round in 1 2; do
  i=0
  for flag in "$@"; do
    echo "### $flag (round $round)" >>"$OUT/ab.log"
    run_left ab.log build/selftests/monarch_ab_$i --only "T bf16"
    i=$((i + 1))
  done
done
grep -h "###\|T bf16\|ALL PASS\|FAIL" "$OUT/ab.log"
