// Programmatic dependent launch (PDL, compute capability 9.0+).
//
// A kernel launched through pdl::Launch may be scheduled onto the SMs while the kernel before it
// on the stream is still finishing, instead of after it has completed and its writes have been
// flushed. The launch latency and the new grid's block ramp then overlap the previous grid's
// tail: a few microseconds per kernel, which is a sizeable part of a kernel that moves ~50 MB.
//
// The contract for a kernel launched this way: call pdl::BeginKernel() before its first global
// memory access, read or write. It waits until every earlier grid on the stream has completed
// and its memory is visible (griddepcontrol.wait), so nothing the kernel touches can race with
// the kernels before it, whoever launched them. It then lets the next grid be scheduled
// (griddepcontrol.launch_dependents); that grid in turn waits for this one to complete before
// touching memory. A dependent grid starts only once every block of this grid has started, so
// its waiting blocks never take SM slots from this grid's own blocks.
//
// Both instructions are no-ops for a grid launched without the attribute (older GPUs, or
// JFF_PDL=0 in the environment, which turns the attribute off for A/B timing and as an escape
// hatch).
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace jff {
namespace pdl {

__device__ __forceinline__ void BeginKernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launches on the current device get the attribute: compute capability >= 9 and
// JFF_PDL not set to "0". Read once per device (the answer cannot change within a process).
inline bool EnabledOnCurrentDevice() {
  static const bool env_off = [] {
    const char* v = std::getenv("JFF_PDL");
    return v != nullptr && std::strcmp(v, "0") == 0;
  }();
  if (env_off) return false;
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};  // 0: unknown, 1: yes, 2: no
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return false;
  int state = cached[dev].load(std::memory_order_relaxed);
  if (state == 0) {
    int major = 0;
    const bool ok =
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess;
    state = ok && major >= 9 ? 1 : 2;  // threads racing here all store the same value
    cached[dev].store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute where enabled and
// `allow` is true. Returns the launch's error (also left for cudaGetLastError to report).
template <typename... Params, typename... Args>
cudaError_t Launch(bool allow, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = allow && EnabledOnCurrentDevice() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace pdl
}  // namespace jff
