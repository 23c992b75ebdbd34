// CPU emulation of the CUDA features the long-fftconv outer passes use, so that the kernels run
// (slowly, small sizes) on a machine without a GPU: `g++ -x c++ -DJFF_LONG_EMU ...`
// (see outer_selftest.cu's header). Only for development; the device build never includes it.
//
// Each CUDA thread is a fiber (ucontext); a block's fibers run round-robin until each reaches a
// barrier. Two kinds of barrier are tracked separately, which is what makes warp-level code
// with per-warp work loops behave as on the GPU: a warp barrier (__syncwarp, and the two
// halves of every warp-collective instruction) releases the 32 lanes of one warp once all have
// arrived; a block barrier (__syncthreads) releases the block once every live thread is there.
// Anything else (a warp split between the two kinds) is reported as divergence and aborts.
//
// Warp collectives (ldmatrix, mma.sync m16n8k16, movmatrix) exchange operands through a per-warp
// slot array and reproduce the fragment layouts of the PTX ISA, the same layouts
// cuda/fftconv/monarch_core.cuh is written against (and GPU-verified with):
//   A (16x16, row-major): reg q holds rows gid + 8(q&1), columns 8(q>>1) + 2tig, +1;
//   B (16x8, "col"):      reg q holds rows (k) 8q + 2tig, +1 of column gid;
//   C/D (16x8):           elements 2h, 2h+1 hold row gid + 8h, columns 2tig, 2tig+1;
//   ldmatrix.x4: lanes 8i..8i+7 give the row addresses of matrix i; non-trans lane l gets row
//   l/4, columns 2(l%4), +1; .trans gets column l/4, rows 2(l%4), +1 (low half = first).
// with gid = lane / 4, tig = lane % 4; a 32-bit register holds two 16-bit values, the lower
// index in the low half.
#pragma once

#ifndef JFF_LONG_EMU
#error "emu.h is for the JFF_LONG_EMU host build only"
#endif

#include <ucontext.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__
#ifdef JFF_EMU_BANKS
#define __forceinline__ inline __attribute__((always_inline))  // the bank profiler: whole kernels, as nvcc inlines
#else
#define __forceinline__ inline
#endif
#define __launch_bounds__(...)
#undef __grid_constant__
#define __grid_constant__

namespace jff_emu {

constexpr size_t kMaxSmem = 227 * 1024;
enum State { kRun = 0, kWarpWait = 1, kBlockWait = 2, kDone = 3, kNamedWait = 4 };

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  State state = kRun;
  int bar = -1;  // the named barrier a fiber in kNamedWait waits on
};

// A named barrier (bar.sync / bar.arrive id, count): arrivals so far and the count they complete at.
struct NamedBar {
  int arrived = 0, expected = 0;
};

struct Slot {
  uint32_t w[8];
  const void* ptr;
};

inline ucontext_t g_sched;
inline std::vector<Fiber> g_fibers;
inline std::vector<Slot> g_slots;  // 32 per warp
inline int g_cur = 0;
inline uint3 g_block;
inline dim3 g_grid, g_bdim;
inline std::function<void()> g_body;
alignas(16) inline unsigned char g_smem[kMaxSmem];
constexpr size_t kSmemCanary = 4096;          // bytes checked past each block's dynamic shared memory
constexpr unsigned char kCanaryByte = 0xA5;
inline size_t g_max_smem_seen = 0;
inline NamedBar g_bars[16];
inline long long g_launches = 0;
}  // namespace jff_emu

#ifdef JFF_EMU_BANKS
#include "common/emu_banks.h"  // the shared-memory bank profiler: hooks called below
#define JFF_EMU_BANKS_CALL(...) ::jff_emu::banks::__VA_ARGS__
#else
#define JFF_EMU_NOSAN  // (the profiler's: functions whose own shared-memory accesses are not lane accesses)
#define JFF_EMU_BANKS_CALL(...) ((void)0)
#endif

