#!/usr/bin/env bash
# A/B of a compile-time setting of the fused forward (or, with BWD=1, the backward), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_monarch_ab.sh -DNAME=A -DNAME=B ...
#   OUT=/some/dir BWD=1 ONLY="T bf16 N8192" bash benchmarks/device_monarch_ab.sh -DJFF_BWD_SHARED_ACC_MAX_N=4096 \
#       -DJFF_BWD_SHARED_ACC_MAX_N=8192
#
# Builds monarch_selftest (BWD=1: monarch_bwd_selftest) once per flag and runs each build's timed rows matching
# ONLY (default "T bf16": the issue-3 workload, with its correctness checks) twice, interleaved (A B A B), so that
# drift between runs shows.
source "$(dirname "$0")/device_lib.sh"

if [ "${BWD:-0}" = 1 ]; then
  sources=(cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu)
else
  sources=(cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu)
fi
i=0
for flag in "$@"; do
  "${nv[@]}" "$flag" -o build/selftests/monarch_ab_$i "${sources[@]}" >"$OUT/build_$i.log" 2>&1 &
  i=$((i + 1))
done
wait
for round in 1 2; do
  i=0
  for flag in "$@"; do
    echo "### $flag (round $round)" >>"$OUT/ab.log"
    run_left ab.log build/selftests/monarch_ab_$i --only "${ONLY:-T bf16}"
    i=$((i + 1))
  done
done
grep -h "###\|^T \|^  BLH T \|ALL PASS\|FAIL" "$OUT/ab.log"
