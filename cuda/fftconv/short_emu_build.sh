#!/bin/sh
# CPU-emulation build of short_selftest.cu (the short tensor-core fftconv kernels, short_conv.cu; no GPU
# needed: each CUDA thread is a fiber, mma.sync / ldmatrix are emulated from their fragment layouts, see
# cuda/fftconv_long/emu.h):
#   cuda/fftconv/short_emu_build.sh [output]      (default /tmp/short_selftest_emu)
#   <output> --small [--only SUBSTR]
# short_conv.cu spells its launches and dynamic shared memory through macros, so it compiles as it is.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-/tmp/short_selftest_emu}
cuda_inc=${CUDA_INC:-/usr/local/cuda/include}
jax_inc=${JAX_INC:-$("${PYTHON:-$root/.venv/bin/python}" -c "import jax.ffi; print(jax.ffi.include_dir())")}
# -fno-strict-aliasing: the kernels read 16-bit elements through uint32_t / uint4 pointers, as CUDA code does.
${CXX:-g++} -std=c++17 -O2 -fno-strict-aliasing -x c++ -DJFF_LONG_EMU -I"$cuda_inc" -I"$jax_inc" -I"$root/cuda" \
  -o "$out" "$root/cuda/fftconv/short_selftest.cu"
echo "built $out"
