#!/usr/bin/env bash
# A/B of compile-time settings of the depthwise kernels, from the repository root:
#
#   OUT=/some/dir bash benchmarks/device_depthwise_ab.sh -DJFF_AB_BASELINE \
#       -DJFF_DW_K7_BHL_FWD_UNROLL=2,-DJFF_DW_K7_BHL_FWD_MIN_BLOCKS=4
#
# Builds dw_selftest once per argument (several defines for one build: comma-separated; for the code as it is,
# a define nothing reads), then runs each build's RUN_ARGS (default --pdl-bench: back-to-back call streams, as a
# jitted program issues them) twice, interleaved (A B A B), so that drift between runs shows. SMALL=1 first
# runs each build's --small checks. PHASE=build only builds, PHASE=run only runs (same arguments).
source "$(dirname "$0")/device_lib.sh"

bin=build/selftests/dw_ab
if [ "${PHASE:-all}" != run ]; then
  i=0
  for flag in "$@"; do
    IFS=',' read -ra defs <<<"$flag"
    "${nv[@]}" "${defs[@]}" -o ${bin}_$i cuda/depthwise/depthwise_selftest.cu cuda/depthwise/depthwise_kernels.cu \
      >"$OUT/build_dw_$i.log" 2>&1 &
    i=$((i + 1))
  done
  wait
  i=0
  for flag in "$@"; do
    [ -x ${bin}_$i ] || { echo "build failed: $flag"; tail -n 5 "$OUT/build_dw_$i.log"; }
    rm -f "$OUT/build_dw_$i.log"
    i=$((i + 1))
  done
fi
[ "${PHASE:-all}" = build ] && exit 0
if [ "${SMALL:-0}" = 1 ]; then
  i=0
  for flag in "$@"; do
    run_left small_dw.log ${bin}_$i --small
    echo "$flag: $(grep 'correctness:' "$OUT/small_dw.log" | tail -n 1)"
    i=$((i + 1))
  done
fi
read -ra run_args <<<"${RUN_ARGS:---pdl-bench}"
for round in 1 2; do
  i=0
  for flag in "$@"; do
    echo "### $flag (round $round)" >>"$OUT/ab_dw.log"
    run_left ab_dw.log ${bin}_$i "${run_args[@]}"
    i=$((i + 1))
  done
done
grep -h "^###\|^BHL\|^BLH" "$OUT/ab_dw.log" | grep "###\| 7 " 
