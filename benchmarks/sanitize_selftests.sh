#!/usr/bin/env bash
# compute-sanitizer over the standalone kernel self-tests (their small cases), one log per tool and
# program under $OUT. The Python-level stage of device_run.sh checks the kernels as XLA calls them;
# this one checks every kernel variant the self-tests reach, without XLA in the process (on an H200,
# compute-sanitizer with a JAX process crashed before reaching our kernels).
#
#   bash benchmarks/sanitize_selftests.sh BIN_DIR      BIN_DIR holds the self-test binaries, built as
#                                                      each one's header comment says
# Programs: monarch_selftest, monarch_bwd_selftest (--small: N 256..32768, every dtype and gate
# form), short_selftest (--small: L <= 128), dw_selftest (--small), generic_selftest, outer_selftest
# and long_bwd_selftest (--quick). Missing programs are reported and skipped.
# SANITIZE_PROGRAMS="name name ..." limits the run to those programs.
set -uo pipefail
BIN=${1:?usage: sanitize_selftests.sh BIN_DIR}
OUT=${OUT:-/tmp/sanitize_out}
mkdir -p "$OUT"
overall=0
for prog in "monarch_selftest --small" "monarch_bwd_selftest --small" "short_selftest --small" \
            "dw_selftest --small" "generic_selftest --quick" "outer_selftest --quick" "long_bwd_selftest --quick" \
            fft_smem_test; do
  set -- $prog
  name=$1
  shift
  if [ -n "${SANITIZE_PROGRAMS:-}" ] && [[ " $SANITIZE_PROGRAMS " != *" $name "* ]]; then
    continue
  fi
  if [ ! -x "$BIN/$name" ]; then
    echo "$name: not built, skipped"
    continue
  fi
  for tool in ${SANITIZE_TOOLS:-memcheck racecheck}; do
    log=$OUT/sanitize-$name-$tool.log
    start=$SECONDS
    timeout "${SANITIZE_TIMEOUT:-300}" compute-sanitizer --tool "$tool" --error-exitcode 99 --print-limit 50 \
      "$BIN/$name" "$@" >"$log" 2>&1
    rc=$?
    echo "$name $tool: exit $rc ($((SECONDS - start)) s): $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | tail -n 1)"
    [ "$rc" -eq 0 ] || overall=1
  done
done
exit $overall
