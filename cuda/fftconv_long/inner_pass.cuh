// Inner step of the long fftconv (N = N1 * N2 > 32K; math and layout in benchmarks/notes_long.md
// sections 2-3, index maps in long_plan.h), between outer_forward and outer_inverse:
//
//   inner_forward: for every workspace row, in place,
//       rows 1 <= k1 < N1/2:  Q = IDFT_N2(DFT_N2(P) .* K'[k1 + N1 k2])      (unitary DFTs)
//       row 0 (a = Re P[0], b = Im P[0], two real signals):
//           Re Q[0] = IDFT(DFT(a) .* K'[N1 k2])                       (cyclic)
//           Im Q[0] = Re( conj(w_2N2^n2) IDFT(DFT(b w_2N2^n2) .* K'[N1/2 + N1 k2]) )  (negacyclic)
//     Work items per signal row: j = 0 (row 0's a), 1 .. N1/2-1 (rows k1 = j), N1/2 (row 0's b);
//     items j = 0 and N1/2 read and write different planes of row 0, so they run independently.
//   inner_kspec: the (N1/2 + 1) filter slices of every (g, h), from k (G*H, Lk) fp32 and an optional
//     skip folded into every bin, stored in fp32, or in bf16 for bf16 data (kspec_bf16, below). Slice j belongs to item j (A, rows 1.., B). Each
//     slice is stored exactly as monarch_kspec_kernel stores one N2-point spectrum (frequency
//     k2 = k0 + N0*km at float 2*RAD^2*k0 + spec_float_offset<RAD>(km),
//     N2 = N0 * RAD^2 as dispatch_n splits it), so the fused kernel's lanes read it unchanged.
//     Computed as the notes say: the outer forward pass on k into a scratch workspace, then an N2-point DFT per
//     scratch row, times sqrt(N1) (undoes the two unitary scalings: khat[k1 + N1 k2] = sqrt(N1) * DFT_N2(P[k1])[k2]),
//     + skip. For bf16 slices up to N2 = 8192 (kspec_ws_bf16) the scratch is bf16 and both steps run on tensor cores
//     (the pass over k at N1 >= 32: kspec_tc; the slice DFTs: inner_kspec_tc_kernel); otherwise the scratch is fp32,
//     the pass over k fp32 on CUDA cores and the slice DFTs fp32 on CUDA cores (inner_kspec_kernel).
//
// Two implementations of inner_forward:
//   * tensor cores (bf16/fp16, N2 in {256, 1024, 4096, 8192, 16384, 32768}): the fused kernel's
//     machinery from monarch_core.cuh, reused by #include: one CTA per item, the row in shared
//     memory as two 16-bit planes (sig_off layout), outer_dft over N0 (N0 >= 16), the RAD^2-point
//     routine dft_pair / mul_spec / idft_pair / store_inner_row per row k0, outer_idft. That is
//     monarch_fwd_big_kernel without gates and with a complex row in place of a row pair: the
//     routine is complex-linear, so the pair trick's "two real rows" are just Re and Im here.
//   * CUDA cores (fp32 workspace, N2 in 256 .. 16384: the row and its twiddles in shared memory):
//     radix-2 FFT, product, radix-2 inverse in fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "fftconv_long/long_plan.h"
#include "fftconv_long/outer_pass.cuh"

#ifdef JFF_LONG_EMU
#include "fftconv_long/emu_core.h"  // monarch_core.cuh itself, with emulated PTX primitives
#else
#include "fftconv/monarch_core.cuh"
#endif

