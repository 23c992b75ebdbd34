// CPU emulation (JFF_LONG_EMU host builds): what the emulated self-tests need beyond
// fftconv_long/emu.h's fibers and warp collectives, shared by the tensor-core fftconv emulation
// (cuda/fftconv/monarch_emu.h) and the depthwise one (cuda/depthwise/depthwise_emu.h):
//   * device built-ins (atomicAdd on 64-bit, min/max, __byte_perm, cache-hinted loads and stores,
//     warp shuffles through emu.h's per-warp slots);
//   * launches of the rewritten `k<<<cfg>>>(args);` lines: launch_cfg (kernels under test, one
//     fiber per thread, with the 48 KB dynamic-shared-memory opt-in checked as the driver does) and
//     launch_plain (helper kernels without barriers or warp collectives, threads as plain calls);
//   * the CUDA runtime calls the kernels' launchers and the self-tests make, on host memory, with
//     H100-like limits;
//   * small_only_main: the emulated binaries' main, which runs the self-test's --small cases only.
// One translation unit per binary: the runtime functions are defined here, not declared.
#pragma once

#ifndef JFF_LONG_EMU
#error "emu_runtime.h is for the JFF_LONG_EMU host builds only"
#endif

#include "fftconv_long/emu.h"

#include <chrono>
#include <map>

// Device built-ins the kernels and the self-test use that emu.h does not provide. Fibers of one
// block run one at a time and are never preempted, so a plain add is atomic.
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  const unsigned long long old = *a;
  *a = old + v;
  return old;
}
// Single-precision arithmetic with explicit rounding (never contracted into an FMA): the host's
// float arithmetic rounds to nearest, and this build does not contract.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
// PRMT in its default mode: byte i of the result is byte (s >> 4i) & 7 of {y:x} (x = bytes 0-3).
inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s) {
  const uint64_t v = (static_cast<uint64_t>(y) << 32) | x;
  unsigned int r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<unsigned int>((v >> (8 * ((s >> (4 * i)) & 7))) & 0xffu) << (8 * i);
  return r;
}
// Cache-hinted global load / store (.cg: L2 only); there is one level of memory here.
template <typename T>
inline T __ldcg(const T* p) {
  return *p;
}
template <typename T>
inline void __stcg(T* p, T v) {
  *p = v;
}
template <typename T>
inline T __ldcs(const T* p) {
  return *p;
}
template <typename T>
inline void __stcs(T* p, T v) {
  *p = v;
}
// Warp shuffles of 32-bit values over the full warp (the only form the kernels use): every lane
// publishes its word in its slot, the warp meets, each lane reads the word of its source lane (its
// own where the source is outside the warp, as the hardware does for up/down), and the warp meets
// again before any slot is reused (as emu.h's collectives).
namespace jff_emu {
template <typename SrcOf>
inline uint32_t shfl_word(unsigned mask, int width, uint32_t v, SrcOf src_of) {
  if (mask != 0xffffffffu || width != 32) die("shuffle: only full-warp, width-32 shuffles are emulated");
  Slot* s = warp_slots();
  const int l = lane();
  s[l].w[0] = v;
  wait(kWarpWait);
  const int src = src_of(l);
  const uint32_t r = s[src >= 0 && src < 32 ? src : l].w[0];
  wait(kWarpWait);
  return r;
}
}  // namespace jff_emu
inline unsigned __shfl_sync(unsigned mask, unsigned v, int src, int width = 32) {
  return jff_emu::shfl_word(mask, width, v, [&](int) { return src & 31; });
}
inline unsigned __shfl_up_sync(unsigned mask, unsigned v, unsigned delta, int width = 32) {
  return jff_emu::shfl_word(mask, width, v, [&](int l) { return l - static_cast<int>(delta); });
}
inline unsigned __shfl_down_sync(unsigned mask, unsigned v, unsigned delta, int width = 32) {
  return jff_emu::shfl_word(mask, width, v, [&](int l) { return l + static_cast<int>(delta); });
}
inline unsigned __shfl_xor_sync(unsigned mask, unsigned v, int lane_mask, int width = 32) {
  return jff_emu::shfl_word(mask, width, v, [&](int l) { return l ^ (lane_mask & 31); });
}
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32) {
  return __uint_as_float(__shfl_xor_sync(mask, __float_as_uint(v), lane_mask, width));
}

namespace jff_emu {

// Limits reported to the code under test (H100 SXM): what decides grid sizes and the
// supported-problem checks.
#ifndef JFF_EMU_SMS  // fewer, for cases that need many items per CTA (e.g. -DJFF_EMU_SMS=1)
#define JFF_EMU_SMS 132
#endif
constexpr int kNumSms = JFF_EMU_SMS;
constexpr int kSmemOptin = 227 * 1024;    // per block, opt-in
constexpr int kSmemPerSm = 228 * 1024;
constexpr int kSmemDefault = 48 * 1024;   // per block without the opt-in attribute
constexpr int kSmemReservedPerBlock = 1024;

inline cudaError_t g_last_error = cudaSuccess;
inline std::map<const void*, int> g_max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize

// The launch configuration of a rewritten `<<<grid, block[, smem[, stream]]>>>`.
struct LaunchCfg {
  dim3 grid, block;
  size_t smem;
  LaunchCfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s) { (void)st; }
};

