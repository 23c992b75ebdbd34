#!/bin/sh
# CPU-emulation builds of the tensor-core fftconv self-tests (no GPU needed; see monarch_emu.h):
#   cuda/fftconv/monarch_emu_build.sh [output]        forward: monarch_selftest.cu + monarch_fwd.cu
#                                                     (default output /tmp/monarch_selftest_emu)
#   cuda/fftconv/monarch_emu_build.sh --bwd [output]  backward: monarch_bwd_selftest.cu + monarch_bwd.cu
#                                                     (default output /tmp/monarch_bwd_selftest_emu)
#   <output> --small [--only SUBSTR]                  (only the small cases are meant to run here)
# A host compiler cannot take `k<<<cfg>>>(args);` or `extern __shared__ T name[];`, so the
# sources are compiled from generated copies (a temporary include directory) in which only those
# lines are rewritten, to jff_emu::launch_cfg / launch_plain and JFF_DYN_SMEM, plus, in the
# kernel file, its include of monarch_core.cuh (-> the generated copy) and monarch_fwd.cu's one
# inline-PTX line, an L2 prefetch hint (-> nothing). A launch written over several lines (the
# backward's reduction) is first joined into one. Each rewrite is checked to have left nothing
# behind. The backward is built without -DJFF_WITH_FWD: that only adds forward timings to the
# timed cases, which never run here (and monarch_fwd.cu and monarch_bwd.cu, one translation unit
# here, define the same file-local helpers).
set -e
dir=fwd
if [ "$1" = --bwd ]; then
  dir=bwd
  shift
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ $dir = fwd ]; then
  kernels=monarch_fwd test=monarch_selftest main=monarch_emu_main.cc
  out=${1:-/tmp/monarch_selftest_emu}
else
  kernels=monarch_bwd test=monarch_bwd_selftest main=monarch_bwd_emu_main.cc
  out=${1:-/tmp/monarch_bwd_selftest_emu}
fi
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
src="$root/cuda/fftconv"
# A line with `<<<` that does not end in `;` is joined with the following lines until one does.
join='/<<</{
:a
/;[[:space:]]*$/!{
N
s/\n[[:space:]]*/ /
ba
}
}'
# `k<<<cfg>>>(args);` or `k<T, ...><<<cfg>>>(args);` -> `::jff_emu::LAUNCHER(k..., ::jff_emu::LaunchCfg(cfg), args);`
launch() {
  printf 's/\\([A-Za-z_][A-Za-z_0-9]*\\(<[^<>]*>\\)\\{0,1\\}\\)<<<\\(.*\\)>>>(\\(.*\\));/::jff_emu::%s(\\1, ::jff_emu::LaunchCfg(\\3), \\4);/' "$1"
}
smem='s/extern __shared__ \([A-Za-z_][A-Za-z_0-9]*\) \([A-Za-z_][A-Za-z_0-9]*\)\[\];/JFF_DYN_SMEM(\1, \2);/'
# The kernels under test: fibers. The self-test's helper kernels: plain calls (monarch_emu.h).
sed -e "$join" -e "$(launch launch_cfg)" -e "$smem" \
  "$src/monarch_core.cuh" > "$gen/monarch_core_host.cuh"
sed -e "$join" -e "$(launch launch_cfg)" -e "$smem" \
  -e 's|^#include "fftconv/monarch_core.cuh"$|#include "monarch_core_host.cuh"|' \
  -e 's/asm volatile("prefetch\.global\.L2 \[%0\];" *:: *"l"(\([A-Za-z_][A-Za-z_0-9]*\)));/(void)\1;/' \
  "$src/$kernels.cu" > "$gen/${kernels}_host.cu"
sed -e "$join" -e "$(launch launch_plain)" \
  "$src/$test.cu" > "$gen/${test}_host.cu"
fail() {
  echo "monarch_emu_build.sh: $*" >&2
  exit 1
}
files="monarch_core_host.cuh ${kernels}_host.cu ${test}_host.cu"
for f in $files; do
  if grep -n '<<<' "$gen/$f" >&2; then fail "a <<< launch in $f was not rewritten"; fi
done
# (Also none in the self-test: its helper kernels run as plain calls, see launch_plain.)
for f in $files; do
  if grep -n '__shared__' "$gen/$f" >&2; then fail "a __shared__ declaration in $f was not rewritten"; fi
done
if grep -n '\basm\b' "$gen/${kernels}_host.cu" >&2; then fail "inline PTX in $kernels.cu not handled"; fi
grep -q '^#include "monarch_core_host.cuh"$' "$gen/${kernels}_host.cu" || fail "$kernels.cu's core include not found"
cuda_inc=${CUDA_INC:-/usr/local/cuda/include}
jax_inc=${JAX_INC:-$("${PYTHON:-$root/.venv/bin/python}" -c "import jax.ffi; print(jax.ffi.include_dir())")}
# -fno-strict-aliasing: the kernels read and write 16-bit elements through uint32_t / uint4
# pointers, which is how CUDA code is written; the host optimizer must not assume otherwise.
${CXX:-g++} -std=c++17 -O2 -fno-strict-aliasing -DJFF_LONG_EMU -DJFF_MONARCH_EMU -I"$cuda_inc" -I"$jax_inc" -I"$gen" -I"$root/cuda" \
  -o "$out" "$src/$main"
echo "built $out"