namespace jff_emu {

inline uint3 tid3() { return make_uint3(static_cast<unsigned>(g_cur), 0, 0); }
inline void wait(State s) {
  JFF_EMU_BANKS_CALL(on_barrier());
  g_fibers[g_cur].state = s;
  swapcontext(&g_fibers[g_cur].ctx, &g_sched);
}
inline void trampoline() {
  g_body();
  g_fibers[g_cur].state = kDone;
}

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "emulation: %s (block %u,%u)\n", what, g_block.x, g_block.y);
  std::abort();
}

// bar.sync (wait = true) / bar.arrive (wait = false) on named barrier id with `count` threads: the
// arrival that completes the count releases every fiber waiting on it; the others wait (sync) or go on
// (arrive). Every thread counts (the kernels call these with whole warps).
inline void named_barrier(int id, int count, bool wait_here) {
  if (id < 1 || id > 15 || count <= 0 || count % 32 != 0) die("bad named barrier");
  NamedBar& b = g_bars[id];
  if (b.arrived > 0 && b.expected != count) die("named barrier used with two thread counts");
  b.expected = count;
  if (++b.arrived == count) {
    b.arrived = 0;
    for (auto& f : g_fibers)
      if (f.state == kNamedWait && f.bar == id) f.state = kRun;
    return;
  }
  if (wait_here) {
    g_fibers[g_cur].bar = id;
    wait(kNamedWait);
  }
}

// Runs every block of the grid, one after another.
template <typename... KArgs, typename... Args>
void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, Args... args) {
  const int nth = static_cast<int>(block.x * block.y * block.z);
  if (block.y != 1 || block.z != 1) die("only 1-D blocks are emulated");
  if (smem > kMaxSmem) die("too much dynamic shared memory");
  if (nth % 32 != 0) die("block size not a multiple of 32");
  g_max_smem_seen = smem > g_max_smem_seen ? smem : g_max_smem_seen;
  ++g_launches;
  g_grid = grid;
  g_bdim = block;
  g_fibers.resize(nth);
  g_slots.resize(nth);
  for (auto& f : g_fibers)
    if (f.stack.size() < 512 * 1024) f.stack.resize(512 * 1024);
  g_body = [&]() { kernel(static_cast<KArgs>(args)...); };
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block = make_uint3(x, y, z);
        std::memset(g_smem, 0xFF, smem);  // NaN in every float type: reading unwritten smem shows
        // A canary past the block's dynamic shared memory: a write there (out of bounds on a GPU) stops the run.
        const size_t canary = std::min(kMaxSmem - smem, kSmemCanary);
        std::memset(g_smem + smem, kCanaryByte, canary);
        for (auto& b : g_bars) b = NamedBar{};
        JFF_EMU_BANKS_CALL(on_block_start(g_smem, smem, &g_cur, nth));
        for (int i = 0; i < nth; ++i) {
          Fiber& f = g_fibers[i];
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &g_sched;
          f.state = kRun;
          makecontext(&f.ctx, trampoline, 0);
        }
        for (;;) {
          for (int i = 0; i < nth; ++i) {
            if (g_fibers[i].state != kRun) continue;
            g_cur = i;
            swapcontext(&g_sched, &g_fibers[i].ctx);
          }
          // Fibers released from a named barrier during the round run first.
          bool runnable = false;
          for (const auto& f : g_fibers) runnable = runnable || f.state == kRun;
          if (runnable) continue;
          // Everyone is waiting or done: release complete warps first, then the block.
          bool released = false;
          int alive = 0, at_block = 0;
          for (int w = 0; w < nth / 32; ++w) {
            int live = 0, ww = 0, bw = 0;
            for (int l = 0; l < 32; ++l) {
              const State s = g_fibers[32 * w + l].state;
              live += s != kDone;
              ww += s == kWarpWait;
              bw += s == kBlockWait;
            }
            alive += live;
            at_block += bw;
            if (ww > 0 && bw > 0) die("warp split between __syncwarp and __syncthreads");
            if (ww > 0 && ww != live) die("warp barrier with exited lanes");
            if (ww > 0) {
              for (int l = 0; l < 32; ++l) g_fibers[32 * w + l].state = kRun;
              released = true;
            }
          }
          if (released) continue;
          if (alive == 0) break;
          if (at_block != alive) die("deadlock");  // named waits included: nothing else can complete them
          for (auto& f : g_fibers)
            if (f.state == kBlockWait) f.state = kRun;
        }
        for (const auto& b : g_bars)
          if (b.arrived != 0) die("a named barrier has arrivals pending at the block's end");
        for (size_t i = 0; i < canary; ++i)
          if (g_smem[smem + i] != kCanaryByte) die("a write past the block's dynamic shared memory");
        JFF_EMU_BANKS_CALL(on_block_end());
      }
}