namespace jff {
namespace longconv {

struct InnerArgs {
  Elem dtype;
  void* ws;            // nrows signal rows, N1/2 packed complex rows each (ws_offset), 16-byte aligned
  const void* kspec;   // inner_kspec's output for (G, H), in kspec_bf16(dtype)'s element type
  int64_t row0, nrows; // ws row r is signal row row0 + r = b * H + h, filter ((b / R) % G, h)
  int64_t H, G, R;
  int N1;
  int64_t N2;
};

struct KspecArgs {
  const float* k;     // (GH, Lk) fp32
  const float* skip;  // (GH) or nullptr
  void* kspec;        // kspec_bytes(GH, N1, N2, bf16), 16-byte aligned
  float* scratch;     // kspec_scratch_bytes(GH, N1, N2): the outer forward of k
  int64_t GH, Lk;
  int N1;
  int64_t N2;
  bool bf16 = false;  // slices in bf16 (kspec_bf16 of the data's dtype), else fp32
};

// K' in bf16 for bf16 data: the inner steps read K' once per signal row (B times per filter; the
// forward's inner step moves the workspace and K', 3.2 + 3.2 GB at 1M, B=1, H=768), so bf16 slices take
// a quarter off that step's traffic and half off the slices' writes. bf16 rounding of K' (relative 2^-9)
// is below that of the bf16 workspace it multiplies, as in the fused kernel (KSpecOf); fp16 data (a 4x
// tighter error bar) and fp32 data keep fp32 slices. 0: fp32 slices for every dtype (A/B runs).
// H200, session 22 (kernel bench, bf16 against fp32 slices of the session before): inner step 1M 2.109 ->
// 2.030 ms, 4M 2.304 -> 2.222, 16M 3.177 -> 2.935; slices 1M 5.40 -> 5.33, 16M 9.68 -> 8.95, but 4M (N2 = 8192)
// 6.95 -> 9.26: there the slice kernel's whole-slice store (S == 1) at N0 = 32 had each lane write 8 bytes
// 1 KB from its neighbour's. Session 23: two slots per thread (one 16-byte store) and bf16 slices at every N2,
// against fp32 at 8192 / 16384 with the one-slot store (kernel bench, H200): slices 256K 1.72 -> 1.53 ms, 1M
// 5.34 -> 5.14, 4M 6.87 -> 6.13, 8M 8.26 -> 8.30; inner step 4M 2.29 -> 2.22, 8M 2.84 -> 2.68. (The one-slot store
// is gone; the A/B: results/logs/nvidia-h200-long-ab-session23.log.)
#ifndef JFF_LONG_KSPEC_BF16
#define JFF_LONG_KSPEC_BF16 1
#endif
constexpr bool kKspecBf16 = JFF_LONG_KSPEC_BF16 != 0;
// JFF_LONG_KSPEC_WS_BF16 (default 1): with bf16 slices, the outer pass on k writes its scratch workspace in bf16
// (fp32 arithmetic, one rounding per value) and the slice kernel reads that: a quarter of the filter spectrum's
// bytes (k 4, scratch 4 + 4, slices 2 bytes per value -> 4, 2 + 2, 2). The slices then carry two bf16 roundings
// instead of one. 0: an fp32 scratch. H200, session 23 (kernel bench, two rounds): filter spectrum 1M 5.14/5.16 ->
// 4.92/4.93 ms, 4M (H=192) 6.14/6.13 -> 5.98/5.96, 256K 1.54/1.53 -> 1.51/1.52; the outer pass on k itself did not
// get faster (1M 2.78 ms either way: its stores are not what bounds it), the slice kernel's halved reads did.
#ifndef JFF_LONG_KSPEC_WS_BF16
#define JFF_LONG_KSPEC_WS_BF16 1
#endif
constexpr bool kKspecWsBf16 = JFF_LONG_KSPEC_WS_BF16 != 0;
// With the bf16 scratch, the outer pass over k runs on tensor cores (outer_tc.cuh's F32IN instance: k rounded to bf16
// as it is loaded, 16-bit DFT operands, fp32 accumulation) at N1 >= 32, else the fp32 CUDA-core pass. The slices then
// carry the 16-bit forward pass's roundings (emulated --inner: K' rel-L2 1.9-2.3e-3 -> 2.3-2.9e-3, pipeline +2-7%).
// H200, session 24 (outer_selftest --bench, two rounds, filter spectrum ms, CUDA-core -> tensor-core pass over k):
// 256K (N1 = 32, B=4) 1.526 / 1.524 -> 1.337 / 1.335, 1M (256) 4.910 / 4.902 -> 4.748 / 4.736, 4M (512, H=192)
// 5.975 / 5.965 -> 5.688 / 5.686; 64K (16) 0.320 / 0.325 -> 0.346 / 0.345 (there the pass over k is 0.15 ms
// against 0.17: the unstaged tensor-core load loses, as the bf16 forward's did before its staging), so N1 = 16
// keeps the CUDA-core pass. JFF_LONG_KSPEC_TC = 0 / 1 forces one choice at every N1.
#ifndef JFF_LONG_KSPEC_TC
#define JFF_LONG_KSPEC_TC -1
#endif
constexpr bool kspec_tc(int N1) { return tc::per_size(JFF_LONG_KSPEC_TC, N1 >= 32) != 0; }
inline bool kspec_bf16(Elem data) { return data == Elem::kBF16 && kKspecBf16; }

inline size_t kspec_bytes(int64_t GH, int N1, int64_t N2, bool bf16 = false) {
  return static_cast<size_t>(GH) * static_cast<size_t>(N1 / 2 + 1) * static_cast<size_t>(N2) * 2 *
         (bf16 ? sizeof(uint16_t) : sizeof(float));
}
inline size_t kspec_scratch_bytes(int64_t GH, int N1, int64_t N2) {
  return workspace_bytes(Elem::kF32, GH, N1, N2);
}

namespace inner {

#ifdef JFF_LONG_EMU
using BF16 = jff_emu::EmuBF16;  // see emu_core.h
using F16 = jff_emu::EmuF16;
#else
using BF16 = __nv_bfloat16;
using F16 = __half;
#endif

// Float offset of inner frequency k2 inside one slice (the fused kernel's spectrum order).
__host__ __device__ __forceinline__ int64_t slice_offset(int64_t k2, int N0, int RAD) {
  const int M = RAD * RAD;
  const int k0 = static_cast<int>(k2 % N0), km = static_cast<int>(k2 / N0);
  const int f = RAD == 16 ? spec_float_offset<16>(km) : spec_float_offset<32>(km);
  return int64_t(2) * M * k0 + f;
}

// (N0, RAD) of the fused decomposition N2 = N0 * RAD^2 (false for sizes it has none for).
inline bool split_n2(int64_t N2, int* N0, int* RAD) {
  return dispatch_n(N2, [&](auto n0, auto rad) {
    *N0 = n0();
    *RAD = rad();
  });
}

// Filter slice of item j of signal row `grow`, as N2 / 2 lane slots of two bins (float4: fp32, uint2: bf16).
template <typename Slot>
__device__ __forceinline__ const Slot* slice_of(const void* kspec, int64_t grow, int j, int64_t H, int64_t G,
                                                int64_t R, int M1, int64_t N2) {
  const int64_t b = grow / H, h = grow - b * H, g = group_of(b, R, G);
  return static_cast<const Slot*>(kspec) + ((g * H + h) * (M1 + 1) + j) * (N2 / 2);
}

// The slot type of the tensor-core inner kernel's K' for data of type T (kspec_bf16).
template <typename T>
using KSlotOf = std::conditional_t<kKspecBf16, typename KSpecOf<T>::Slot, float4>;

// w_2N2^n = exp(-i pi n / N2): the twist of row 0's imaginary half (row N1/2's outer twiddle).
// n / N2 is exact in float (N2 a power of two), so sincospif rounds once.
__device__ __forceinline__ float2 twist(int64_t n, int64_t N2) {
  float s, c;
  sincospif(-static_cast<float>(n) / static_cast<float>(N2), &s, &c);
  return make_float2(c, s);
}

// ---------------------------------------------------------------------------------------
// Tensor-core inner kernel.
// ---------------------------------------------------------------------------------------
struct TcParams {
  void* ws;
  const void* kspec;
  int64_t row0, nrows, H, G, R;
  int N1;
  ItemOrder order;
};

// Warps per CTA: enough to share the N0 inner rows; 32768 (128 KB of row) fits one CTA per SM
// and gets 8 (as the fused kernel's big_warps).
constexpr int tc_warps(int N0, int RAD) { return N0 == 1 ? 1 : (N0 * RAD * RAD == 32768 ? 8 : 4); }

// CONJ: multiply by conj(K') instead (the backward's correlation, inner_forward_conj).
// Elements (the tensor-core inner kernel: 16-byte chunks) a thread loads per round before using
// any, where a kernel reads its item from the workspace: one per loop iteration kept one or two
// loads per thread in flight, the loop's shared-memory stores waiting for them. The inner kernel
// takes it at RAD = 32 only (N2 >= 16K: 1-2 CTAs per SM at 249-255 registers, which the extra
// registers do not change); its RAD = 16 variants run 4-7 CTAs per SM, which a round of 4 would
// cut to 3-4 (70-96 -> 100-144 registers). A/B: -DJFF_LONG_LOAD_ROUND=1 (one per iteration, as before).
#ifndef JFF_LONG_LOAD_ROUND
#define JFF_LONG_LOAD_ROUND 4
#endif
constexpr int kLoadRound = JFF_LONG_LOAD_ROUND;
constexpr int inner_load_round(int RAD) { return RAD == 32 ? kLoadRound : 1; }

// The tensor-core inner kernels' item loads (load_item_planes) as 16-byte cp.async copies straight into the planes:
// all of a thread's chunks in flight at once (8 at N2 = 4096 with 4 warps, 16 KB per CTA) and no registers held
// for them, where the register loads keep inner_load_round(RAD) chunks per thread in flight (one at RAD = 16:
// 4 KB per CTA). Item M1's twist is applied in place once the thread's own copies have landed. H200, bf16, ms, best
// of two rounds (session 36; register loads -> cp.async): the backward's bwd_inner_tc_kernel 64K 4.536 -> 3.930,
// 256K 4.904 -> 4.388, 1M 4.110 -> 3.727, 4M 4.698 -> 4.011; the forward's inner pass (outer_selftest --bench)
// 64K 1.828 -> 1.806, 1M 1.859 -> 1.845, 4M 2.067 -> 1.938 (f16 1M 2.051 -> 1.986). 0 turns it off.
#ifndef JFF_LONG_INNER_STAGE
#define JFF_LONG_INNER_STAGE 1
#endif
constexpr bool kInnerStage = JFF_LONG_INNER_STAGE != 0;
// The next item's planes prefetched into L2 (one bulk prefetch per plane, sm_90) once this item's load is in
// shared memory, so that its load after this item's transforms finds them in L2. Lost with the cp.async loads
// (session 36, same runs: bwd_inner_tc_kernel 64K 3.930 -> 4.358, 4M 4.011 -> 4.197): off, 1 turns it on.
#ifndef JFF_LONG_INNER_PREFETCH
#define JFF_LONG_INNER_PREFETCH 0
#endif
constexpr bool kInnerPrefetch = JFF_LONG_INNER_PREFETCH != 0;

// The sources of item j's two shared-memory planes (load_item_planes): a, the real part's (j = M1: the partner's
// Im P[0] at pw + N2), b, the imaginary part's (j = 0: the partner's Re P[0] at pw); nullptr where zero.
template <typename T, int N2>
struct ItemSources {
  const T* a;
  const T* b;
  __device__ __forceinline__ ItemSources(const T* wre, const T* wim, int j, int M1, const T* pw)
      : a(j < M1 ? wre : (pw != nullptr ? pw + N2 : nullptr)), b(j > 0 ? wim : pw) {}
};

// One bulk L2 prefetch per source plane of an item (JFF_LONG_INNER_PREFETCH; one thread); nothing before sm_90.
template <typename T, int N2>
__device__ __forceinline__ void prefetch_item_planes(const ItemSources<T, N2>& src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr uint32_t kBytes = N2 * sizeof(T);
  for (const T* q : {src.a, src.b})
    if (q != nullptr) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(q), "r"(kBytes) : "memory");
#else
  (void)src;
#endif
}

// (b + i b') w_2N2^n of one chunk at t, b = Im P[0] (x's imaginary plane), b' the partner's (its real plane).
template <typename T, int N2>
__device__ __forceinline__ void twist_chunk(uint4& xr, uint4& xi, int t) {
  float v[8], c[8], br[8], bi[8];
  unpack8<T>(xi, v);
  unpack8<T>(xr, c);
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float2 w = twist(t + e, N2);
    br[e] = v[e] * w.x - c[e] * w.y;
    bi[e] = v[e] * w.y + c[e] * w.x;
  }
  xr = pack8<T>(br);
  xi = pack8<T>(bi);
}

// JFF_LONG_INNER_STAGE: a thread's cp.async copies of the chunks load_item_planes gives it (zero-filled where a
// source is nullptr); no commit.
template <typename T, int N2, int RAD, int NTH>
__device__ __forceinline__ void stage_item_planes(const ItemSources<T, N2>& src, T* sre, T* sim, int tid) {
  const T* const any = src.a != nullptr ? src.a : src.b;  // a valid address for the zero-filling copies
  for (int c = tid; c < N2 / 8; c += NTH) {
    const int t = 8 * c, off = chunk_sig_off<RAD>(t);
    stage16(sre + off, src.a != nullptr ? src.a + t : any, src.a != nullptr ? 16 : 0);
    stage16(sim + off, src.b != nullptr ? src.b + t : any, src.b != nullptr ? 16 : 0);
  }
}
// After the thread's stage_wait: item M1's twist on the chunks it copied itself (no barrier needed).
template <typename T, int N2, int RAD, int NTH>
__device__ __forceinline__ void twist_staged_planes(int j, int M1, T* sre, T* sim, int tid) {
  if (j != M1) return;
  for (int c = tid; c < N2 / 8; c += NTH) {
    const int t = 8 * c, off = chunk_sig_off<RAD>(t);
    uint4 xr = *reinterpret_cast<const uint4*>(sre + off), xi = *reinterpret_cast<const uint4*>(sim + off);
    twist_chunk<T, N2>(xr, xi, t);
    *reinterpret_cast<uint4*>(sre + off) = xr;
    *reinterpret_cast<uint4*>(sim + off) = xi;
  }
}

// Item j's complex row of a workspace (wre / wim: the row's two planes, N2 elements each) into the shared-memory
// planes (16-byte chunks, sig_off layout): rows 0 < j < M1 as they are; j = 0: Re P[0], j = M1: Im P[0] twisted by
// w_2N2^n, each with the partner row's (pw: its row 0, real plane at pw, imaginary at pw + N2; ItemOrder's pairs) as
// the imaginary part, or zero without a partner. inner_load_round(RAD) chunks a thread per round with all their
// loads issued first: one chunk per iteration kept a thread's two loads alone in flight (the loop's shared-memory
// stores wait for them), about 8 KB per SM with the 32K kernel's 8 warps. JFF_LONG_INNER_STAGE: cp.async copies
// instead (stage_item_planes). The caller syncs after.
template <typename T, int N2, int RAD, int NTH>
__device__ __forceinline__ void load_item_planes(const T* wre, const T* wim, int j, int M1, T* sre, T* sim, int tid,
                                                 const T* pw) {
  const ItemSources<T, N2> src(wre, wim, j, M1, pw);
  if constexpr (kInnerStage) {
    stage_item_planes<T, N2, RAD, NTH>(src, sre, sim, tid);
    stage_commit();
    stage_wait<0>();
    twist_staged_planes<T, N2, RAD, NTH>(j, M1, sre, sim, tid);
    return;
  }
  constexpr int kInnerLoadRound = inner_load_round(RAD);
  const T* const pa = src.a;
  const T* const pb = src.b;
  for (int c0 = tid; c0 < N2 / 8; c0 += kInnerLoadRound * NTH) {
    uint4 a[kInnerLoadRound], b[kInnerLoadRound];
#pragma unroll
    for (int i = 0; i < kInnerLoadRound; ++i) {
      const int t = 8 * (c0 + i * NTH);
      if (t < N2) {
        a[i] = pa != nullptr ? *reinterpret_cast<const uint4*>(pa + t) : make_uint4(0u, 0u, 0u, 0u);
        b[i] = pb != nullptr ? *reinterpret_cast<const uint4*>(pb + t) : make_uint4(0u, 0u, 0u, 0u);
      }
    }
#pragma unroll
    for (int i = 0; i < kInnerLoadRound; ++i) {
      const int t = 8 * (c0 + i * NTH);
      if (t >= N2) continue;
      const int off = chunk_sig_off<RAD>(t);
      uint4 xr = a[i], xi = b[i];
      if (j == M1) twist_chunk<T, N2>(xr, xi, t);
      *reinterpret_cast<uint4*>(sre + off) = xr;
      *reinterpret_cast<uint4*>(sim + off) = xi;
    }
  }
}

// The inverse of load_item_planes: the planes back in place into item j's row, the whole row, or row 0's real plane
// (j = 0: Re z, the partner's Im z) / imaginary plane (j = M1: Re(z conj(w_2N2^n)), the partner's Im of it).
template <typename T, int N2, int RAD, int NTH>
__device__ __forceinline__ void store_item_planes(T* wre, T* wim, int j, int M1, const T* sre, const T* sim, int tid,
                                                  T* pw) {
  for (int c = tid; c < N2 / 8; c += NTH) {
    const int t = 8 * c;
    const int off = chunk_sig_off<RAD>(t);
    const uint4 zr = *reinterpret_cast<const uint4*>(sre + off);
    const uint4 zi = *reinterpret_cast<const uint4*>(sim + off);
    if (j < M1) *reinterpret_cast<uint4*>(wre + t) = zr;
    if (j > 0 && j < M1) *reinterpret_cast<uint4*>(wim + t) = zi;
    if (j == 0 && pw != nullptr) *reinterpret_cast<uint4*>(pw + t) = zi;
    if (j == M1) {
      float a[8], b[8], o[8], o2[8];
      unpack8<T>(zr, a);
      unpack8<T>(zi, b);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float2 w = twist(t + e, N2);
        o[e] = a[e] * w.x + b[e] * w.y;
        o2[e] = b[e] * w.x - a[e] * w.y;
      }
      *reinterpret_cast<uint4*>(wim + t) = pack8<T>(o);
      if (pw != nullptr) *reinterpret_cast<uint4*>(pw + N2 + t) = pack8<T>(o2);
    }
  }
}

