// JFF_MONARCH_EMU only: CPU emulation of what the tensor-core fftconv forward and backward
// (monarch_fwd.cu, monarch_bwd.cu) and their self-tests need beyond fftconv_long/emu.h, so that
// CI without a GPU runs the self-tests' small cases against the kernels' own source. Built by
// monarch_emu_build.sh, which compiles monarch_emu_main.cc / monarch_bwd_emu_main.cc (the order
// of the pieces is there).
//
// Reused: emu.h (threads as fibers, warp/block barriers, ldmatrix / mma.sync / movmatrix from
// the PTX fragment layouts) and emu_core.h (compiles monarch_core.cuh itself with those
// emulations, on the 16-bit stand-in element types EmuBF16 / EmuF16). Added here:
//   * launches from the rewritten `k<<<cfg>>>(args);` lines: launch_cfg (the kernels under
//     test, fibers, with the 48 KB dynamic-shared-memory opt-in checked as the driver does) and
//     launch_plain (the self-test's fill/compare helpers: grid-stride loops without barriers or
//     warp collectives, whose 2048 x 256 threads would otherwise cost a fiber each);
//   * cp.async as a plain 16-byte copy with the hardware's zero fill, commit/wait as no-ops
//     (the data is there at once, so waits are trivially satisfied), L1 prefetch as a no-op;
//   * __ldcg / __stcg / __ldcs / __stcs (cache-hinted global accesses, plain ones here)
//     and __shfl_xor_sync (a warp collective through emu.h's per-warp slots);
//   * the CUDA runtime calls those files make, on host memory, with H100-like limits;
//   * small_only_main: the emulated binaries' main, which runs the self-test's --small cases only.
// monarch_core.cuh's cp.async / prefetch helpers are inline PTX; macros give them a "ptx"
// spelling while the core is compiled (their bodies are parsed, never emitted: selecting one by
// mistake would fail in the host assembler), and the emulated ones take the real names.
#pragma once

#if !defined(JFF_MONARCH_EMU) || !defined(JFF_LONG_EMU)
#error "monarch_emu.h is for the host emulation build only (monarch_emu_build.sh)"
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
// Butterfly shuffle of a full warp: every lane publishes its value in its slot, the warp meets,
// each reads its partner's, and the warp meets again before any slot is reused (as emu.h's
// collectives). Only the full mask and width 32, which is what the kernels use.
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32) {
  if (mask != 0xffffffffu || width != 32 || lane_mask < 0 || lane_mask > 31)
    jff_emu::die("__shfl_xor_sync: only full-warp butterflies are emulated");
  jff_emu::Slot* s = jff_emu::warp_slots();
  s[jff_emu::lane()].w[0] = __float_as_uint(v);
  jff_emu::wait(jff_emu::kWarpWait);
  const uint32_t r = s[jff_emu::lane() ^ lane_mask].w[0];
  jff_emu::wait(jff_emu::kWarpWait);
  return __uint_as_float(r);
}

namespace jff_emu {

// Limits reported to the code under test (H100 SXM): what decides grid sizes and the
// supported-problem checks.
constexpr int kNumSms = 132;
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

// ---- monarch_core.cuh itself (see emu_core.h), its PTX-only helpers renamed (see above) ----
#define cp_async16 ptx_cp_async16
#define cp_async_commit ptx_cp_async_commit
#define cp_async_wait ptx_cp_async_wait
#define prefetch_k_l1 ptx_prefetch_k_l1
#include "fftconv_long/emu_core.h"  // monarch_core_host.cuh, generated by monarch_emu_build.sh
#undef cp_async16
#undef cp_async_commit
#undef cp_async_wait
#undef prefetch_k_l1

namespace jff {
namespace {
// cp.async.cg 16 bytes: src_bytes from global, the rest of the 16 zero-filled (src_bytes = 0
// reads nothing). Done at once; the kernel's waits then have nothing left to wait for.
template <Touch = Touch::kAgain>  // the L2 policy is a hint; there is no L2 here
inline void cp_async16(void* smem_ptr, const void* gptr, int src_bytes) {
  if (src_bytes < 0 || src_bytes > 16) jff_emu::die("cp.async src-size out of range");
  std::memcpy(smem_ptr, gptr, static_cast<size_t>(src_bytes));
  std::memset(static_cast<char*>(smem_ptr) + src_bytes, 0, static_cast<size_t>(16 - src_bytes));
}
inline void cp_async_commit() {}
template <int Pending>
inline void cp_async_wait() {}
// A cache hint.
template <int RAD, typename KSlot>
inline void prefetch_k_l1(const KSlot*, int) {}
}  // namespace
}  // namespace jff
// The core's other renamings (Ops -> CoreOps, ...) stay in force for monarch_fwd.cu, which
// spells those names too; monarch_emu_main.cc ends them with emu_core_end.h.

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
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
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
