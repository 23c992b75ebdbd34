#!/usr/bin/env bash
# A/B of a compile-time setting of the fused forward (BWD=1: the backward; DW=1: the depthwise kernels), from
# the repository root:
#
#   OUT=/some/dir bash benchmarks/device_monarch_ab.sh -DNAME=A -DNAME=B ...
#   OUT=/some/dir BWD=1 ONLY="T bf16 N8192" bash benchmarks/device_monarch_ab.sh -DJFF_BWD_SHARED_ACC_MAX_N=4096 \
#       -DJFF_BWD_SHARED_ACC_MAX_N=8192
#   OUT=/some/dir DW=1 bash benchmarks/device_monarch_ab.sh -DJFF_AB_BASELINE -DJFF_DW_SOMETHING=1
#
# Builds monarch_selftest (BWD=1: monarch_bwd_selftest; DW=1: dw_selftest) once per argument (for the code as
# it is, pass a define nothing reads, e.g. -DJFF_AB_BASELINE; several defines for one build: comma-separated,
# -DA=1,-DB=2). SMALL=1 first runs each build's small correctness cases (float64 checks, poison, determinism;
# the forward's include BLH). Then each build's timed runs twice, interleaved (A B A B), so that drift between
# runs shows: for the fused kernels the rows matching each of ONLY (';'-separated substrings, default "T bf16":
# the issue-3 workload, with its correctness checks; the backward's second round --time-only), for the depthwise
# kernels dw_selftest RUN_ARGS (default --pdl-bench: back-to-back call streams, as a jitted program issues them).
# CHECKS=0 times the backward's first round without the float64 checks too. PHASE=build only builds, PHASE=run
# only runs (the same arguments), so that one device call can build several targets' variants at once.
# ENVS=';'-separated environment settings (e.g. "JFF_MONARCH_FWD_STAGE=0;JFF_MONARCH_FWD_STAGE=1"): each build's
# timed runs go once under each, interleaved too (run-time switches A/B'd inside one build).
source "$(dirname "$0")/device_lib.sh"

if [ "${DW:-0}" = 1 ]; then
  sources=(cuda/depthwise/depthwise_selftest.cu cuda/depthwise/depthwise_kernels.cu)
  tag=dw
elif [ "${BWD:-0}" = 1 ]; then
  sources=(cuda/fftconv/monarch_bwd_selftest.cu cuda/fftconv/monarch_bwd.cu)
  tag=bwd
else
  sources=(cuda/fftconv/monarch_selftest.cu cuda/fftconv/monarch_fwd.cu)
  tag=fwd
fi
bin=build/selftests/monarch_ab_$tag
if [ "${PHASE:-all}" != run ]; then
  i=0
  for flag in "$@"; do
    IFS=',' read -ra defs <<<"$flag"
    "${nv[@]}" "${defs[@]}" -o ${bin}_$i "${sources[@]}" >"$OUT/build_${tag}_$i.log" 2>&1 &
    i=$((i + 1))
  done
  wait
  i=0
  for flag in "$@"; do
    [ -x ${bin}_$i ] || { echo "build failed: $flag"; tail -n 5 "$OUT/build_${tag}_$i.log"; }
    i=$((i + 1))
  done
fi
[ "${PHASE:-all}" = build ] && exit 0
if [ "${SMALL:-0}" = 1 ]; then
  i=0
  for flag in "$@"; do
    run_left "small_${tag}_$i.log" timeout 120 ${bin}_$i --small
    echo "$tag $flag: $(grep -c ' PASS$' "$OUT/small_${tag}_$i.log") PASS, $(grep -c ' FAIL$' "$OUT/small_${tag}_$i.log") FAIL, $(tail -n 1 "$OUT/small_${tag}_$i.log")"
    i=$((i + 1))
  done
fi
if [ "$tag" = dw ]; then
  read -ra run_args <<<"${RUN_ARGS:---pdl-bench}"
  runs=("${run_args[*]}")
else
  IFS=';' read -ra runs <<<"${ONLY:-T bf16}"
fi
for round in 1 2; do
  i=0
  for flag in "$@"; do
    IFS=';' read -ra envs <<<"${ENVS:-}"
    [ ${#envs[@]} -gt 0 ] || envs=("")
    for e in "${envs[@]}"; do
      echo "### $tag $flag $e (round $round)" >>"$OUT/ab_$tag.log"
      read -ra eargs <<<"$e"
      for r in "${runs[@]}"; do
        if [ "$tag" = dw ]; then
          read -ra args <<<"$r"
          run_left ab_$tag.log env "${eargs[@]}" ${bin}_$i "${args[@]}"
        else
          # The backward's second round without the float64 checks (the first round checked the same build);
          # CHECKS=0: both rounds without them (SMALL=1 checks each build instead).
          timing=()
          [ "$tag" = bwd ] && { [ "$round" = 2 ] || [ "${CHECKS:-1}" = 0 ]; } && timing=(--time-only)
          run_left ab_$tag.log env "${eargs[@]}" ${bin}_$i --only "$r" "${timing[@]}"
        fi
      done
    done
    i=$((i + 1))
  done
done
grep -h "###\|^T \|^  BLH T \|^BHL \|^BLH \|ALL PASS\|FAIL" "$OUT/ab_$tag.log"