// CTAs per SM inner_tc_kernel's registers leave room for at N2 = 4096 (N0 = RAD = 16, 4 warps, ~22 KB of shared
// memory: 10 would fit): JFF_LONG_INNER_MINB = 7, i.e. at most 72 registers, as it ran until session 34, when
// store_inner_row's unconditional untwist and outer_dft's twiddle recurrence took it to 76 (6 CTAs); at 72 ptxas
// spills 16 bytes (a few local accesses per item, outside the row loop). Not yet timed; 0: no bound (the other
// sizes).
#ifndef JFF_LONG_INNER_MINB
#define JFF_LONG_INNER_MINB 7
#endif
template <int N0, int RAD, int WARPS>
constexpr int inner_tc_min_blocks() {
  return N0 == 16 && RAD == 16 && WARPS == 4 ? JFF_LONG_INNER_MINB : 0;
}

template <typename T, int N0, int RAD, int WARPS, bool CONJ = false>
__global__ void __launch_bounds__(WARPS * 32, inner_tc_min_blocks<N0, RAD, WARPS>())
    inner_tc_kernel(const TcParams p) {
  using S = BigShape<N0, RAD>;
  constexpr int M = S::M, N2 = S::N, MT = S::MT, KS = S::KS, NT = S::NT, NTH = WARPS * 32;
  static_assert(N0 == 1 || N0 >= 16, "N0 = 2 (N2 = 2048) needs the fused kernel's butterfly, not here");
  JFF_DYN_SMEM(uint4, smem_raw);
  BigSmem<T, N0, RAD> sm(smem_raw);
  T* const sre = sm.sre;
  T* const sim = sm.sim;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  sm.init(tid, NTH);
  __syncthreads();
  const TwN<N2> twN = sm.twN;
  const int M1 = p.N1 / 2;
  const int64_t items = p.order.count(p.nrows);
  T* const ws = static_cast<T*>(p.ws);

  // Item `item`'s row r, item j, its planes (wre; wim = wre + N2) and the pair's other row 0 (pw, or nullptr).
  auto item_rows = [&](int64_t item, int64_t* r, int* j, T** wre, T** pw) {
    int64_t r2;
    p.order(item, r, j, &r2);
    *wre = ws + ws_offset(*r, *j == M1 ? 0 : *j, 0, 0, p.N1, N2);
    *pw = r2 >= 0 ? ws + ws_offset(r2, 0, 0, 0, p.N1, N2) : nullptr;
  };
  for (int64_t item = blockIdx.y; item < items; item += gridDim.y) {
    int64_t r;
    int j;
    T *wre, *pw;
    item_rows(item, &r, &j, &wre, &pw);
    T* const wim = wre + N2;
    using KSlot = KSlotOf<T>;
    const KSlot* kbase = slice_of<KSlot>(p.kspec, p.row0 + r, j, p.H, p.G, p.R, M1, N2);

    load_item_planes<T, N2, RAD, NTH>(wre, wim, j, M1, sre, sim, tid, pw);
    __syncthreads();
    if constexpr (kInnerPrefetch) {
      if (tid == 0 && item + gridDim.y < items) {
        int64_t rn;
        int jn;
        T *wn, *pn;
        item_rows(item + gridDim.y, &rn, &jn, &wn, &pn);
        prefetch_item_planes(ItemSources<T, N2>(wn, wn + N2, jn, M1, pn));
      }
    }

    if constexpr (S::kMmaOuter) {
      outer_dft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, twN, N0 / 16, warp, lane);
      __syncthreads();
    }
    {
      uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
      load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
      for (int k0 = warp; k0 < N0; k0 += WARPS) {
        T* bre = sre + k0 * M;
        T* bim = sim + k0 * M;
        const int key = (k0 & 7) << 3;
        const KSlot* kk = kbase + k0 * (M / 2);
#ifndef JFF_LONG_EMU
        prefetch_k_l1<RAD>(kk, lane);  // K is needed after two products; a hint only (no-op emulated)
#endif
        float Yr[MT][NT][4], Yi[MT][NT][4];
        dft_pair<T, RAD>(bre, bim, nullptr, nullptr, key, Fr, Fi, sm.tw, lane, Yr, Yi);
        {
          SpecFrags<RAD> Pr, Pi;
          mul_spec<T, RAD, CONJ>(Yr, Yi, kk, lane, Pr, Pi);
          idft_pair<T, RAD>(Pr, Pi, Fr, Fi, sm.tw, lane, Yr, Yi);
        }
        __syncwarp();  // the row's step-1 reads are done before any lane overwrites it
        store_inner_row<T, N0, RAD>(bre, bim, key, k0, twN, Yr, Yi, lane);
        __syncwarp();
      }
    }
    __syncthreads();
    if constexpr (S::kMmaOuter) {
      outer_idft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, N0 / 16, warp, lane);
      __syncthreads();
    }

    store_item_planes<T, N2, RAD, NTH>(wre, wim, j, M1, sre, sim, tid, pw);
    __syncthreads();  // the next item's load overwrites the planes
  }
}

