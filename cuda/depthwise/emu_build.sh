#!/bin/sh
# CPU-emulation build of the depthwise kernels' self-test (no GPU needed; see depthwise_emu_main.cc):
#   cuda/depthwise/emu_build.sh [output]     (default output /tmp/dw_selftest_emu)
#   <output> --small                          (only the small cases are meant to run here)
# A host compiler cannot take `k<<<cfg>>>(args);`, and cudaLaunchKernelEx must launch fibers, so
# the sources are compiled from generated copies (a temporary include directory) in which only
# those lines are rewritten: the self-test's helper launches to jff_emu::launch_plain, pdl.cuh's
# cudaLaunchKernelEx to jff_emu::launch_ex, and the kernel file's pdl.cuh include to the copy.
# Each rewrite is checked to have left nothing behind.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-/tmp/dw_selftest_emu}
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
mkdir -p "$gen/common"
fail() {
  echo "depthwise emu_build.sh: $*" >&2
  exit 1
}
sed -e 's/return cudaLaunchKernelEx(&cfg, kernel, /return ::jff_emu::launch_ex(grid, block, smem, kernel, /' \
  -e '/cfg\.gridDim = grid;/d' -e '/cfg\.blockDim = block;/d' \
  "$root/cuda/common/pdl.cuh" > "$gen/common/pdl.cuh"
grep -q 'jff_emu::launch_ex(grid, block, smem, kernel, ' "$gen/common/pdl.cuh" || fail "pdl.cuh's launch not found"
if grep -n 'gridDim\|blockDim' "$gen/common/pdl.cuh" >&2; then fail "pdl.cuh still sets gridDim / blockDim"; fi
sed -e 's|^#include "common/pdl.cuh"$|#include "common/pdl.cuh"  // the generated copy (first on the include path)|' \
  "$root/cuda/depthwise/depthwise_kernels.cu" > "$gen/depthwise_kernels_host.cu"
# `k<<<cfg>>>(args);` -> `::jff_emu::launch_plain(k, ::jff_emu::LaunchCfg(cfg), args);`
sed -e 's/\([A-Za-z_][A-Za-z_0-9]*\)<<<\(.*\)>>>(\(.*\));/::jff_emu::launch_plain(\1, ::jff_emu::LaunchCfg(\2), \3);/' \
  "$root/cuda/depthwise/depthwise_selftest.cu" > "$gen/depthwise_selftest_host.cu"
for f in depthwise_kernels_host.cu depthwise_selftest_host.cu; do
  if grep -n '<<<' "$gen/$f" >&2; then fail "a <<< launch in $f was not rewritten"; fi
done
if grep -n '\basm\b' "$gen/depthwise_kernels_host.cu" >&2; then fail "inline PTX in depthwise_kernels.cu"; fi
cuda_inc=${CUDA_INC:-/usr/local/cuda/include}
# -fno-strict-aliasing: the kernels move 16-bit elements through wider integer types, as CUDA code does.
${CXX:-g++} -std=c++17 -O2 -fno-strict-aliasing -ffp-contract=off -DJFF_LONG_EMU -I"$gen" -I"$root/cuda" -I"$cuda_inc" \
  -o "$out" "$here/depthwise_emu_main.cc"
echo "built $out"
