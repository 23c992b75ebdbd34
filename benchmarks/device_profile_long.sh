#!/usr/bin/env bash
# The long path's outer passes on a CUDA machine, from the repository root: A/B timing of compile-time
# variants, then Nsight Compute on the default build.
#
#   OUT=/some/dir AB="-DJFF_LONG_FWD_STAGE=1;-DJFF_LONG_INV_MINB=4 -DJFF_LONG_FWD_MINB=4" bash benchmarks/device_profile_long.sh
#   OLD_SRC=dir (a source tree with cuda/ in it) adds one more variant built from there, last.
#
# 1. outer_selftest built once per variant, all in parallel: the default (with -lineinfo) and one per
#    ';'-separated entry of AB (its defines space-separated);
# 2. per variant, `--quick` (correctness) and `--bench --bench-n N` for each N of BENCH_N (default 1M 4M),
#    round-robin over the variants, ROUNDS times (default 2);
#    INNER=1 runs the default build's --inner set once;
#    BWD_BENCH=1 also builds long_bwd_selftest per variant (OLD_SRC's last), runs the default build's self-test
#    once and each variant's --bench each round (BWD_ROUNDS, default ROUNDS); SANITIZE="racecheck ..." runs those
#    compute-sanitizer tools on the default build's outer_selftest --quick (and long_bwd_selftest --quick) first
#    (SANITIZE_VARIANT=i: on variant i's instead);
# 3. NCU=1 (default): ncu on one 1M bf16 launch of the tensor-core outer forward and of the inverse
#    (speed of light, occupancy, warp states, scheduler, memory tables, source counters), printed to ncu.log,
#    with per-SASS-line counters as CSV (ncu_sass_fwd.csv / ncu_sass_inv.csv); NCU_VARIANT=i profiles variant i
#    instead of the default build (e.g. 1 with AB="-DJFF_LONG_OUTER_PROBE=1": the passes' loads and stores
#    alone); NCU_BWD=1 (needs BWD_BENCH=1) the same for one 1M bf16 launch of the backward's
#    bwd_inner_tc_kernel (NCU_BWD_KERNEL: another kernel's name; ncu_sass_dk.csv).
# Files under $OUT: build.log, selftests.log, sanitize.log, ncu.log, the CSVs.
source "$(dirname "$0")/device_lib.sh"

IFS=';' read -r -a variants <<<"${AB:-}"
bins=(build/selftests/outer_selftest_v0)
("${nv[@]}" -lineinfo -o "${bins[0]}" cuda/fftconv_long/outer_selftest.cu >"$OUT/build.log" 2>&1 ||
  echo "build v0 failed" >>"$OUT/build.log") &
i=1
for v in "${variants[@]}"; do
  [ -n "$v" ] || continue
  b=build/selftests/outer_selftest_v$i
  bins+=("$b")
  # shellcheck disable=SC2086  # the variant's defines are separate words
  ("${nv[@]}" $v -o "$b" cuda/fftconv_long/outer_selftest.cu >"$OUT/build_v$i.log" 2>&1 ||
    echo "build v$i ($v) failed" >>"$OUT/build_v$i.log") &
  i=$((i + 1))
done
if [ -n "${OLD_SRC:-}" ]; then  # a baseline from another source tree (e.g. `git archive REV cuda | tar -x -C DIR`)
  b=build/selftests/outer_selftest_v$i
  bins+=("$b")
  # Built from inside that tree, so that its -Icuda (nv's) finds its own headers.
  (cd "$OLD_SRC" && "${nv[@]}" -o "$OLDPWD/$b" cuda/fftconv_long/outer_selftest.cu >"$OUT/build_v$i.log" 2>&1 ||
    echo "build v$i ($OLD_SRC) failed" >>"$OUT/build_v$i.log") &
fi
if [ "${BWD_BENCH:-0}" = 1 ]; then  # the backward's kernel bench per variant too (the Y2 inverse runs only there)
  j=0
  for v in "" "${variants[@]}"; do
    [ $j = 0 ] || [ -n "$v" ] || continue
    # shellcheck disable=SC2086
    ("${nv[@]}" $v -o "build/selftests/long_bwd_selftest_v$j" cuda/fftconv_long/long_bwd_selftest.cu \
      >"$OUT/build_bwd_v$j.log" 2>&1 || echo "build bwd v$j ($v) failed" >>"$OUT/build_bwd_v$j.log") &
    j=$((j + 1))
  done
  if [ -n "${OLD_SRC:-}" ]; then  # the baseline tree's backward too, last
    (cd "$OLD_SRC" && "${nv[@]}" -o "$OLDPWD/build/selftests/long_bwd_selftest_v$j" cuda/fftconv_long/long_bwd_selftest.cu \
      >"$OUT/build_bwd_v$j.log" 2>&1 || echo "build bwd v$j ($OLD_SRC) failed" >>"$OUT/build_bwd_v$j.log") &
  fi