// ---------------------------------------------------------------------------------------
// CUDA-core pieces (fp32): a CTA-wide FFT in shared memory.
// ---------------------------------------------------------------------------------------

// (common/smem_fft.cuh, shared with the fused path's k-spectrum kernel.)
using smem_fft::fft_smem;
using smem_fft::fft_smem_fixed;
using smem_fft::kFftValsPerThread;

// The item's input value at n (fp32 workspace row; row 0's halves as in the tensor-core kernel).
// For inner_cc_kernel, which transforms its row in place (plain loads); read-only rows go
// through load_items_vec below.
__device__ __forceinline__ float2 item_input(const float* wre, const float* wim, int j, int M1, int64_t n,
                                             int64_t N2) {
  if (j > 0 && j < M1) return make_float2(wre[n], wim[n]);
  if (j == 0) return make_float2(wre[n], 0.f);
  const float b = wim[n];
  const float2 w = twist(n, N2);
  return make_float2(b * w.x, b * w.y);
}

// 16-byte vectors of workspace elements: V values of P per load.
template <typename P>
struct Vec16 {
  static constexpr int V = 16 / static_cast<int>(sizeof(P));
  // The V floats of one 16-byte load (16-bit types: monarch_core.cuh's unpack8).
  static __device__ __forceinline__ void unpack(const uint4& q, float (&out)[V]) {
    if constexpr (sizeof(P) == 4) {
      out[0] = __uint_as_float(q.x);
      out[1] = __uint_as_float(q.y);
      out[2] = __uint_as_float(q.z);
      out[3] = __uint_as_float(q.w);
    } else {
      unpack8<P>(q, out);
    }
  }
};

