#!/bin/sh
# CPU-emulation build of outer_selftest.cu (no GPU needed; see emu.h and emu_core.h):
#   cuda/fftconv_long/emu_build.sh [output [source]]   (default /tmp/outer_selftest_emu,
#                                                      source cuda/fftconv_long/outer_selftest.cu)
# The backward's self-test is built the same way:
#   cuda/fftconv_long/emu_build.sh /tmp/long_bwd_emu cuda/fftconv_long/long_bwd_selftest.cu
# The inner kernel reuses cuda/fftconv/monarch_core.cuh; a host compiler cannot parse its one
# `<<<...>>>` launch, so that line is rewritten to JFF_LAUNCH(...) in a generated copy
# (monarch_core_host.cuh, in a temporary include directory). Nothing else is changed.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-/tmp/outer_selftest_emu}
src=${2:-$root/cuda/fftconv_long/outer_selftest.cu}
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
sed 's/\([A-Za-z_][A-Za-z_0-9]*\)<<<\(.*\)>>>(\(.*\));/JFF_LAUNCH(\1, \2, \3);/' \
  "$root/cuda/fftconv/monarch_core.cuh" > "$gen/monarch_core_host.cuh"
if grep -q '<<<' "$gen/monarch_core_host.cuh"; then
  echo "emu_build.sh: a <<< launch in monarch_core.cuh was not rewritten" >&2
  exit 1
fi
cuda_inc=${CUDA_INC:-/usr/local/cuda/include}
${CXX:-g++} -std=c++17 -O2 -x c++ -DJFF_LONG_EMU -I"$cuda_inc" -I"$gen" -I"$root/cuda" \
  -o "$out" "$src"
echo "built $out"