fi
wait
cat "$OUT"/build_bwd_v*.log >>"$OUT/build.log" 2>/dev/null
rm -f "$OUT"/build_bwd_v*.log
cat "$OUT"/build_v*.log >>"$OUT/build.log" 2>/dev/null
rm -f "$OUT"/build_v*.log
echo "variants: v0 = default; ${AB:-}; ${OLD_SRC:+last: $OLD_SRC}" | tee -a "$OUT/selftests.log"

for idx in "${!bins[@]}"; do
  echo "--- v$idx quick" >>"$OUT/selftests.log"
  run_left selftests.log "${bins[$idx]}" --quick
  tail -n 1 "$OUT/selftests.log"
done
# INNER=1: the default build's whole inner set (--inner: the filter slices, inner step and pipeline at every
# inner size, including the two-level outer sizes N1 = 256 / 512) once.
if [ "${INNER:-0}" = 1 ]; then
  echo "--- v0 inner" >>"$OUT/selftests.log"
  run_left selftests.log "${bins[0]}" --inner
  tail -n 1 "$OUT/selftests.log"
fi
# The default build's correctness beyond --quick: the backward's self-test (BWD_BENCH=1 builds it) and
# compute-sanitizer tools (SANITIZE="racecheck memcheck") on outer_selftest --quick.
if [ "${BWD_BENCH:-0}" = 1 ]; then
  run_left selftests.log build/selftests/long_bwd_selftest_v0
  tail -n 1 "$OUT/selftests.log"
fi
sv=${SANITIZE_VARIANT:-0}  # the build the tools run on (a variant's index; default the default build)
for tool in ${SANITIZE:-}; do
  run_left sanitize.log compute-sanitizer --tool "$tool" --error-exitcode 3 "${bins[$sv]}" --quick
  if [ "${BWD_BENCH:-0}" = 1 ]; then  # the two-output inverse runs only in the backward
    run_left sanitize.log compute-sanitizer --tool "$tool" --error-exitcode 3 "build/selftests/long_bwd_selftest_v$sv" --quick
  fi
  grep -hE "^=== |ERROR SUMMARY|RACECHECK SUMMARY|ALL PASS|FAIL|exit " "$OUT/sanitize.log" | tail -n 8
done
for round in $(seq "${ROUNDS:-2}"); do
  for n in ${BENCH_N:-1048576 4194304}; do
    for idx in "${!bins[@]}"; do
      echo "--- round $round v$idx N=$n" >>"$OUT/selftests.log"
      run_left selftests.log "${bins[$idx]}" --bench --bench-n "$n"
    done
  done
done
if [ "${BWD_BENCH:-0}" = 1 ]; then
  for round in $(seq "${BWD_ROUNDS:-${ROUNDS:-2}}"); do
    for b in build/selftests/long_bwd_selftest_v*; do
      echo "--- bwd round $round ${b##*_}" >>"$OUT/selftests.log"
      run_left selftests.log "$b" --bench
    done
  done
fi
grep -hE "^--- |fwd .* ms|inner .* ms|^bwd |du/dpre|dpost" "$OUT/selftests.log"

sections=(--section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats
  --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section LaunchStats
  --section SourceCounters --import-source yes)
if [ "${NCU:-1}" = 1 ]; then
  for k in fwd inv; do
    echo "=== outer_${k}_tc_kernel N=1M bf16" >>"$OUT/ncu.log"
    run_left ncu.log ncu --clock-control none -k "regex:outer_${k}_tc_kernel" --launch-skip 3 -c 1 "${sections[@]}" \
      -o "$OUT/ncu-$k" "${bins[${NCU_VARIANT:-0}]}" --bench --bench-n 1048576
    run_left ncu.log ncu -i "$OUT/ncu-$k.ncu-rep" --page details
    run_left ncu_sass_$k.csv ncu -i "$OUT/ncu-$k.ncu-rep" --page source --csv --print-source sass
    rm -f "$OUT/ncu-$k.ncu-rep"
  done
fi
if [ "${NCU_BWD:-0}" = 1 ]; then  # one bf16 1M launch of a backward kernel (B = 1, the bench's first case)
  kbwd=${NCU_BWD_KERNEL:-bwd_inner_tc_kernel}
  echo "=== $kbwd N=1M bf16" >>"$OUT/ncu.log"
  run_left ncu.log ncu --clock-control none -k "regex:$kbwd" --launch-skip 2 -c 1 "${sections[@]}" \
    -o "$OUT/ncu-dk" build/selftests/long_bwd_selftest_v0 --bench
  run_left ncu.log ncu -i "$OUT/ncu-dk.ncu-rep" --page details
  run_left ncu_sass_dk.csv ncu -i "$OUT/ncu-dk.ncu-rep" --page source --csv --print-source sass
  rm -f "$OUT/ncu-dk.ncu-rep"
fi
if [ "${NCU:-1}" = 1 ] || [ "${NCU_BWD:-0}" = 1 ]; then
  grep -hE "^=== |Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Block Limit|Warp Cycles Per Issued|Issue Slots Busy|L1/TEX Hit|L2 Hit Rate|Stall|Bank" \
    "$OUT/ncu.log" | head -n 150
fi