// Item j's inputs (as item_input) of K read-only workspace rows (real plane at re[k], imaginary at
// re[k] + N2) at the V = Vec16<P>::V positions n = q V .. q V + V - 1 of each vector
// q = q0 + c * stride, c < C, q < count: one 16-byte load per plane and vector, all C * K * 2 of them
// issued before any value is formed (predicated as item_input's branches). Then use(c, k, n, x) gets
// vector c of row k, its first position n and its V values. The element loads this replaced (4 of
// 2-4 bytes per row and plane in flight) left dk_spec_kernel waiting on DRAM: ncu at 1M bf16
// (session 21) put 53% of its stall cycles on L1TEX scoreboard waits in its load loop, DRAM at 20%.
// The planes must be 16-byte aligned (workspace rows are: N2 >= 256 elements).
template <int C, int K, typename P, typename Use>
__device__ __forceinline__ void load_items_vec(const P* const (&re)[K], int j, int M1, int q0, int stride, int count,
                                               int64_t N2, Use&& use) {
  constexpr int V = Vec16<P>::V;
  const bool has_re = j < M1, has_im = j > 0;
  uint4 a[C][K], b[C][K];
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int q = q0 + c * stride;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      a[c][k] = b[c][k] = make_uint4(0u, 0u, 0u, 0u);
      if (q < count) {
        if (has_re) a[c][k] = __ldg(reinterpret_cast<const uint4*>(re[k]) + q);
        if (has_im) b[c][k] = __ldg(reinterpret_cast<const uint4*>(re[k] + N2) + q);
      }
    }
  }
#pragma unroll
  for (int c = 0; c < C; ++c) {
    const int q = q0 + c * stride;
    if (q >= count) continue;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      float fa[V], fb[V];
      Vec16<P>::unpack(a[c][k], fa);
      Vec16<P>::unpack(b[c][k], fb);
      float2 x[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        if (j < M1) {
          x[e] = make_float2(fa[e], fb[e]);
        } else {  // j = M1: b w_2N2^n, b = Im P[0]
          const float2 w = twist(int64_t(q) * V + e, N2);
          x[e] = make_float2(fb[e] * w.x, fb[e] * w.y);
        }
      }
      use(c, k, q * V, x);
    }
  }
}

// Stores V consecutive values at z[n] (n a multiple of V, z 16-byte aligned) as float4 pairs.
template <int V>
__device__ __forceinline__ void store_pairs(float2* z, int n, const float2 (&x)[V]) {
  float4* d = reinterpret_cast<float4*>(z + n);
#pragma unroll
  for (int e = 0; e < V / 2; ++e) d[e] = make_float4(x[2 * e].x, x[2 * e].y, x[2 * e + 1].x, x[2 * e + 1].y);
}

// Stores item j's value at n: the inverse of item_input (row 0's real plane from item 0, its
// imaginary plane untwisted from item N1/2).
// W: float, or bf16 (dk's workspace for 16-bit data, OuterInvArgs::ws_bf16).
template <typename W>
__device__ __forceinline__ void item_store(W* wre, W* wim, int j, int M1, int64_t n, int64_t N2, float2 v) {
  using E = cc::Elt<W>;
  if (j > 0 && j < M1) {
    wre[n] = E::st(v.x);
    wim[n] = E::st(v.y);
  } else if (j == 0) {
    wre[n] = E::st(v.x);
  } else {
    const float2 w = twist(n, N2);
    wim[n] = E::st(v.x * w.x + v.y * w.y);
  }
}

struct CcParams {
  float* ws;
  const void* kspec;  // fp32 slices
  int64_t row0, nrows, H, G, R;
  int N1, lgN2, N0, RAD;
  float ksign;  // +1: K', -1: conj(K') (inner_forward_conj)
  ItemOrder order;
};

// fp32 inner step, one CTA per item: forward FFT, product with the slice (and 1/N2, the two
// unitary scalings), inverse FFT, store.
// Threads of the fp32 inner step's CTA for N2 = 2^LG: kFftValsPerThread values each, at least 256.
constexpr int cc_threads(int lg) { return (1 << lg) / kFftValsPerThread > 256 ? (1 << lg) / kFftValsPerThread : 256; }

template <int LGN2>
__global__ void __launch_bounds__(cc_threads(LGN2), LGN2 <= 12 ? 3 : 1) inner_cc_kernel(const CcParams p) {
  JFF_DYN_SMEM(float2, z);
  constexpr int N2 = 1 << LGN2;
  const int tid = threadIdx.x, nth = blockDim.x;
  const int M1 = p.N1 / 2;
  const float inv_n = 1.0f / static_cast<float>(N2);
  int64_t r, r2;  // one item per CTA (launch_per_unit); the fp32 order has no pairs (r2 = -1)
  int j;
  p.order(blockIdx.x, &r, &j, &r2);
  float* wre = p.ws + ws_offset(r, j == M1 ? 0 : j, 0, 0, p.N1, N2);
  float* wim = wre + N2;
  const float* ks = reinterpret_cast<const float*>(slice_of<float4>(p.kspec, p.row0 + r, j, p.H, p.G, p.R, M1, N2));
  for (int n = tid; n < N2; n += nth) z[n] = item_input(wre, wim, j, M1, n, N2);
  __syncthreads();
  fft_smem_fixed<LGN2>(z, false, tid, nth);
  for (int i = tid; i < N2; i += nth) {
    const float* ki = ks + slice_offset(i, p.N0, p.RAD);
    const float2 x = z[i];
    const float kr = ki[0], kim = p.ksign * ki[1];
    z[i] = make_float2((x.x * kr - x.y * kim) * inv_n, (x.x * kim + x.y * kr) * inv_n);
  }
  __syncthreads();
  fft_smem_fixed<LGN2>(z, true, tid, nth);
  for (int n = tid; n < N2; n += nth) item_store(wre, wim, j, M1, n, N2, z[n]);
}

// w_D^e for a power of two D and 0 <= e < 2^31: tc::wpow's value (the same sincospif of the same exact
// multiple of 2/D) with the reduction in 32-bit integers instead of a 64-bit modulo.
// The division by D is a multiplication by 2^-log2(D), built from its exponent bits: the same exact value
// (a power-of-two scaling of an integer below 2^24) without the ~10-instruction float division the
// compiler emits for a run-time divisor, on hot loops of dk_spec_kernel, dk_combine_kernel and the slice kernel.
__device__ __forceinline__ float2 w_pow2(int e, int D) {
  float s, c;
  const float inv_d = __uint_as_float(static_cast<unsigned>(127 - (__ffs(D) - 1)) << 23);
  sincospif(-2.0f * static_cast<float>(e & (D - 1)) * inv_d, &s, &c);
  return make_float2(c, s);
}

// ---------------------------------------------------------------------------------------
// Filter slices: per (gh, j, part p < S) CTA, the N2-point DFT of item j's row of the outer
// forward of k, for the frequencies k2 = p + S k' (one decimation-in-frequency step of radix S
// folded into the load, so the shared-memory FFT is only SUB = N2 / S points: fp32 complex
// 32768 points would not fit), times sqrt(N1), + skip, in slice order.
// ---------------------------------------------------------------------------------------
struct KsParams {
  const float* scratch;  // the fp32 scratch workspace
  const float* skip;
  void* kspec;  // KElem of inner_kspec_kernel
  int64_t GH;
  int N1, lgN2, lgS, N0, RAD;
};

// The largest shared-memory FFT of the slice kernel (N2 above it: the folded radix-S step). JFF_LONG_KS_MAXSUB=4096
// (prepared, not timed) runs 256K's and 4M's 8192-point slices as S = 2 x 4096 with 256 threads instead of 512.
#ifndef JFF_LONG_KS_MAXSUB
#define JFF_LONG_KS_MAXSUB 8192
#endif
constexpr int kKsMaxSub = JFF_LONG_KS_MAXSUB;
static_assert(kKsMaxSub == 4096 || kKsMaxSub == 8192, "slice kernel FFT size");

