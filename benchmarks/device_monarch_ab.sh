#!/usr/bin/env bash
# A/B of a compile-time setting of the fused forward (or, with BWD=1, the backward), from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_monarch_ab.sh -DNAME=A -DNAME=B ...
#   OUT=/some/dir BWD=1 ONLY="T bf16 N8192" bash benchmarks/device_monarch_ab.sh -DJFF_BWD_SHARED_ACC_MAX_N=4096 \
#       -DJFF_BWD_SHARED_ACC_MAX_N=8192
#
# Builds monarch_selftest (BWD=1: monarch_bwd_selftest) once per flag (for the code as it is, pass a define
# nothing reads, e.g. -DJFF_AB_BASELINE). SMALL=1 first runs each build's small correctness cases (float64
# checks, poison, determinism; the forward's include BLH). Then each build's timed rows matching each of ONLY
# (';'-separated substrings, default "T bf16": the issue-3 workload, with its correctness checks) twice,
# interleaved (A B A B), so that drift between runs shows.
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
if [ "${SMALL:-0}" = 1 ]; then
  i=0
  for flag in "$@"; do
    run_left "small_$i.log" timeout 120 build/selftests/monarch_ab_$i --small
    echo "$flag: $(grep -c ' PASS$' "$OUT/small_$i.log") PASS, $(grep -c ' FAIL$' "$OUT/small_$i.log") FAIL, $(tail -n 1 "$OUT/small_$i.log")"
    i=$((i + 1))
  done
fi
IFS=';' read -ra rows <<<"${ONLY:-T bf16}"
for round in 1 2; do
  i=0
  for flag in "$@"; do
    echo "### $flag (round $round)" >>"$OUT/ab.log"
    for r in "${rows[@]}"; do
      run_left ab.log build/selftests/monarch_ab_$i --only "$r"
    done
    i=$((i + 1))
  done
done
grep -h "###\|^T \|^  BLH T \|ALL PASS\|FAIL" "$OUT/ab.log"