// A kernel under test: every thread a fiber (emu.h's launch). A launch error is reported
// through cudaGetLastError, as the runtime does, and the kernel does not run.
template <typename... KArgs, typename... Args>
void launch_cfg(void (*kernel)(KArgs...), LaunchCfg c, Args... args) {
  const auto it = g_max_dyn_smem.find(reinterpret_cast<const void*>(kernel));
  const size_t limit = it != g_max_dyn_smem.end() ? static_cast<size_t>(it->second) : kSmemDefault;
  if (c.smem > limit || c.grid.x == 0 || c.block.x == 0 || c.block.x > 1024) {
    g_last_error = cudaErrorInvalidValue;
    return;
  }
  launch(kernel, c.grid, c.block, c.smem, args...);
}

// The self-test's helper kernels: threads run one after another as plain calls, which is exact
// for code without barriers, warp collectives or shared memory. Should such a kernel reach a
// barrier after all, emu.h's wait() switches to g_sched, which here is the point below: the run
// stops with a message instead of going wrong.
template <typename... KArgs, typename... Args>
void launch_plain(void (*kernel)(KArgs...), LaunchCfg c, Args... args) {
  static volatile bool running = false;
  const int nth = static_cast<int>(c.block.x * c.block.y * c.block.z);
  if (c.block.y != 1 || c.block.z != 1) die("only 1-D blocks are emulated");
  if (g_fibers.size() < static_cast<size_t>(nth)) g_fibers.resize(nth);  // wait() saves into them
  running = false;
  getcontext(&g_sched);
  if (running) die("barrier or warp collective in a kernel launched without fibers");
  running = true;
  g_grid = c.grid;
  g_bdim = c.block;
  for (unsigned z = 0; z < c.grid.z; ++z)
    for (unsigned y = 0; y < c.grid.y; ++y)
      for (unsigned x = 0; x < c.grid.x; ++x) {
        g_block = make_uint3(x, y, z);
        for (int i = 0; i < nth; ++i) {
          g_cur = i;
          kernel(static_cast<KArgs>(args)...);
        }
      }
  running = false;
}

// Without --small the self-tests run their timed workloads (B = 64, H = 768, up to N = 32768):
// days under emulation, and the timings would mean nothing. Refused instead.
inline int small_only_main(int argc, char** argv, int (*selftest_main)(int, char**)) {
  bool small = false;
  for (int i = 1; i < argc; ++i) small = small || std::strcmp(argv[i], "--small") == 0;
  if (!small) {
    std::fprintf(stderr, "usage: %s --small [--only SUBSTR]  (the emulation runs the small cases only)\n", argv[0]);
    return 2;
  }
  return selftest_main(argc, argv);
}

}  // namespace jff_emu

// ---- CUDA runtime on the host ("device" memory is host memory; work is done when launched) ----
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};

extern "C" {
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = jff_emu::g_last_error;
  jff_emu::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return jff_emu::g_last_error; }
const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "emulated error"; }
const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int dev) {
  if (dev != 0) return cudaErrorInvalidDevice;
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "CPU emulation (H100-like limits)");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = jff_emu::kNumSms;
  p->sharedMemPerBlock = jff_emu::kSmemDefault;
  p->sharedMemPerBlockOptin = jff_emu::kSmemOptin;
  p->sharedMemPerMultiprocessor = jff_emu::kSmemPerSm;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsPerMultiProcessor = 2048;
  p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int dev) {
  if (dev != 0) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount: *v = jff_emu::kNumSms; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = jff_emu::kSmemOptin; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = jff_emu::kSmemPerSm; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; return cudaSuccess;
    default: return cudaErrorInvalidValue;  // not needed so far: better to fail than to guess
  }
}
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  if (value < 0 || value > jff_emu::kSmemOptin) return cudaErrorInvalidValue;
  jff_emu::g_max_dyn_smem[func] = value;
  return cudaSuccess;
}
// The occupancy rule for threads and shared memory (registers are not modelled).
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* n, const void*, int block, size_t smem) {
  if (block < 1 || block > 1024) return cudaErrorInvalidValue;
  int by_threads = 2048 / block;
  const int by_smem = static_cast<int>(jff_emu::kSmemPerSm / (smem + jff_emu::kSmemReservedPerBlock));
  by_threads = by_threads < 32 ? by_threads : 32;
  *n = by_threads < by_smem ? by_threads : by_smem;
  return cudaSuccess;
}
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* n, const void* f, int block, size_t smem,
                                                                  unsigned int) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(n, f, block, smem);
}
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::aligned_alloc(256, (std::max<size_t>(n, 1) + 255) / 256 * 256);
  return *p != nullptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t) {
  std::memcpy(d, s, n);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { return cudaMemset(d, v, n); }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaStreamCreate(cudaStream_t* s) {  // the one stream: work is done when launched
  *s = nullptr;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{};
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
}  // extern "C"
// cuda_runtime.h has this typed form only for nvcc.
template <typename... A>
cudaError_t cudaFuncSetAttribute(void (*func)(A...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(func), attr, value);
}