// KElem: float (fp32 slices) or uint16_t (bf16 bits; store_k_bin rounds to nearest even). The scratch is fp32 (the
// bf16 scratch goes to inner_kspec_tc_kernel).
template <typename KElem>
__global__ void __launch_bounds__(512, 2) inner_kspec_kernel(const KsParams p) {
  JFF_DYN_SMEM(float2, z);
  const int N2 = 1 << p.lgN2, S = 1 << p.lgS, SUB = N2 >> p.lgS;
  const int tid = threadIdx.x, nth = blockDim.x, M1 = p.N1 / 2;
  const float scale = sqrtf(static_cast<float>(p.N1));
  const int64_t u = blockIdx.x;  // one unit per CTA (launch_per_unit)
  const int part = static_cast<int>(u % S);
  const int64_t gj = u / S, gh = gj / (M1 + 1);
  const int j = static_cast<int>(gj - gh * (M1 + 1));
  const float* wre = p.scratch + ws_offset(gh, j == M1 ? 0 : j, 0, 0, p.N1, N2);
  // S == 1 (every N up to 8K * N1): the radix-S step is the identity; its twiddles would cost
  // an int64 modulo and a sincospif per element.
  const float* const rows[1] = {wre};
  constexpr int V = Vec16<float>::V;
  if (S == 1) {  // four 16-byte loads in flight per thread (four vectors per round spilled 108 bytes)
    for (int q0 = tid; q0 < SUB / V; q0 += 2 * nth)
      load_items_vec<2>(rows, j, M1, q0, nth, SUB / V, N2,
                        [&](int, int, int n, const float2(&x)[V]) { store_pairs<V>(z, n, x); });
  }
  if (S > 1) {  // V positions per thread per round, two values of s' loads issued together
    for (int q = tid; q < SUB / V; q += nth) {
      float2 y[V];
#pragma unroll
      for (int e = 0; e < V; ++e) y[e] = make_float2(0.f, 0.f);
      for (int s0 = 0; s0 < S; s0 += 2)  // S >= 2, a power of two
        load_items_vec<2>(rows, j, M1, q + s0 * (SUB / V), SUB / V, N2 / V, N2,
                          [&](int c, int, int, const float2(&x)[V]) {
                            const float2 w = w_pow2(part * (s0 + c), S);
#pragma unroll
                            for (int e = 0; e < V; ++e) {
                              y[e].x += x[e].x * w.x - x[e].y * w.y;
                              y[e].y += x[e].x * w.y + x[e].y * w.x;
                            }
                          });
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float2 w = w_pow2(part * (q * V + e), N2);
        y[e] = make_float2(y[e].x * w.x - y[e].y * w.y, y[e].x * w.y + y[e].y * w.x);
      }
      store_pairs<V>(z, q * V, y);
    }
  }
  __syncthreads();
  fft_smem(z, SUB, false, tid, nth);
  const float sk = p.skip != nullptr ? p.skip[gh] : 0.f;
  KElem* out = static_cast<KElem*>(p.kspec) + gj * int64_t(N2) * 2;
  if (S == 1) {
    // The whole slice in this CTA: write it in its own order, float4 `idx` = inner frequencies
    // f0, f1 of block k0 (spec_freqs). Consecutive threads take consecutive
    // k0 (the fastest index of z): a warp's reads then hit N0 different banks, where a run of
    // consecutive idx (one k0, frequencies N0 apart) read one bank pair 16 times over per
    // half-warp. The stores stay whole 32-byte sectors (float4 idx and idx + 1 from lanes N0 apart
    // of one warp at N0 = 16, from neighbouring warps at N0 = 32).
    const int half_m = p.RAD * p.RAD / 2, lg_n0 = __ffs(p.N0) - 1;
    const auto bins = [&](int k0, int r, float2& a, float2& b) {
      unsigned f0, f1;
      if (p.RAD == 16)
        spec_freqs<16>(r, f0, f1);
      else
        spec_freqs<32>(r, f0, f1);
      a = z[k0 + p.N0 * f0];
      b = z[k0 + p.N0 * f1];
    };
    if constexpr (std::is_same_v<KElem, float>) {
      for (int t = tid; t < N2 / 2; t += nth) {
        const int k0 = t & (p.N0 - 1), r = t >> lg_n0;
        float2 a, b;
        bins(k0, r, a, b);
        reinterpret_cast<float4*>(out)[k0 * half_m + r] =
            make_float4(a.x * scale + sk, a.y * scale, b.x * scale + sk, b.y * scale);
      }
    } else {
      // bf16: two neighbouring slots (r, r + 1) per thread, one 16-byte store. With one 8-byte slot per
      // thread, a warp at N0 = 32 wrote 32 slots 1 KB apart, a quarter sector each (4M slices: 6.95 ms
      // in fp32 -> 9.26 in bf16, session 22).
      for (int t = tid; t < N2 / 4; t += nth) {
        const int k0 = t & (p.N0 - 1), r = (t >> lg_n0) * 2;
        float2 a0, b0, a1, b1;
        bins(k0, r, a0, b0);
        bins(k0, r + 1, a1, b1);
        reinterpret_cast<uint4*>(out)[(k0 * half_m + r) / 2] =
            make_uint4(pack_k_bin(a0.x * scale + sk, a0.y * scale), pack_k_bin(b0.x * scale + sk, b0.y * scale),
                       pack_k_bin(a1.x * scale + sk, a1.y * scale), pack_k_bin(b1.x * scale + sk, b1.y * scale));
      }
    }
  } else {
    for (int kq = tid; kq < SUB; kq += nth) {
      const int64_t k2 = part + int64_t(S) * kq;
      store_k_bin(out + slice_offset(k2, p.N0, p.RAD), z[kq].x * scale + sk, z[kq].y * scale);
    }
  }
}

// Sets the shared-memory limit, sizes a one-dimensional grid over `units` work items (gridDim.y, as
// detail::grid_for sizes it; the kernel loops over the rest) and launches; the first error.
template <typename K, typename... A>
cudaError_t launch_units(K kern, int threads, size_t smem, int64_t units, cudaStream_t stream, A... args) {
  return detail::launch_grid(kern, threads, smem, 1, units, 0, stream, args...);
}
// The same with at most kItemCtaRows items per CTA: the tensor-core inner steps (outer_pass.cuh's
// kItemCtaRows says why; their CTAs then also run items of neighbouring rows together).
template <typename K, typename... A>
cudaError_t launch_items(K kern, int threads, size_t smem, int64_t units, cudaStream_t stream, A... args) {
  return detail::launch_grid(kern, threads, smem, 1, units, detail::kItemCtaRows, stream, args...);
}

// One CTA per work item (blockIdx.x = the item). The kernels whose shared-memory FFT would sit in a
// loop over items use this: in such a loop ptxas keeps the FFT's register arrays in local memory
// (500-950 bytes of spills at 64 registers, or ~170 registers unconstrained), while the same code
// without the loop needs 64 registers and no spill.
template <typename K, typename... A>
cudaError_t launch_per_unit(K kern, int threads, size_t smem, int64_t units, cudaStream_t stream, A... args) {
  if (units < 1 || units > INT32_MAX) return cudaErrorInvalidValue;
  cudaError_t err = detail::set_smem(kern, smem);
  if (err != cudaSuccess) return err;
  JFF_LAUNCH(kern, dim3(static_cast<unsigned>(units)), dim3(threads), smem, stream, args...);
  return detail::last_error();
}

