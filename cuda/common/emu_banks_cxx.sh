#!/usr/bin/env bash
# Compiler wrapper that turns an emulation build into the shared-memory bank profiler's (common/emu_banks.h):
#   CXX="bash cuda/common/emu_banks_cxx.sh" sh cuda/fftconv_long/emu_build.sh /tmp/outer_banks
#   CXX="bash cuda/common/emu_banks_cxx.sh -DJFF_LONG_TILE_ORDER=0" PYTHON=... sh cuda/fftconv/monarch_emu_build.sh ...
# It takes the build script's one compile-and-link command, compiles with GCC's -fsanitize=thread instrumentation,
# -DJFF_EMU_BANKS and -g, and links without the TSan runtime (emu_banks.h defines the hooks the instrumentation
# calls). Run the binary as usual (small cases), then
#   .venv/bin/python benchmarks/emu_banks_report.py BINARY emu_banks.tsv
set -euo pipefail
args=()
out=a.out
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then
    out=$2
    shift 2
    continue
  fi
  args+=("$1")
  shift
done
obj=$(mktemp --suffix=.o)
trap 'rm -f "$obj"' EXIT
"${BANKS_CXX:-g++}" "${args[@]}" -g -fsanitize=thread --param=tsan-instrument-func-entry-exit=0 -DJFF_EMU_BANKS \
  -c -o "$obj"
"${BANKS_CXX:-g++}" -o "$out" "$obj" -ldl