// ---- warp collectives ----
inline int lane() { return g_cur & 31; }
inline Slot* warp_slots() { return &g_slots[g_cur & ~31]; }

inline uint16_t lo16(uint32_t x) { return static_cast<uint16_t>(x & 0xffffu); }
inline uint16_t hi16(uint32_t x) { return static_cast<uint16_t>(x >> 16); }

// (The profiler counts this lane's own 16-byte row, the instruction's access; the reads below gather the rows.)
JFF_EMU_NOSAN inline void ldmatrix_x4(uint32_t (&r)[4], const void* p, bool trans) {
  JFF_EMU_BANKS_CALL(record(p, 16, false, __builtin_return_address(0)));
  Slot* s = warp_slots();
  s[lane()].ptr = p;
  wait(kWarpWait);
  const int l = lane(), gid = l >> 2, tig = l & 3;
  for (int i = 0; i < 4; ++i) {
    uint16_t e0, e1;
    if (!trans) {
      const uint16_t* row = static_cast<const uint16_t*>(s[8 * i + gid].ptr);
      e0 = row[2 * tig];
      e1 = row[2 * tig + 1];
    } else {
      e0 = static_cast<const uint16_t*>(s[8 * i + 2 * tig].ptr)[gid];
      e1 = static_cast<const uint16_t*>(s[8 * i + 2 * tig + 1].ptr)[gid];
    }
    r[i] = static_cast<uint32_t>(e0) | (static_cast<uint32_t>(e1) << 16);
  }
  wait(kWarpWait);
}

inline uint32_t movmatrix_trans(uint32_t x) {
  Slot* s = warp_slots();
  s[lane()].w[0] = x;
  wait(kWarpWait);
  const int l = lane(), gid = l >> 2, tig = l & 3;
  // M[row][col] lives in lane row*4 + col/2, half col%2. Output lane l: M[2tig][gid], M[2tig+1][gid].
  auto at = [&](int row, int col) {
    const uint32_t v = s[row * 4 + col / 2].w[0];
    return (col & 1) ? hi16(v) : lo16(v);
  };
  const uint32_t r = static_cast<uint32_t>(at(2 * tig, gid)) | (static_cast<uint32_t>(at(2 * tig + 1, gid)) << 16);
  wait(kWarpWait);
  return r;
}

// D += A * B for one m16n8k16 product; `to_f` converts a 16-bit value to float.
inline void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, float (*to_f)(uint16_t)) {
  Slot* s = warp_slots();
  Slot& me = s[lane()];
  for (int i = 0; i < 4; ++i) me.w[i] = a[i];
  me.w[4] = b0;
  me.w[5] = b1;
  wait(kWarpWait);
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    for (int q = 0; q < 4; ++q) {
      const int row = g + 8 * (q & 1), col = 8 * (q >> 1) + 2 * t;
      A[row][col] = to_f(lo16(s[l].w[q]));
      A[row][col + 1] = to_f(hi16(s[l].w[q]));
    }
    for (int q = 0; q < 2; ++q) {
      B[8 * q + 2 * t][g] = to_f(lo16(s[l].w[4 + q]));
      B[8 * q + 2 * t + 1][g] = to_f(hi16(s[l].w[4 + q]));
    }
  }
  wait(kWarpWait);  // every lane has its copy of the operands before any slot is reused
  const int l = lane(), gid = l >> 2, tig = l & 3;
  for (int h = 0; h < 2; ++h)
    for (int e = 0; e < 2; ++e) {
      double acc = 0;
      for (int k = 0; k < 16; ++k) acc += static_cast<double>(A[gid + 8 * h][k]) * B[k][2 * tig + e];
      d[2 * h + e] = static_cast<float>(static_cast<double>(d[2 * h + e]) + acc);
    }
}

}  // namespace jff_emu