// Filter slices on tensor cores (bf16 slices from the bf16 scratch: kspec_ws_bf16): item gj = (gh, j) of the
// scratch is loaded as inner_tc_kernel loads item j, then outer_dft and, per row k0, dft_pair give the row's unitary
// spectrum in the very fragment order in which mul_spec reads K. So each lane stores its own slots, times sqrt(N)
// (the CUDA-core kernel's unnormalised DFT times sqrt(N1)) and + skip, exactly where the inner step's lanes will
// load them: 8-byte slots, a warp's 256 bytes contiguous.
template <int RAD>
__device__ __forceinline__ void store_spec_slots(const float (&Yr)[RAD / 16][RAD / 8][4],
                                                 const float (&Yi)[RAD / 16][RAD / 8][4], uint2* kk, int lane,
                                                 float scale, float sk) {
  for_each_slot<RAD>([&](int mt, int nt, int hh, int s) {
    kk[s * 32 + lane] = make_uint2(pack_k_bin(Yr[mt][nt][2 * hh] * scale + sk, Yi[mt][nt][2 * hh] * scale),
                                   pack_k_bin(Yr[mt][nt][2 * hh + 1] * scale + sk, Yi[mt][nt][2 * hh + 1] * scale));
  });
}

struct KsTcParams {
  const void* scratch;  // bf16
  const float* skip;
  void* kspec;  // bf16 slices
  int64_t GH;
  int N1;
};

template <int N0, int RAD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32) inner_kspec_tc_kernel(const KsTcParams p) {
  using T = BF16;
  using S = BigShape<N0, RAD>;
  constexpr int M = S::M, N2 = S::N, MT = S::MT, KS = S::KS, NTH = WARPS * 32;
  static_assert(N0 == 1 || N0 >= 16, "as inner_tc_kernel");
  JFF_DYN_SMEM(uint4, smem_raw);
  BigSmem<T, N0, RAD> sm(smem_raw);
  T* const sre = sm.sre;
  T* const sim = sm.sim;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  sm.init(tid, NTH);
  __syncthreads();
  const TwN<N2> twN = sm.twN;
  const int M1 = p.N1 / 2;
  const int64_t items = p.GH * (M1 + 1);
  const float scale = sqrtf(static_cast<float>(p.N1) * static_cast<float>(N2));
  uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
  load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
  for (int64_t gj = blockIdx.y; gj < items; gj += gridDim.y) {
    const int64_t gh = gj / (M1 + 1);
    const int j = static_cast<int>(gj - gh * (M1 + 1));
    const T* wre = static_cast<const T*>(p.scratch) + ws_offset(gh, j == M1 ? 0 : j, 0, 0, p.N1, N2);
    load_item_planes<T, N2, RAD, NTH>(wre, wre + N2, j, M1, sre, sim, tid, nullptr);
    __syncthreads();
    if constexpr (kInnerPrefetch) {
      if (tid == 0 && gj + gridDim.y < items) {
        const int64_t ghn = (gj + gridDim.y) / (M1 + 1);
        const int jn = static_cast<int>(gj + gridDim.y - ghn * (M1 + 1));
        const T* wn = static_cast<const T*>(p.scratch) + ws_offset(ghn, jn == M1 ? 0 : jn, 0, 0, p.N1, N2);
        prefetch_item_planes(ItemSources<T, N2>(wn, wn + N2, jn, M1, nullptr));
      }
    }
    if constexpr (S::kMmaOuter) {
      outer_dft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, twN, N0 / 16, warp, lane);
      __syncthreads();
    }
    const float sk = p.skip != nullptr ? p.skip[gh] : 0.f;
    uint2* const out = static_cast<uint2*>(p.kspec) + gj * (N2 / 2);
    for (int k0 = warp; k0 < N0; k0 += WARPS) {
      float Yr[MT][S::NT][4], Yi[MT][S::NT][4];
      dft_pair<T, RAD>(sre + k0 * M, sim + k0 * M, nullptr, nullptr, (k0 & 7) << 3, Fr, Fi, sm.tw, lane, Yr, Yi);
      store_spec_slots<RAD>(Yr, Yi, out + k0 * (M / 2), lane, scale, sk);
    }
    __syncthreads();  // the next item's load overwrites the planes
  }
}

template <typename T, int N0, int RAD, bool CONJ = false>
cudaError_t launch_tc(const InnerArgs& a, cudaStream_t stream) {
  constexpr int WARPS = tc_warps(N0, RAD);
  const ItemOrder order = ItemOrder::make(a.nrows, a.H, a.N1, pairable_rows(a.row0, a.nrows, a.H, a.G, a.R));
  TcParams p{a.ws, a.kspec, a.row0, a.nrows, a.H, a.G, a.R, a.N1, order};
  return launch_items(inner_tc_kernel<T, N0, RAD, WARPS, CONJ>, WARPS * 32, BigShape<N0, RAD>::kSmem,
                      order.count(a.nrows), stream, p);
}

}  // namespace inner

constexpr int64_t kInnerCcMaxN2 = 16384;  // the fp32 row: 8 * N2 bytes of shared memory (32768: 256 KB)

// Which N2 the inner step takes for a dtype (tensor cores for 16-bit, CUDA cores for fp32).
inline bool inner_supported(Elem e, int64_t N2) {
  int N0, RAD;
  if (e == Elem::kF32) return inner::split_n2(N2, &N0, &RAD) && N2 <= kInnerCcMaxN2;
  return N2 == 256 || N2 == 1024 || N2 == 4096 || N2 == 8192 || N2 == 16384 || N2 == 32768;
}

inline const char* check_inner(const InnerArgs& a) {
  if (a.dtype != Elem::kF16 && a.dtype != Elem::kBF16 && a.dtype != Elem::kF32) return "dtype";
  if (!is_pow2(a.N1) || a.N1 < kMinN1 || a.N1 > kMaxN1) return "N1 must be a power of two in [2, 512]";
  if (!inner_supported(a.dtype, a.N2)) return "N2 not supported by the inner step for this dtype";
  if (a.ws == nullptr || a.kspec == nullptr) return "ws and kspec are required";
  if (reinterpret_cast<uintptr_t>(a.ws) % 16 != 0 || reinterpret_cast<uintptr_t>(a.kspec) % 16 != 0)
    return "ws and kspec must be 16-byte aligned";
  if (a.row0 < 0 || a.nrows < 1 || a.nrows > (int64_t{1} << 40)) return "rows out of range";
  if (a.H < 1 || a.G < 1 || a.R < 1) return "H, G, R must be >= 1";
  return nullptr;
}

inline const char* check_kspec(const KspecArgs& a) {
  if (!is_pow2(a.N1) || a.N1 < kMinN1 || a.N1 > kMaxN1) return "N1 must be a power of two in [2, 512]";
  int N0, RAD;
  if (!inner::split_n2(a.N2, &N0, &RAD)) return "N2 must be in 256 .. 32768";
  if (a.k == nullptr || a.kspec == nullptr || a.scratch == nullptr) return "k, kspec, scratch are required";
  if (reinterpret_cast<uintptr_t>(a.scratch) % 16 != 0) return "scratch must be 16-byte aligned";
  if (a.GH < 1 || a.Lk < 1 || a.Lk > static_cast<int64_t>(a.N1) * a.N2) return "GH >= 1, 1 <= Lk <= N";
  return nullptr;
}

