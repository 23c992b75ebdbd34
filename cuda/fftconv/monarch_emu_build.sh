#!/bin/sh
# CPU-emulation build of monarch_selftest.cu + monarch_fwd.cu (no GPU needed; see monarch_emu.h):
#   cuda/fftconv/monarch_emu_build.sh [output]      (default /tmp/monarch_selftest_emu)
#   <output> --small [--only SUBSTR]                (only the small cases are meant to run here)
# A host compiler cannot take `k<<<cfg>>>(args);` or `extern __shared__ T name[];`, so the
# sources are compiled from generated copies (a temporary include directory) in which only those
# lines are rewritten, to jff_emu::launch_cfg / launch_plain and JFF_DYN_SMEM, plus, in
# monarch_fwd.cu, its include of monarch_core.cuh (-> the generated copy) and its one inline-PTX
# line, an L2 prefetch hint (-> nothing). Each rewrite is checked to have left nothing behind.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-/tmp/monarch_selftest_emu}
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
src="$root/cuda/fftconv"
# `k<<<cfg>>>(args);` -> `::jff_emu::LAUNCHER(k, ::jff_emu::LaunchCfg(cfg), args);`
launch() {
  printf 's/\\([A-Za-z_][A-Za-z_0-9]*\\)<<<\\(.*\\)>>>(\\(.*\\));/::jff_emu::%s(\\1, ::jff_emu::LaunchCfg(\\2), \\3);/' "$1"
}
smem='s/extern __shared__ \([A-Za-z_][A-Za-z_0-9]*\) \([A-Za-z_][A-Za-z_0-9]*\)\[\];/JFF_DYN_SMEM(\1, \2);/'
# The kernels under test: fibers. The self-test's helper kernels: plain calls (monarch_emu.h).
sed -e "$(launch launch_cfg)" -e "$smem" \
  "$src/monarch_core.cuh" > "$gen/monarch_core_host.cuh"
sed -e "$(launch launch_cfg)" -e "$smem" \
  -e 's|^#include "fftconv/monarch_core.cuh"$|#include "monarch_core_host.cuh"|' \
  -e 's/asm volatile("prefetch\.global\.L2 \[%0\];" *:: *"l"(\([A-Za-z_][A-Za-z_0-9]*\)));/(void)\1;/' \
  "$src/monarch_fwd.cu" > "$gen/monarch_fwd_host.cu"
sed -e "$(launch launch_plain)" \
  "$src/monarch_selftest.cu" > "$gen/monarch_selftest_host.cu"
fail() {
  echo "monarch_emu_build.sh: $*" >&2
  exit 1
}
for f in monarch_core_host.cuh monarch_fwd_host.cu monarch_selftest_host.cu; do
  if grep -n '<<<' "$gen/$f" >&2; then fail "a <<< launch in $f was not rewritten"; fi
done
# (Also none in the self-test: its helper kernels run as plain calls, see launch_plain.)
for f in monarch_core_host.cuh monarch_fwd_host.cu monarch_selftest_host.cu; do
  if grep -n '__shared__' "$gen/$f" >&2; then fail "a __shared__ declaration in $f was not rewritten"; fi
done
if grep -n '\basm\b' "$gen/monarch_fwd_host.cu" >&2; then fail "inline PTX in monarch_fwd.cu not handled"; fi
grep -q '^#include "monarch_core_host.cuh"$' "$gen/monarch_fwd_host.cu" || fail "monarch_fwd.cu's core include not found"
cuda_inc=${CUDA_INC:-/usr/local/cuda/include}
jax_inc=${JAX_INC:-$("${PYTHON:-$root/.venv/bin/python}" -c "import jax.ffi; print(jax.ffi.include_dir())")}
# -fno-strict-aliasing: the kernels read and write 16-bit elements through uint32_t / uint4
# pointers, which is how CUDA code is written; the host optimizer must not assume otherwise.
${CXX:-g++} -std=c++17 -O2 -fno-strict-aliasing -DJFF_LONG_EMU -DJFF_MONARCH_EMU -I"$cuda_inc" -I"$jax_inc" -I"$gen" -I"$root/cuda" \
  -o "$out" "$src/monarch_emu_main.cc"
echo "built $out"