#define threadIdx (::jff_emu::tid3())
#define blockIdx (::jff_emu::g_block)
#define blockDim (::jff_emu::g_bdim)
#define gridDim (::jff_emu::g_grid)
#define __syncthreads() ::jff_emu::wait(::jff_emu::kBlockWait)
#define __syncwarp(...) ::jff_emu::wait(::jff_emu::kWarpWait)
#define JFF_DYN_SMEM(type, name) type* name = reinterpret_cast<type*>(::jff_emu::g_smem)
#define JFF_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ((void)(stream), ::jff_emu::launch(kernel, grid, block, smem, __VA_ARGS__))

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline void sincospif(float x, float* s, float* c) {
  const double a = M_PI * static_cast<double>(x);
  *s = static_cast<float>(std::sin(a));
  *c = static_cast<float>(std::cos(a));
}
// The special-function unit's sine and cosine; here the libm ones in float (the GPU's are within 2^-21
// absolute of them on [-pi, pi], the only range the kernels use).
inline void __sincosf(float x, float* s, float* c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
inline float rsqrtf(float x) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(x))); }
inline unsigned int __brev(unsigned int x) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int __ffs(int x) { return x == 0 ? 0 : __builtin_ctz(static_cast<unsigned>(x)) + 1; }
[[noreturn]] inline void __trap() {
  std::fprintf(stderr, "emulated __trap()\n");
  std::abort();
}