// Whether inner_kspec's scratch is bf16 (kKspecWsBf16), which also puts its slice DFTs on tensor cores
// (inner_kspec_tc_kernel: the inner step's own load, outer_dft and dft_pair, 16-bit operands, fp32 accumulation): with
// bf16 slices, N2 <= kKsMaxSub (the tensor-core slice kernel is instantiated up to there; larger slices keep the fp32
// CUDA-core kernel and its folded radix-S step) and an inner split the inner step has a tensor-core kernel for
// (N0 != 2), on an sm_80+ device. Session 24, H200 (outer_selftest --bench, two rounds, filter spectrum ms, the
// CUDA-core slice kernel reading the bf16 scratch -> tensor-core slices): 64K 0.321 / 0.321 -> 0.227 / 0.224, 256K
// 1.327 / 1.321 -> 0.804 / 0.799, 1M 4.763 / 4.742 -> 3.458 / 3.436, 4M (H=192) 5.712 / 5.697 -> 3.730 / 3.729: the
// slices themselves 2.3 -> 1.0 ms at 1M and 3.3 -> 1.3 at 4M. Slice error (emulated --inner) 2.0-2.4e-3 -> 2.8-3.9e-3,
// pipeline +3-13% (6.2-7.7e-3 -> 6.0-8.1e-3, bar 2e-2). The CUDA-core kernel's bf16-scratch path was removed after
// this A/B (on sm_80+ the long path always takes the tensor-core slices there).
inline bool kspec_ws_bf16(bool bf16_slices, int64_t N2) {
  int N0 = 0, RAD = 0;
  return bf16_slices && kKspecWsBf16 && N2 <= inner::kKsMaxSub && inner::split_n2(N2, &N0, &RAD) && N0 != 2 &&
         detail::device_major() >= 8;
}

// The outer pass over k: on tensor cores where kspec_tc chooses them and they take it (bf16 scratch only).
inline OuterPath kspec_outer_path(bool ws_bf16, int N1) {
  return ws_bf16 && kspec_tc(N1) ? OuterPath::kAuto : OuterPath::kCudaCore;
}

// Enqueues the filter slices (two launches: the outer forward on k, then the slice DFTs).
inline cudaError_t inner_kspec(const KspecArgs& a, cudaStream_t stream) {
  if (check_kspec(a) != nullptr) return cudaErrorInvalidValue;
  const bool ws16 = kspec_ws_bf16(a.bf16, a.N2);
  OuterFwdArgs fa{Elem::kF32, a.k, nullptr, a.scratch, 0, a.GH, a.Lk, a.N1, a.N2};
  fa.ws_bf16 = ws16;
  cudaError_t err = outer_forward(fa, stream, kspec_outer_path(ws16, a.N1));
  if (err != cudaSuccess) return err;
  if (ws16) {
    err = cudaErrorInvalidValue;
    inner::KsTcParams q{a.scratch, a.skip, a.kspec, a.GH, a.N1};
    dispatch_n(a.N2, [&](auto n0, auto rad) {
      if constexpr (n0() != 2 && n0() * rad() * rad() <= inner::kKsMaxSub) {  // kspec_ws_bf16's sizes
        constexpr int WARPS = inner::tc_warps(n0(), rad());
        err = inner::launch_items(inner::inner_kspec_tc_kernel<n0(), rad(), WARPS>, WARPS * 32,
                                  BigShape<n0(), rad()>::kSmem, a.GH * (a.N1 / 2 + 1), stream, q);
      }
    });
    return err;
  }
  inner::KsParams p;
  p.scratch = static_cast<const float*>(a.scratch);
  p.skip = a.skip;
  p.kspec = a.kspec;
  p.GH = a.GH;
  p.N1 = a.N1;
  p.lgN2 = ilog2(a.N2);
  const int64_t sub = a.N2 < inner::kKsMaxSub ? a.N2 : inner::kKsMaxSub;
  p.lgS = ilog2(a.N2 / sub);
  inner::split_n2(a.N2, &p.N0, &p.RAD);
  const int threads = static_cast<int>(std::max<int64_t>(256, sub / inner::kFftValsPerThread));  // <= 512
  const int64_t units = a.GH * (a.N1 / 2 + 1) * (a.N2 / sub);
  const size_t smem = sizeof(float2) * sub;
  if (a.bf16) return inner::launch_per_unit(inner::inner_kspec_kernel<uint16_t>, threads, smem, units, stream, p);
  return inner::launch_per_unit(inner::inner_kspec_kernel<float>, threads, smem, units, stream, p);
}

namespace inner {
inline cudaError_t inner_step(const InnerArgs& a, cudaStream_t stream, bool conj) {
  if (check_inner(a) != nullptr) return cudaErrorInvalidValue;
  if (a.dtype == Elem::kF32) {
    inner::CcParams p;
    p.ws = static_cast<float*>(a.ws);
    p.kspec = a.kspec;
    p.row0 = a.row0;
    p.nrows = a.nrows;
    p.H = a.H;
    p.G = a.G;
    p.R = a.R;
    p.N1 = a.N1;
    p.lgN2 = ilog2(a.N2);
    p.ksign = conj ? -1.f : 1.f;
    p.order = ItemOrder::make(a.nrows, a.H, a.N1);
    if (!inner::split_n2(a.N2, &p.N0, &p.RAD)) return cudaErrorInvalidValue;
    return dispatch_lg<8, 14>(p.lgN2, [&](auto lg) {  // N2 = 256 .. kInnerCcMaxN2
      return launch_per_unit(inner_cc_kernel<lg()>, cc_threads(lg()), sizeof(float2) * a.N2,
                             a.nrows * (a.N1 / 2 + 1), stream, p);
    });
  }
  cudaError_t err = cudaErrorInvalidValue;
  const bool bf = a.dtype == Elem::kBF16;
  dispatch_n(a.N2, [&](auto n0, auto rad) {
    if constexpr (n0() != 2) {
      if (conj)
        err = bf ? inner::launch_tc<inner::BF16, n0(), rad(), true>(a, stream)
                 : inner::launch_tc<inner::F16, n0(), rad(), true>(a, stream);
      else
        err = bf ? inner::launch_tc<inner::BF16, n0(), rad()>(a, stream)
                 : inner::launch_tc<inner::F16, n0(), rad()>(a, stream);
    }
  });
  return err;
}
}  // namespace inner

// Enqueues the inner step (in place on a.ws).
inline cudaError_t inner_forward(const InnerArgs& a, cudaStream_t stream) {
  return inner::inner_step(a, stream, false);
}

// The same with conj(K') in place of K' (same slices): the adjoint's correlation, used by the
// backward (long_bwd.cuh) for dv = corr(dy*post, k) + skip*dy*post.
inline cudaError_t inner_forward_conj(const InnerArgs& a, cudaStream_t stream) {
  return inner::inner_step(a, stream, true);
}

}  // namespace longconv
}  // namespace jff

#ifdef JFF_LONG_EMU
#include "fftconv_long/emu_core_end.h"
#endif
