// The CPU-emulation build of depthwise_selftest.cu + depthwise_kernels.cu as one translation unit
// (built by emu_build.sh in this folder, which generates the *_host copies: the self-test's
// `<<<...>>>` launches rewritten to plain calls, pdl.cuh's cudaLaunchKernelEx to an emulated
// launch). Run: <binary> --small. Threads are fibers (fftconv_long/emu.h), warp shuffles and the
// runtime come from common/emu_runtime.h; the kernels are the GPU source itself.
#include "common/emu_runtime.h"

namespace jff_emu {
// pdl::Launch's cudaLaunchKernelEx: the kernel as a grid of fibers. The PDL attribute changes
// nothing here: launches run one after another anyway.
// (The configuration arrives as values: emu.h's gridDim / blockDim macros would mangle the fields
// of a cudaLaunchConfig_t.)
template <typename... KArgs, typename... Args>
cudaError_t launch_ex(dim3 grid, dim3 block, size_t smem, void (*kernel)(KArgs...), Args&&... args) {
  launch_cfg(kernel, LaunchCfg(grid, block, smem), args...);
  return cudaPeekAtLastError();
}
}  // namespace jff_emu

// A block's `__shared__` arrays are one array for all of its threads: static locals do that here,
// since the blocks of a grid run one after another (emu.h defines __shared__ away for the
// fftconv kernels, which only use the dynamic kind).
#undef __shared__
#define __shared__ static
#include "depthwise_kernels_host.cu"  // generated from depthwise_kernels.cu
#undef __shared__
#define __shared__

#define main dw_selftest_main
#include "depthwise_selftest_host.cu"  // generated from depthwise_selftest.cu
#undef main

int main(int argc, char** argv) { return jff_emu::small_only_main(argc, argv, dw_selftest_main); }