// The slice of cuda/fftconv/monarch_core.cuh the outer passes use, emulated (that header is
// inline PTX, which a host compiler cannot take). Same names and signatures.
namespace jff {
namespace {

template <typename T>
struct Ops;

// Both element types' Ops: the 16-bit Format's conversions, packing, the MMA and the packed arithmetic.
template <typename Format>
struct EmuOps16 {
  static float f(uint16_t h) { return Format::f(h); }
  static uint16_t h(float x) { return Format::h(x); }
  static uint32_t pack(float lo, float hi) { return static_cast<uint32_t>(h(lo)) | (static_cast<uint32_t>(h(hi)) << 16); }
  static float2 unpack(uint32_t v) { return make_float2(f(jff_emu::lo16(v)), f(jff_emu::hi16(v))); }
  static void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    jff_emu::mma_m16n8k16(d, a, b0, b1, &f);
  }
  static uint32_t mul2(uint32_t x, uint32_t y) {
    const float2 a = unpack(x), b = unpack(y);
    return pack(a.x * b.x, a.y * b.y);
  }
  // 16-bit products are exact in float, so fmaf then the 16-bit rounding is the hardware's single rounding
  // (but for float's own rounding of the sum, at ties only).
  static uint32_t fma2(uint32_t x, uint32_t y, uint32_t z) {
    const float2 a = unpack(x), b = unpack(y), c = unpack(z);
    return pack(std::fmaf(a.x, b.x, c.x), std::fmaf(a.y, b.y, c.y));
  }
  static uint32_t fms2(uint32_t x, uint32_t y, uint32_t z) {
    const float2 a = unpack(x), b = unpack(y), c = unpack(z);
    return pack(std::fmaf(a.x, b.x, -c.x), std::fmaf(a.y, b.y, -c.y));
  }
};
struct Bf16Format {
  static float f(uint16_t h) { return __bfloat162float(__ushort_as_bfloat16(h)); }
  static uint16_t h(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
};
struct F16Format {
  static float f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
  static uint16_t h(float x) { return __half_as_ushort(__float2half_rn(x)); }
};

template <>
struct Ops<__nv_bfloat16> : EmuOps16<Bf16Format> {};

template <>
struct Ops<__half> : EmuOps16<F16Format> {};

constexpr uint32_t kSignBits = 0x80008000u;

inline uint32_t movmatrix_trans(uint32_t x) { return jff_emu::movmatrix_trans(x); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) { jff_emu::ldmatrix_x4(r, p, true); }

inline float2 cmul(float2 a, float2 b) { return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }

inline uint4 load8(const uint16_t* row, int t, int L, bool vec) {
  if (vec && t + 8 <= L) {
    uint4 v;
    std::memcpy(&v, row + t, 16);
    return v;
  }
  uint32_t w[4] = {0u, 0u, 0u, 0u};
  for (int e = 0; e < 8; ++e)
    if (t + e < L) w[e >> 1] |= static_cast<uint32_t>(row[t + e]) << (16 * (e & 1));
  return make_uint4(w[0], w[1], w[2], w[3]);
}

inline void store8(uint16_t* row, int t, int L, bool vec, uint4 v) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  (void)vec;
  for (int e = 0; e < 8; ++e)
    if (t + e < L) row[t + e] = static_cast<uint16_t>(w[e >> 1] >> (16 * (e & 1)));
}

inline void store8_last(uint16_t* row, int t, int L, bool vec, uint4 v) { store8(row, t, L, vec, v); }
// The staged loads' cp.async: done at once (the waits then have nothing to wait for).
JFF_EMU_NOSAN inline void stage16(void* smem, const void* g, int bytes) {
  if (bytes < 0 || bytes > 16) jff_emu::die("cp.async src-size out of range");
  std::memcpy(smem, g, static_cast<size_t>(bytes));
  std::memset(static_cast<char*>(smem) + bytes, 0, static_cast<size_t>(16 - bytes));
}
inline void load8f(const float* row, int t, int L, bool vec, float (&f)[8]) {
  if (vec && t + 8 <= L && reinterpret_cast<uintptr_t>(row + t) % 16 != 0) jff_emu::die("load8f: misaligned vector load");
  for (int e = 0; e < 8; ++e) f[e] = t + e < L ? row[t + e] : 0.f;
}
inline void store8f_last(float* row, int t, int L, bool vec, const float (&f)[8]) {
  if (vec && t + 8 <= L && reinterpret_cast<uintptr_t>(row + t) % 16 != 0)
    jff_emu::die("store8f_last: misaligned vector store");
  for (int e = 0; e < 8; ++e)
    if (t + e < L) row[t + e] = f[e];
}
// __shfl_xor_sync of a double over the whole warp.
inline double shfl_xor_f64(double v, int mask) {
  jff_emu::Slot* s = jff_emu::warp_slots();
  std::memcpy(s[jff_emu::lane()].w, &v, sizeof v);
  jff_emu::wait(jff_emu::kWarpWait);
  double r;
  std::memcpy(&r, s[jff_emu::lane() ^ mask].w, sizeof r);
  jff_emu::wait(jff_emu::kWarpWait);
  return r;
}
// TMA box loads (common/tma.cuh): the map records the tensor, a load copies its box at once (zeros outside the
// tensor), so the barrier calls have nothing to do. The device's conditions on maps and boxes are checked.
}  // namespace
// Outside the anonymous namespace: the kernels' parameter structs (FwdMaps, InvMaps) hold it.
struct TileMap {
  const unsigned char* base = nullptr;
  uint64_t dims[3] = {}, strides[2] = {};  // strides in bytes
  uint32_t box[3] = {};
  int elem = 2;  // bytes per element
  int swizzle = 0;  // 0, 32 or 128 bytes (tma.cuh's make_tile_map)
};
namespace {
inline cudaError_t make_tile_map(TileMap* m, const void* base, int elem_bytes, const uint64_t (&dims)[3],
                                 const uint64_t (&strides)[2], const uint32_t (&box)[3], int swizzle = 0) {
  if ((elem_bytes != 2 && elem_bytes != 4) || reinterpret_cast<uintptr_t>(base) % 16 != 0 || strides[0] % 16 != 0 ||
      strides[1] % 16 != 0 || (box[0] * elem_bytes) % 16 != 0 || (swizzle != 0 && swizzle != 32 && swizzle != 128) ||
      (swizzle != 0 && box[0] * elem_bytes > uint32_t(swizzle)))
    return cudaErrorInvalidValue;
  m->elem = elem_bytes;
  m->swizzle = swizzle;
  for (int d = 0; d < 3; ++d)
    if (box[d] == 0 || box[d] > 256 || dims[d] == 0) return cudaErrorInvalidValue;
  m->base = static_cast<const unsigned char*>(base);
  for (int d = 0; d < 3; ++d) m->dims[d] = dims[d], m->box[d] = box[d];
  m->strides[0] = strides[0];
  m->strides[1] = strides[1];
  return cudaSuccess;
}
inline bool tma_encode_available() { return true; }
// Shared addresses: offsets into the emulated shared memory (the swizzle below follows their bits, as the device's
// follows the shared window's).
inline uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(static_cast<const unsigned char*>(p) - jff_emu::g_smem);
}
inline uint32_t tma_swizzle(uint32_t tile, uint32_t off, uint32_t swizzle) {
  return off ^ (((tile + off) >> 3) & (swizzle - 16u));
}
inline void mbar_init(uint64_t*) {}
inline void mbar_expect_tx(uint64_t*, uint32_t) {}
inline void mbar_wait(uint64_t*, uint32_t) {}
JFF_EMU_NOSAN inline void tma_load_3d(void* dst, const TileMap& m, int c0, int c1, int c2, uint64_t*) {
  if ((static_cast<unsigned char*>(dst) - jff_emu::g_smem) % (m.swizzle == 128 ? 1024 : 128) != 0)
    jff_emu::die("TMA destination not 128-byte aligned (1024 with the 128-byte swizzle)");
  unsigned char* const d0 = static_cast<unsigned char*>(dst);
  uint32_t off = 0;  // byte offset of the element in the dense box
  for (uint32_t z = 0; z < m.box[2]; ++z)
    for (uint32_t y = 0; y < m.box[1]; ++y)
      for (uint32_t x = 0; x < m.box[0]; ++x, off += m.elem) {
        unsigned char* d = d0 + (m.swizzle != 0 ? tma_swizzle(smem_addr(d0), off, m.swizzle) : off);
        const int64_t X = int64_t(c0) + x, Y = int64_t(c1) + y, Z = int64_t(c2) + z;
        const bool in = X >= 0 && Y >= 0 && Z >= 0 && uint64_t(X) < m.dims[0] && uint64_t(Y) < m.dims[1] &&
                        uint64_t(Z) < m.dims[2];
        if (in) {
          std::memcpy(d, m.base + Z * m.strides[1] + Y * m.strides[0] + X * m.elem, m.elem);
        } else {
          std::memset(d, 0, m.elem);
        }
      }
}
// TMA box stores: the box is copied out at once (coordinates outside the tensor dropped).
JFF_EMU_NOSAN inline void tma_store_3d(const TileMap& m, int c0, int c1, int c2, const void* src) {
  if ((static_cast<const unsigned char*>(src) - jff_emu::g_smem) % 128 != 0)
    jff_emu::die("TMA store source not 128-byte aligned");
  if (m.swizzle != 0) jff_emu::die("swizzled TMA store not emulated");
  const unsigned char* s = static_cast<const unsigned char*>(src);
  unsigned char* base = const_cast<unsigned char*>(m.base);
  for (uint32_t z = 0; z < m.box[2]; ++z)
    for (uint32_t y = 0; y < m.box[1]; ++y)
      for (uint32_t x = 0; x < m.box[0]; ++x, s += m.elem) {
        const int64_t X = int64_t(c0) + x, Y = int64_t(c1) + y, Z = int64_t(c2) + z;
        if (X >= 0 && Y >= 0 && Z >= 0 && uint64_t(X) < m.dims[0] && uint64_t(Y) < m.dims[1] && uint64_t(Z) < m.dims[2])
          std::memcpy(base + Z * m.strides[1] + Y * m.strides[0] + X * m.elem, s, m.elem);
      }
}
inline void tma_store_fence() {}
inline void tma_store_wait_read() {}
inline void tma_store_wait_all() {}
inline void stage_commit() {}
template <int Pending>
inline void stage_wait() {}

template <typename T>
inline void unpack8(uint4 v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  for (int i = 0; i < 4; ++i) {
    const float2 p = Ops<T>::unpack(w[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}
template <typename T>
inline uint4 pack8(const float (&f)[8]) {
  return make_uint4(Ops<T>::pack(f[0], f[1]), Ops<T>::pack(f[2], f[3]), Ops<T>::pack(f[4], f[5]),
                    Ops<T>::pack(f[6], f[7]));
}

}  // namespace
}  // namespace jff
