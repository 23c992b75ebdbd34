// Backward of the long fftconv (N = N1 * N2 > 32K; forward math and layout in
// benchmarks/notes_long.md, the plan in its section 6). With v = pre*u, g = dy*post (both zero
// beyond L), K' = khat + skip (the folded filter spectrum of inner_kspec):
//
//   dpost = dy * z,  z = IDFT(V .* K')         (the forward pipeline with post := dy)
//   dv    = IDFT(G .* conj K')                  (correlation with k, + skip*g: conj K' is the
//                                                spectrum of the reversed real filter, Hermitian,
//                                                so the forward's passes apply unchanged)
//   du    = pre * dv,   dpre = u * dv           (two outer inverses of the same workspace)
//   dk[g,h][j] = sum_{b in group g} corr(g_b, v_b)[j], j < Lk
//             = sum_f S[f] e^{+2 pi i f j / N},  S[f] = sum_b conj(vhat_b[f]) ghat_b[f] / N
//   dskip[g,h] = sum_b sum_t g_b v_b   (= dk[g,h][0] in exact arithmetic: the skip is a lag-0 tap)
//
// Passes (1, 2, 4 and 5 run per chunk of batch entries, 3 once after the last chunk):
//   1. outer_forward(u, pre) -> ws_v;  outer_forward(dy, post) -> ws_g         (dtype workspaces)
//   2. dk spectrum (fp32 S, every batch entry of group g added in ascending b: bitwise reproducible, no atomics).
//      16-bit data at N2 <= 8192 (every split up to 4M): bwd_inner_tc_kernel on tensor cores, which also runs the
//      inner steps of 4 and 5 on the spectra it holds; S then sits in the inner kernel's fragment order, which
//      dk's inverse reads. Otherwise dk_spec_kernel (CUDA cores): per (g, h, inner item j, part) unit, DFT_N2 of
//      ws_v's and ws_g's item j (row 0 split into its cyclic real half and its twisted negacyclic half exactly
//      as the inner step splits it), S += conj(V) .* G; N2 > 4096 folds one radix-S decimation-in-frequency
//      step into the load (as inner_kspec_kernel does) so the shared-memory FFT stays <= 4096 points.
//   3. dk inverse (fp32): per unit the SUB-point inverse of S's part in place, then per (g, h, j) the radix-S
//      combine into a packed workspace (row 0 re-packed as the inner step stores it; bf16 for 16-bit data,
//      dk_ws_elem), then outer_inverse (fp32 output; on tensor cores from the bf16 workspace) with L = Lk -> dk.
//   3b. dskip: per-row partial sums of g*v (double, fixed trees), then per (g, h) in ascending batch order. With
//      dpre on the tensor-core path the partials come from step 5's pass, which reads pre and u anyway and reads
//      dy and post for them (fused_dskip); otherwise a separate pass reads dy, post, u and pre.
//   4. inner_forward(ws_v, K') -> outer_inverse(post = dy) -> dpost            (if post given)
//   5. inner_forward_conj(ws_g, K') (the inner kernel multiplying by conj K') -> one outer_inverse
//      with two outputs: du (post = pre) and dpre (post2 = u, if pre given)
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fftconv_long/inner_pass.cuh"
#include "fftconv_long/long_plan.h"
#include "fftconv_long/outer_pass.cuh"

namespace jff {
namespace longconv {

// Per-step timing for the self-test's --bench: when BwdArgs::marks is set, long_backward records an event
// (created by the caller) on the stream after each step, with the step's name. Chunks repeat the names.
struct StepMarks {
  static constexpr int kMax = 64;
  cudaEvent_t ev[kMax];
  const char* name[kMax];
  int n = 0;
};

inline cudaError_t mark(StepMarks* m, const char* name, cudaStream_t stream) {
#ifndef JFF_LONG_EMU
  if (m == nullptr || m->n >= StepMarks::kMax) return cudaSuccess;
  m->name[m->n] = name;
  return cudaEventRecord(m->ev[m->n++], stream);
#else
  (void)m, (void)name, (void)stream;
  return cudaSuccess;
#endif
}

struct BwdArgs {
  Elem dtype;
  // Inputs, BHL rows (row r = b * H + h). The workspaces hold chunk_b batch entries at a time.
  const void* dy;
  const void* u;
  const void* pre;      // or nullptr (then v = u and dpre is not formed)
  const void* post;     // or nullptr (then g = dy and dpost is not formed)
  const void* kspec;    // inner_kspec(k, skip) for (G, H): K' with the skip folded in (kspec_bf16(dtype))
  int64_t B, H, G, R, L, Lk;
  int N1;
  int64_t N2;
  // Outputs (dtype for du / dpre / dpost, fp32 for dk / dskip); any may be nullptr except du.
  void* du;
  void* dpre;    // needs pre
  void* dpost;   // needs post
  float* dk;     // (G*H, Lk)
  float* dskip;  // (G*H)
  // Scratch (bwd_scratch_bytes with the same chunk_b and dk_ws given or not): see BwdScratch.
  void* scratch;
  // Optional: workspace for dk's inverse (at least workspace_bytes(dk_ws_elem(dtype), G*H, N1, N2), 16-byte
  // aligned), first written after the last chunk's inner steps. The caller may lend memory that is
  // dead by then, e.g. the kspec buffer itself (at least as large); nullptr: a part of `scratch`.
  // With channel chunks (chunk_h < H) it is written after each chunk's inner steps, a chunk's channels where K'
  // keeps their slices (kspec_bytes per filter): it must then be the kspec buffer itself or as large as it.
  void* dk_ws = nullptr;
  StepMarks* marks = nullptr;  // self-test timing only (see StepMarks)
  // Batch entries per chunk (0 or >= B: all at once). Chunks run in ascending b and dk's
  // spectrum accumulates across them in the same order, so the results are bitwise the same
  // for every even chunk size (odd ones pair other batch entries in the inner step: pairable_rows);
  // the two workspaces shrink to chunk_b * H rows.
  int64_t chunk_b;
  // Channels per chunk (0 or >= H: all). Below H the backward runs channel chunk by channel chunk, one batch entry
  // at a time within each (chunk_b is then ignored): a chunk's rows of one entry are contiguous, and dk's spectrum
  // and packed workspace shrink to G * chunk_h channels, the two workspaces to chunk_h rows. Results are bitwise
  // those of chunk_b = 1 (the same per-channel sums in the same order; no batch rows paired).
  int64_t chunk_h = 0;
};

inline int64_t bwd_chunk(int64_t B, int64_t chunk_b) { return chunk_b <= 0 || chunk_b > B ? B : chunk_b; }
inline int64_t bwd_chunk_h(int64_t H, int64_t chunk_h) { return chunk_h <= 0 || chunk_h > H ? H : chunk_h; }
// Signal rows per chunk: chunk_b whole batch entries, or one entry's chunk_h channels.
inline int64_t bwd_chunk_rows(int64_t B, int64_t H, int64_t chunk_b, int64_t chunk_h) {
  return bwd_chunk_h(H, chunk_h) < H ? bwd_chunk_h(H, chunk_h) : bwd_chunk(B, chunk_b) * H;
}

// dk's packed workspace between its inverse's two halves: bf16 for 16-bit data, so that half the bytes go through
// HBM and the outer inverse runs on tensor cores (H200, dk's inverse at 1M 5.97 -> 5.24 ms, 4M H=192 7.24 -> 6.31);
// fp32 for fp32 data. One more rounding of dk (long_bwd_selftest rel-L2: bf16 data ~5e-3 -> up to 7.7e-3, bar 4e-2;
// fp16 data ~6e-4 -> up to 3.5e-3, bar 1e-2). JFF_LONG_DK_WS_BF16=0 keeps fp32 for A/B runs.
#ifndef JFF_LONG_DK_WS_BF16
#define JFF_LONG_DK_WS_BF16 1
#endif
inline Elem dk_ws_elem(Elem data) { return JFF_LONG_DK_WS_BF16 && data != Elem::kF32 ? Elem::kBF16 : Elem::kF32; }
// Whether a row of dk's packed workspace fits one filter's K' slices (kspec_bytes), so that a channel chunk's dk
// workspace can go where K' kept that chunk's slices (BwdArgs::dk_ws with chunk_h < H).
inline bool dk_ws_rows_fit_slices(Elem data, int N1, int64_t N2) {
  return workspace_bytes(dk_ws_elem(data), 1, N1, N2) <= kspec_bytes(1, N1, N2, kspec_bf16(data));
}

// dskip's partial sums from the du / dpre pass (OuterInvArgs::skip_part) where that pass runs on tensor cores with
// two outputs: saves the separate pass's reads of u and pre (it reads dy and post itself), but the pass's instance
// with them takes more registers. Per outer size, from long_bwd_selftest --bench (H200, session 26, backward ms,
// separate -> fused): 64K (N1 = 16) 17.78 -> 17.64-17.72, 256K (32) 19.72 -> 19.55, 4M H=192 (512) 25.81 ->
// 25.53-25.59; at 1M (N1 = 256) the fused instance (182 registers) drops from 3 to 2 CTAs per SM and its pass took
// 6.9 ms where the two-output pass and the separate dskip take 4.3 + 2.0, so 1M keeps the separate pass.
// JFF_LONG_FUSED_DSKIP = 0 / 1 forces one choice (A/B runs).
#ifndef JFF_LONG_FUSED_DSKIP
#define JFF_LONG_FUSED_DSKIP -1
#endif
constexpr bool fused_dskip_n1(int N1) { return JFF_LONG_FUSED_DSKIP >= 0 ? JFF_LONG_FUSED_DSKIP != 0 : N1 != 256; }

// dskip's partial sums: one per (signal row, piece of kSkipPiece positions).
constexpr int64_t kSkipPiece = 65536;
inline int64_t skip_pieces(int N1, int64_t N2) { return (static_cast<int64_t>(N1) * N2 + kSkipPiece - 1) / kSkipPiece; }
// dskip's partials per signal row: the fused pass's where it may run (16-bit data), else the separate pass's.
inline int64_t skip_parts_of(Elem e, int N1, int64_t N2) {
  return e != Elem::kF32 && fused_dskip_n1(N1) ? std::max(skip_pieces(N1, N2), dskip_parts(N1, N2))
                                                : skip_pieces(N1, N2);
}

// dk's spectrum S: (N1/2+1)*N2 complex fp32 per channel.
inline size_t spec_bytes(int64_t channels, int N1, int64_t N2) {
  return static_cast<size_t>(channels) * static_cast<size_t>(N1 / 2 + 1) * static_cast<size_t>(N2) * 8;
}

// Scratch layout, each part 256-byte aligned: ws_v, ws_g (dtype workspaces of bwd_chunk_rows rows), dk's
// spectrum S (G * chunk_h channels), dk's packed workspace (G * chunk_h rows, dk_ws_elem) and dskip's partial sums
// (B*H*skip_parts_of doubles).
struct BwdScratch {
  size_t ws, spec, wsk, skp, total;
  BwdScratch(Elem e, int64_t B, int64_t H, int64_t G, int N1, int64_t N2, int64_t chunk_b, bool own_dk_ws = true,
             int64_t chunk_h = 0) {
    auto up = [](size_t x) { return (x + 255) / 256 * 256; };
    const int64_t hc = bwd_chunk_h(H, chunk_h);
    ws = up(workspace_bytes(e, bwd_chunk_rows(B, H, chunk_b, chunk_h), N1, N2));
    spec = up(spec_bytes(G * hc, N1, N2));
    wsk = own_dk_ws ? up(workspace_bytes(dk_ws_elem(e), G * hc, N1, N2)) : 0;
    skp = up(static_cast<size_t>(B * H * skip_parts_of(e, N1, N2)) * sizeof(double));
    total = 2 * ws + spec + wsk + skp;
  }
};

inline size_t bwd_scratch_bytes(Elem e, int64_t B, int64_t H, int64_t G, int N1, int64_t N2, int64_t chunk_b = 0,
                                bool own_dk_ws = true, int64_t chunk_h = 0) {
  return BwdScratch(e, B, H, G, N1, N2, chunk_b, own_dk_ws, chunk_h).total;
}

namespace bwd {

constexpr int kMaxSub = 4096;  // shared-memory FFT size of the dk kernels (2 rows: 64 KB)
// dk_spec_kernel transforms its two rows one after the other (two rows per pass would double the
// registers a thread holds across each barrier: 128-register kernels spilled and ran 1 CTA per SM).
constexpr int kSpecThreads = kMaxSub / inner::kFftValsPerThread;
// dk_spec's S update (a later batch entry's launch) with every previous value loaded first; 0 for A/B runs.
#ifndef JFF_LONG_DK_PREFETCH
#define JFF_LONG_DK_PREFETCH 1
#endif
constexpr bool kDkPrefetch = JFF_LONG_DK_PREFETCH != 0;
// dk_spec's CTAs per SM for ptxas (3: 80 registers, 12-56 bytes spilled; 2 was slower at every size, session 21).
#ifndef JFF_LONG_DK_MINB
#define JFF_LONG_DK_MINB 3
#endif
constexpr int kSpecMinBlocks = JFF_LONG_DK_MINB;
constexpr int kMaxS = static_cast<int>(kMaxN2 / kMaxSub);  // the radix of the folded step: N2 / kMaxSub <= 8

using inner::w_pow2;

struct SpecParams {
  const void* ws_v;
  const void* ws_g;
  float2* spec;
  int64_t row, H, g;  // this launch's batch entry: workspace rows row .. row + H - 1, its filter group g;
                      // row < 0: group g has no batch entry (G > B), its S is zero
  int N1, lgN2, lgS;
  bool accumulate;    // add to S (a later batch entry of group g) instead of starting it
};

// One CTA per unit (h, j, part) of one batch entry (a launch per entry, in ascending batch order:
// the fixed summation order of dk, bitwise reproducible without atomics): frequencies
// k2 = part + S*kq of item j's slice of dk's spectrum. First step of a radix-S decimation in
// frequency folded into the load:
//   X[part + S kq] = sum_n<SUB w_SUB^(kq n) [ w_N2^(part n) sum_s<S x[n + s SUB] w_S^(part s) ].
template <typename T, int LGSUB>
__global__ void __launch_bounds__(kSpecThreads, kSpecMinBlocks) dk_spec_kernel(const SpecParams p) {
  JFF_DYN_SMEM(float2, smf);
  constexpr int SUB = 1 << LGSUB;
  const int N2 = 1 << p.lgN2, S = 1 << p.lgS;
  const int tid = threadIdx.x, nth = blockDim.x, M1 = p.N1 / 2;
  float2* zv = smf;  // v's and g's rows
  float2* zg = smf + SUB;
  const float scale = 1.0f / static_cast<float>(N2);  // conj(DFT v) DFT g / N2 = conj(Yv) Yg (unitary)
  const int64_t un = blockIdx.x;
  const int part = static_cast<int>(un % S);
  const int64_t hj = un / S, h = hj / (M1 + 1);
  const int j = static_cast<int>(hj - h * (M1 + 1));
  float2* out = p.spec + ((p.g * p.H + h) * (M1 + 1) + j) * N2;
  if (p.row < 0) {
    for (int kq = tid; kq < SUB; kq += nth) out[part + int64_t(S) * kq] = make_float2(0.f, 0.f);
    return;
  }
  const int64_t r = p.row + h;  // workspace row
  const T* vre = static_cast<const T*>(p.ws_v) + ws_offset(r, j == M1 ? 0 : j, 0, 0, p.N1, N2);
  const T* gre = static_cast<const T*>(p.ws_g) + ws_offset(r, j == M1 ? 0 : j, 0, 0, p.N1, N2);
  const T* const rows[2] = {vre, gre};
  constexpr int V = inner::Vec16<T>::V;  // positions per 16-byte load
  if (S == 1) {  // the default splits (N2 <= 4096): no folded step, no twiddles
    // Two vectors per row and plane per round: 8 loads (32 registers) in flight per thread, which is a whole
    // bf16 row pair at SUB = 4096.
    constexpr int C = 2;
    for (int q0 = tid; q0 < SUB / V; q0 += C * nth)
      inner::load_items_vec<C>(rows, j, M1, q0, nth, SUB / V, N2, [&](int, int k, int n, const float2(&x)[V]) {
        inner::store_pairs<V>(k == 0 ? zv : zg, n, x);
      });
  }
  if (S > 1) {  // N2 > kMaxSub (256K, 512K, 4M .. 16M): the folded radix-S step
    // V positions per thread per round, one vector of each row and plane per s (the V accumulators of both
    // rows leave no registers for more under the cap of 3 CTAs per SM).
    for (int q = tid; q < SUB / V; q += nth) {
      float2 yv[V], yg[V];
#pragma unroll
      for (int e = 0; e < V; ++e) yv[e] = yg[e] = make_float2(0.f, 0.f);
      for (int s = 0; s < S; ++s) {
        const float2 w = w_pow2(part * s, S);
        inner::load_items_vec<1>(rows, j, M1, q + s * (SUB / V), 0, N2 / V, N2,
                                 [&](int, int k, int, const float2(&x)[V]) {
                                   float2* y = k == 0 ? yv : yg;
#pragma unroll
                                   for (int e = 0; e < V; ++e)
                                     y[e] = make_float2(y[e].x + x[e].x * w.x - x[e].y * w.y,
                                                        y[e].y + x[e].x * w.y + x[e].y * w.x);
                                 });
      }
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float2 w = w_pow2(part * (q * V + e), N2);
        yv[e] = cc::c_mul(yv[e], w);
        yg[e] = cc::c_mul(yg[e], w);
      }
      inner::store_pairs<V>(zv, q * V, yv);
      inner::store_pairs<V>(zg, q * V, yg);
    }
  }
  __syncthreads();
  inner::fft_smem_fixed<LGSUB>(zv, false, tid, nth);
  inner::fft_smem_fixed<LGSUB>(zg, false, tid, nth);
  if (kDkPrefetch && p.accumulate) {
    // All of this thread's previous S values loaded first (the plain loop compiles to load -> add -> store per
    // element, each load waiting for the last store: SUB / nth serial DRAM round trips per thread).
    // Session 21 A/B (H200): 64K B=16 9.00 -> 8.27 ms, 256K B=4 12.40 -> 12.06 ms; with it applied to the first
    // entry's plain stores as well, B = 1 (1M, 4M) lost 3-6%, hence the runtime split.
    constexpr int PER = SUB / kSpecThreads > 0 ? SUB / kSpecThreads : 1;
    float2 prev[PER];
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int kq = tid + i * kSpecThreads;
      prev[i] = kq < SUB ? out[part + int64_t(S) * kq] : make_float2(0.f, 0.f);
    }
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int kq = tid + i * kSpecThreads;
      if (kq >= SUB) continue;
      const float2 a = zv[kq], c = zg[kq];
      // conj(a) * c, added to the previous batch entries' sum
      const float2 pr = make_float2((a.x * c.x + a.y * c.y) * scale, (a.x * c.y - a.y * c.x) * scale);
      out[part + int64_t(S) * kq] = make_float2(prev[i].x + pr.x, prev[i].y + pr.y);
    }
  } else {
    for (int kq = tid; kq < SUB; kq += nth) {
      const float2 a = zv[kq], c = zg[kq];
      // conj(a) * c
      const float2 pr = make_float2((a.x * c.x + a.y * c.y) * scale, (a.x * c.y - a.y * c.x) * scale);
      float2* o = out + part + int64_t(S) * kq;
      if (p.accumulate) {
        const float2 prev = *o;  // the previous batch entry's launch wrote it
        *o = make_float2(prev.x + pr.x, prev.y + pr.y);
      } else {
        *o = pr;
      }
    }
  }
}

// The backward's inner step on tensor cores (16-bit workspaces where the inner step has a tensor-core kernel with
// RAD = 16: N2 = 256, 4096, 8192): dk's spectrum and both inner steps in one kernel. Per item (h, j) and batch entry b,
// as inner_tc_kernel runs: item j of ws_v's and of ws_g's row is loaded into two pairs of shared-memory planes,
// outer_dft runs on both, then per row k0 dft_pair gives each row's unitary spectrum in C-fragment order, and
// - each lane forms conj(Yv) Yg (= conj(DFT v) DFT g / N2, the CUDA-core dk_spec_kernel's product) for its own bins
//   in fp32 and adds it to S where it sits in fragment order: S's slice of item j is then N2 / 2 float4 slots of
//   two bins laid out as fp32 K' is (slice_offset), a warp's 512 bytes contiguous; dk_inv_sub_kernel puts the bins
//   back in natural order as it loads them (SlotOrder);
// - inner_row_inverse multiplies v's spectrum by K' (for dpost; DPOST) and g's by conj K' (dv), then outer_idft and
//   the store write both rows back in place: the same operations as inner_tc_kernel's, so those outputs are bitwise
//   the separate kernels'.
// One launch per chunk of batch entries. A CTA takes all of an item's entries in ascending b, and the chunks run in
// ascending b, so every S entry adds the entries in the same fixed order (bitwise reproducible, no atomics); each
// lane reads back only the slots it wrote itself, so no barrier guards them.
// Session 25, H200 (long_bwd_selftest --bench, backward ms, CUDA-core dk_spec_kernel + separate inner steps ->
// tensor-core dk spectrum with separate inner steps -> this kernel): 1M B=1 26.95 -> 26.09 -> 24.07, 64K B=16
// 22.24 -> 19.68 -> 17.67, 256K B=4 24.73 -> 21.84 -> 19.94, 4M H=192 31.05 -> 29.53 -> 27.17.
// JFF_LONG_BWD_INNER_TC=0 keeps the CUDA-core dk_spec_kernel and the separate inner steps (A/B runs).
#ifndef JFF_LONG_BWD_INNER_TC
#define JFF_LONG_BWD_INNER_TC 1
#endif
constexpr bool kBwdInnerTc = JFF_LONG_BWD_INNER_TC != 0;

struct BwdInnerParams {
  void* ws_v;  // both rewritten in place by the inner steps
  void* ws_g;
  float4* spec;       // S in slot order
  const void* kspec;  // K'
  int64_t b0, nb, H, G, R;  // batch entries b0 .. b0 + nb - 1 (workspace rows from 0); nb = 0: zero_g's S := 0
  int64_t zero_g;
  int N1;
  bool pair;  // pairable_rows for the chunk: items 0 and M1 take two batch entries at once
  // S already holds earlier batch entries of every group here (a channel chunk's view, whose b0 is 0 for each
  // entry: long_backward): add to it even where b is its group's first entry.
  bool continues = false;
};

// g's planes follow the kernel's BigSmem (tables included), at a 128-byte boundary like v's.
template <int N0, int RAD>
constexpr size_t bwd_inner_gplanes() {
  return (BigShape<N0, RAD>::kSmem + 127) / 128 * 128;
}
template <int N0, int RAD>
constexpr size_t bwd_inner_smem() {
  return bwd_inner_gplanes<N0, RAD>() + BigShape<N0, RAD>::kSig;
}

template <typename T, int N0, int RAD, int WARPS, bool DPOST>
__global__ void __launch_bounds__(WARPS * 32) bwd_inner_tc_kernel(const BwdInnerParams p) {
  using S = BigShape<N0, RAD>;
  constexpr int M = S::M, N2 = S::N, MT = S::MT, KS = S::KS, NT = S::NT, NTH = WARPS * 32;
  constexpr int SLOTS = MT * NT * 2;  // float4 slots per lane and row k0
  static_assert(N0 == 1 || N0 >= 16, "as inner_tc_kernel");
  // RAD = 32 (N2 = 1024 alone, no default split) held two 32-float spectra and its 16 S slots at once: 740-1230
  // bytes of spill. It takes the CUDA-core path.
  static_assert(RAD == 16, "bwd_inner_tc's sizes");
  JFF_DYN_SMEM(uint4, smem_raw);
  BigSmem<T, N0, RAD> sm(smem_raw);
  T* const vre = sm.sre;
  T* const vim = sm.sim;
  T* const gre = reinterpret_cast<T*>(reinterpret_cast<uint8_t*>(smem_raw) + bwd_inner_gplanes<N0, RAD>());
  T* const gim = gre + N2;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int M1 = p.N1 / 2;
  const int64_t items = p.H * (M1 + 1);
  if (p.nb == 0) {  // group zero_g has no batch entry: its S is zero
    for (int64_t hj = blockIdx.y; hj < items; hj += gridDim.y) {
      float4* out = p.spec + ((p.zero_g * p.H) * (M1 + 1) + hj) * (N2 / 2);
      for (int q = tid; q < N2 / 2; q += NTH) out[q] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    return;
  }
  sm.init(tid, NTH);
  __syncthreads();
  const TwN<N2> twN = sm.twN;
  uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
  load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
  // One CTA takes all of an item's batch entries, in ascending b (the items are split over the CTAs, not the
  // entries: two CTAs on one S slice would race).
  // Item hj = (h, j): items 0 and M1 take batch entries b, b + 1 together where p.pair (ItemOrder's pairs): S then
  // adds the pair's conj(Xv) Xg, whose cross terms dk's inverse drops (long_plan.h, JFF_LONG_PAIR_ROWS).
  auto step_of = [&](int j) { return p.pair && (j == 0 || j == M1) ? 2 : 1; };
  // Entry bi of item (h, j): the offsets of its rows in both workspaces and of the pair's other row 0 (or -1).
  auto offsets = [&](int64_t h, int j, int64_t bi, int64_t* off, int64_t* poff) {
    *off = ws_offset(bi * p.H + h, j == M1 ? 0 : j, 0, 0, p.N1, N2);
    *poff = step_of(j) == 2 && bi + 1 < p.nb ? ws_offset((bi + 1) * p.H + h, 0, 0, 0, p.N1, N2) : -1;
  };
  for (int64_t hj = blockIdx.y; hj < items; hj += gridDim.y) {
    const int64_t h = hj / (M1 + 1);
    const int j = static_cast<int>(hj - h * (M1 + 1));
    const int step = step_of(j);
    for (int64_t bi = 0; bi < p.nb; bi += step) {
      const int64_t b = p.b0 + bi, g = group_of(b, p.R, p.G);
      // Group g's first batch entry is b = g R (group_of): it starts S, the later ones add to it.
      const bool accumulate = p.continues || b != g * p.R;
      int64_t off, poff;
      offsets(h, j, bi, &off, &poff);
      T* const v = static_cast<T*>(p.ws_v) + off;
      T* const gw = static_cast<T*>(p.ws_g) + off;
      T* const vp = poff >= 0 ? static_cast<T*>(p.ws_v) + poff : nullptr;
      T* const gp = poff >= 0 ? static_cast<T*>(p.ws_g) + poff : nullptr;
      if constexpr (inner::kInnerStage) {  // both items' copies in flight together
        const inner::ItemSources<T, N2> sv(v, v + N2, j, M1, vp), sg(gw, gw + N2, j, M1, gp);
        inner::stage_item_planes<T, N2, RAD, NTH>(sv, vre, vim, tid);
        inner::stage_item_planes<T, N2, RAD, NTH>(sg, gre, gim, tid);
        stage_commit();
        stage_wait<0>();
        inner::twist_staged_planes<T, N2, RAD, NTH>(j, M1, vre, vim, tid);
        inner::twist_staged_planes<T, N2, RAD, NTH>(j, M1, gre, gim, tid);
      } else {
        inner::load_item_planes<T, N2, RAD, NTH>(v, v + N2, j, M1, vre, vim, tid, vp);
        inner::load_item_planes<T, N2, RAD, NTH>(gw, gw + N2, j, M1, gre, gim, tid, gp);
      }
      __syncthreads();
      if constexpr (inner::kInnerPrefetch) {  // the CTA's next entry: this item's next one, else its next item's first
        int64_t hn = hj, bn = bi + step;
        if (bn >= p.nb) hn += gridDim.y, bn = 0;
        if (tid == 0 && hn < items) {
          const int64_t h2 = hn / (M1 + 1);
          const int j2 = static_cast<int>(hn - h2 * (M1 + 1));
          int64_t o2, po2;
          offsets(h2, j2, bn, &o2, &po2);
          for (T* ws : {static_cast<T*>(p.ws_v), static_cast<T*>(p.ws_g)})
            inner::prefetch_item_planes(
                inner::ItemSources<T, N2>(ws + o2, ws + o2 + N2, j2, M1, po2 >= 0 ? ws + po2 : nullptr));
        }
      }
      if constexpr (S::kMmaOuter) {
        // (No twiddle recurrence here: see kOuterTwiddleSteps.)
        outer_dft<T, N0, RAD, WARPS, false, false>(vre, vim, sm.frag0, twN, N0 / 16, warp, lane);
        outer_dft<T, N0, RAD, WARPS, false, false>(gre, gim, sm.frag0, twN, N0 / 16, warp, lane);
        __syncthreads();
      }
      float4* const out = p.spec + ((g * p.H) * (M1 + 1) + hj) * (N2 / 2);
      for (int k0 = warp; k0 < N0; k0 += WARPS) {
        float4* const o = out + k0 * (M / 2) + lane;
        // The previous batch entries' sum, loaded before the DFTs so that its latency hides behind them.
        float4 prev[SLOTS];
#pragma unroll
        for (int s = 0; s < SLOTS; ++s) prev[s] = accumulate ? o[32 * s] : make_float4(0.f, 0.f, 0.f, 0.f);
        const int key = (k0 & 7) << 3;
        float Vr[MT][NT][4], Vi[MT][NT][4], Gr[MT][NT][4], Gi[MT][NT][4];
        dft_pair<T, RAD>(vre + k0 * M, vim + k0 * M, nullptr, nullptr, key, Fr, Fi, sm.tw, lane, Vr, Vi);
        dft_pair<T, RAD>(gre + k0 * M, gim + k0 * M, nullptr, nullptr, key, Fr, Fi, sm.tw, lane, Gr, Gi);
        for_each_slot<RAD>([&](int mt, int nt, int hh, int s) {
          float c[4];
#pragma unroll
          for (int e = 0; e < 2; ++e) {  // conj(V) G of bin 2hh + e
            const float ar = Vr[mt][nt][2 * hh + e], ai = Vi[mt][nt][2 * hh + e];
            const float cr = Gr[mt][nt][2 * hh + e], ci = Gi[mt][nt][2 * hh + e];
            c[2 * e] = ar * cr + ai * ci;
            c[2 * e + 1] = ar * ci - ai * cr;
          }
          o[32 * s] = make_float4(prev[s].x + c[0], prev[s].y + c[1], prev[s].z + c[2], prev[s].w + c[3]);
        });
        using KSlot = inner::KSlotOf<T>;
        const KSlot* kk = static_cast<const KSlot*>(p.kspec) + ((g * p.H + h) * (M1 + 1) + j) * (N2 / 2) + k0 * (M / 2);
        if constexpr (DPOST)
          inner_row_inverse<T, N0, RAD, false>(Vr, Vi, kk, Fr, Fi, sm.tw, twN, vre + k0 * M, vim + k0 * M, key, k0,
                                               lane);
        inner_row_inverse<T, N0, RAD, true>(Gr, Gi, kk, Fr, Fi, sm.tw, twN, gre + k0 * M, gim + k0 * M, key, k0, lane);
      }
      __syncthreads();
      if constexpr (S::kMmaOuter) {
        if constexpr (DPOST) outer_idft<T, N0, RAD, WARPS>(vre, vim, sm.frag0, N0 / 16, warp, lane);
        outer_idft<T, N0, RAD, WARPS>(gre, gim, sm.frag0, N0 / 16, warp, lane);
        __syncthreads();
      }
      if constexpr (DPOST) inner::store_item_planes<T, N2, RAD, NTH>(v, v + N2, j, M1, vre, vim, tid, vp);
      inner::store_item_planes<T, N2, RAD, NTH>(gw, gw + N2, j, M1, gre, gim, tid, gp);
      __syncthreads();  // the next item's loads overwrite the planes
    }
  }
}

// Where dk_inv_sub_kernel finds bin k2 of a slice: natural order, or bwd_inner_tc_kernel's slot order for
// the inner split N2 = n0 * rad^2.
struct SlotOrder {
  int lg_n0 = -1;  // lg_n0 < 0: natural order
  static constexpr int lg_rad = 4;  // bwd_inner_tc_kernel's RAD = 16
  // Every index below by shifts and masks: with divisions by the runtime sizes, dk's inverse at 1M took 6.4 ms
  // against 5.4 in natural order (session 25, H200), staged or not.
  static constexpr int lg_half = 2 * lg_rad - 1;  // slots per row k0: rad^2 / 2
  // Places slot idx of row k0 (two bins) into z in natural order.
  __device__ __forceinline__ void place(float2* z, int k0, int idx, float4 v) const {
    unsigned f0, f1;
    spec_freqs<16>(idx, f0, f1);
    z[k0 + (static_cast<int>(f0) << lg_n0)] = make_float2(v.x, v.y);
    z[k0 + (static_cast<int>(f1) << lg_n0)] = make_float2(v.z, v.w);
  }
};

// dk_inv_sub_kernel's staging area for slot-ordered rows: half the rows k0, each padded by one slot.
inline size_t inv_staging_bytes(const SlotOrder& o) {
  return o.lg_n0 > 0 ? sizeof(float4) * (size_t{1} << (o.lg_n0 - 1)) * ((size_t{1} << SlotOrder::lg_half) + 1) : 0;
}

struct InvSubParams {
  float2* spec;
  void* wsk;  // S == 1: the packed workspace the combine step would write (see below), float or bf16
  bool wsk_bf16;
  int N1, lgN2, lgS;
  SlotOrder order;  // S's order (slot order only with S == 1)
};

// In place per unit (gj, part): Y_part[m] = sum_kq X[part + S kq] w_SUB^(-kq m) (unnormalised),
// stored back at position part + S m. With S == 1 (every default split) there is nothing to
// combine: the unit stores sqrt(N1) Y straight into item j's place in the packed workspace, as
// dk_combine_kernel would (which is then not launched).
template <int THREADS>  // 256 (SUB <= 4096) or 512 (SUB = 8192)
__global__ void __launch_bounds__(THREADS, 1024 / THREADS) dk_inv_sub_kernel(const InvSubParams p) {
  JFF_DYN_SMEM(float2, z);
  const int N2 = 1 << p.lgN2, S = 1 << p.lgS, SUB = N2 >> p.lgS;
  const int tid = threadIdx.x, nth = blockDim.x;
  const int64_t un = blockIdx.x;
  const int part = static_cast<int>(un % S);
  float2* row = p.spec + (un / S) * N2 + part;
  if (S == 1) {
    // A contiguous slice: two values per 16-byte load, eight loads in flight per thread (a loop of 8-byte loads
    // compiled to four per round; dk_spec's loads of that shape were its main stall, session 21; this form was
    // 4-6% faster there, 1M 5.77 -> 5.47 ms).
    constexpr int C = 8;
    const float4* r4 = reinterpret_cast<const float4*>(row);
    auto load_rounds = [&](const float4* src, int n, auto&& put) {  // put(i, src[i]) for i < n
      for (int i0 = tid; i0 < n; i0 += C * nth) {
        float4 v[C];
#pragma unroll
        for (int c = 0; c < C; ++c) v[c] = i0 + c * nth < n ? src[i0 + c * nth] : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int c = 0; c < C; ++c)
          if (i0 + c * nth < n) put(i0 + c * nth, v[c]);
      }
    };
    if (p.order.lg_n0 > 0) {
      // Slot order (bwd_inner_tc_kernel): slot idx of row k0 holds bins k0 + n0 f (SlotOrder::place), so a warp's 32
      // slots of one row would land 32-way on one bank of z. The rows pass through a staging area instead, half of
      // them at a time, each row padded by one slot: loaded as they lie (coalesced), then read with k0 fastest, so
      // that 8 consecutive threads place 8 consecutive words of z (2-way at most; the padded reads conflict-free).
      float4* st = reinterpret_cast<float4*>(z + SUB);
      const int lgh = SlotOrder::lg_half, half = 1 << lgh, lgR = p.order.lg_n0 - 1, R = 1 << lgR;
      for (int r0 = 0; r0 < 2 * R; r0 += R) {
        load_rounds(r4 + (r0 << lgh), R << lgh,
                    [&](int i, float4 v) { st[(i >> lgh) * (half + 1) + (i & (half - 1))] = v; });
        __syncthreads();
        for (int i = tid; i < (R << lgh); i += nth) {
          const int k = i & (R - 1), idx = i >> lgR;
          p.order.place(z, r0 + k, idx, st[k * (half + 1) + idx]);
        }
        __syncthreads();
      }
    } else {
      load_rounds(r4, SUB / 2, [&](int i, float4 v) {
        if (p.order.lg_n0 == 0)
          p.order.place(z, 0, i, v);  // one row k0 (N2 = 256: self-tests only)
        else
          reinterpret_cast<float4*>(z)[i] = v;
      });
    }
  } else {
    for (int kq = tid; kq < SUB; kq += nth) z[kq] = row[int64_t(S) * kq];
  }
  __syncthreads();
  inner::fft_smem(z, SUB, true, tid, nth);
  if (S == 1) {
    const int M1 = p.N1 / 2;
    const int64_t gh = un / (M1 + 1);
    const int j = static_cast<int>(un - gh * (M1 + 1));
    const int64_t off = ws_offset(gh, j == M1 ? 0 : j, 0, 0, p.N1, N2);
    const float scale = sqrtf(static_cast<float>(p.N1));
    auto store = [&](auto* wre) {
      for (int m = tid; m < SUB; m += nth)
        inner::item_store(wre, wre + N2, j, M1, m, N2, make_float2(z[m].x * scale, z[m].y * scale));
    };
    if (p.wsk_bf16)
      store(static_cast<__nv_bfloat16*>(p.wsk) + off);  // (the outer passes' bf16 type, not inner::BF16)
    else
      store(static_cast<float*>(p.wsk) + off);
    return;
  }
  for (int m = tid; m < SUB; m += nth) row[int64_t(S) * m] = z[m];
}

struct CombineParams {
  const float2* spec;
  void* wsk;  // float or bf16
  bool wsk_bf16;
  int64_t GH;
  int N1, lgN2, lgS;
};

// Launched only at S > 1 (at S == 1 dk_inv_sub_kernel stores the workspace itself).
// Per (gh, j): x[n] = sqrt(N1) sum_part w_N2^(-part n) Y_part[n mod SUB]   (= sqrt(N) times the
// unitary N2-point inverse of S's slice j), stored as the inner step stores item j: rows
// 1..N1/2-1 whole, row 0's real plane from item 0, its imaginary plane Re(x conj w_2N2^n) from
// item N1/2.
__global__ void __launch_bounds__(256) dk_combine_kernel(const CombineParams p) {
  const int N2 = 1 << p.lgN2, S = 1 << p.lgS, SUB = N2 >> p.lgS, M1 = p.N1 / 2;
  const float scale = sqrtf(static_cast<float>(p.N1));
  const int64_t units = p.GH * (M1 + 1);
  for (int64_t un = blockIdx.y; un < units; un += gridDim.y) {
    const int64_t gh = un / (M1 + 1);
    const int j = static_cast<int>(un - gh * (M1 + 1));
    const float2* row = p.spec + un * N2;
    const int64_t off = ws_offset(gh, j == M1 ? 0 : j, 0, 0, p.N1, N2);
    auto combine = [&](auto* wre) {  // float or bf16 (the outer passes' bf16 type), as in dk_inv_sub_kernel
      for (int n = threadIdx.x; n < N2; n += blockDim.x) {
        const int m = n & (SUB - 1);
        float2 y[kMaxS];  // every load first
#pragma unroll
        for (int s = 0; s < kMaxS; ++s)
          if (s < S) y[s] = row[s + int64_t(S) * m];
        float2 x = make_float2(0.f, 0.f);
#pragma unroll
        for (int s = 0; s < kMaxS; ++s) {
          if (s >= S) break;
          float2 w = w_pow2(s * n, N2);
          w.y = -w.y;
          x = make_float2(x.x + y[s].x * w.x - y[s].y * w.y, x.y + y[s].x * w.y + y[s].y * w.x);
        }
        inner::item_store(wre, wre + N2, j, M1, n, N2, make_float2(x.x * scale, x.y * scale));
      }
    };
    if (p.wsk_bf16)
      combine(static_cast<__nv_bfloat16*>(p.wsk) + off);
    else
      combine(static_cast<float*>(p.wsk) + off);
  }
}

// dskip, step 1: per piece (signal row r, kSkipPiece consecutive t) one CTA, sum_t g v straight from
// the inputs, each thread over a fixed set of t, then a fixed tree: the same bits on every run. (A
// CTA per whole row left the GPU under one wave at B*H <= 768 with long rows.) Double accumulation:
// dskip is a single number per (g, h) whose value can be small against the terms (zero-mean
// data cancel), so the lag-0 tap of the fp32 dk (whose error is relative to all of dk) or a
// long fp32 sum would cost accuracy; the bytes, not the adds, set this kernel's time. (Session 27
// tried dskip = dk[g,h][0], exact in exact arithmetic and free: the GPU test at N = 512K, bf16, H = 1
// then read dskip rel-L2 3.2e-2 against its 3e-2 bar, where dk[0] was small against dk's other taps.)
struct SkipParams {
  const void* dy;
  const void* post;
  const void* u;
  const void* pre;
  double* part;  // rows * pieces partial sums, piece-fastest
  int64_t rows, L, pieces;
};

template <typename T>
__global__ void __launch_bounds__(256) dskip_rows_kernel(const SkipParams p) {
  using E = cc::Elt<T>;
  JFF_DYN_SMEM(double, red);  // 256 doubles (dynamic: the CPU emulation shares only those)
  const T* dy = static_cast<const T*>(p.dy);
  const T* post = static_cast<const T*>(p.post);
  const T* u = static_cast<const T*>(p.u);
  const T* pre = static_cast<const T*>(p.pre);
  const int tid = threadIdx.x;
  for (int64_t unit = blockIdx.y; unit < p.rows * p.pieces; unit += gridDim.y) {
    const int64_t r = unit / p.pieces, t0 = (unit - r * p.pieces) * kSkipPiece;
    const int64_t base = r * p.L, t1 = t0 + kSkipPiece < p.L ? t0 + kSkipPiece : p.L;
    double acc = 0.0;
    for (int64_t t = t0 + tid; t < t1; t += 256) {
      float g = E::ld(dy + base + t), v = E::ld(u + base + t);
      if (post != nullptr) g *= E::ld(post + base + t);  // g and v rounded as the passes form them (fp32)
      if (pre != nullptr) v *= E::ld(pre + base + t);
      acc += static_cast<double>(g) * static_cast<double>(v);
    }
    red[tid] = acc;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
      if (tid < w) red[tid] += red[tid + w];
      __syncthreads();
    }
    if (tid == 0) p.part[unit] = red[0];
    __syncthreads();
  }
}

// dskip, step 2: per (g, h) one CTA; thread tid adds pieces tid, tid + 256, ... of group g's rows in ascending
// batch order, then a fixed tree (the fused partials are hundreds per row: one thread per (g, h) took them
// serially).
__global__ void __launch_bounds__(256) dskip_sum_kernel(const double* part, float* dskip, int64_t B, int64_t H,
                                                        int64_t G, int64_t R, int64_t pieces) {
  JFF_DYN_SMEM(double, red);  // 256 doubles
  const int tid = threadIdx.x;
  for (int64_t gh = blockIdx.y; gh < G * H; gh += gridDim.y) {
    const int64_t g = gh / H, h = gh - g * H;
    double s = 0.0;
    for (int64_t b = 0; b < B; ++b)
      if (group_of(b, R, G) == g)
        for (int64_t q = tid; q < pieces; q += 256) s += part[(b * H + h) * pieces + q];
    red[tid] = s;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
      if (tid < w) red[tid] += red[tid + w];
      __syncthreads();
    }
    if (tid == 0) dskip[gh] = static_cast<float>(red[0]);
    __syncthreads();
  }
}

using inner::launch_per_unit;  // inner_pass.cuh
using inner::launch_units;

inline int sub_of(int64_t N2) { return static_cast<int>(N2 < kMaxSub ? N2 : kMaxSub); }

// dk's inverse sub-transforms may be larger than dk_spec_kernel's (which stores S in natural order):
// 256K's and 4M's N2 = 8192 slices are inverted in one shared-memory FFT (512 threads, 64 KB), with no
// strided S reads and no dk_combine_kernel. Session 21 A/B against two 4096-point ones and the combine (H200):
// 256K B=4 2.25 -> 1.65 ms, 4M H=192 9.29 -> 7.01 ms. JFF_LONG_DK_INV_MAXSUB=4096 restores that for A/B runs.
#ifndef JFF_LONG_DK_INV_MAXSUB
#define JFF_LONG_DK_INV_MAXSUB 8192
#endif
constexpr int kInvMaxSub = JFF_LONG_DK_INV_MAXSUB;
static_assert(kInvMaxSub == 4096 || kInvMaxSub == 8192, "dk inverse FFT size");
inline int inv_sub_of(int64_t N2) { return static_cast<int>(N2 < kInvMaxSub ? N2 : kInvMaxSub); }

inline bool fused_dskip(const BwdArgs& a, OuterPath path) {
  return fused_dskip_n1(a.N1) && a.dskip != nullptr && a.dpre != nullptr && path != OuterPath::kCudaCore &&
         tc_available(a.dtype, a.N1, a.N2, detail::device_major());
}

// The inner splits bwd_inner_tc_kernel is built for: a tensor-core inner kernel with RAD = 16 (N2 = 256, 4096,
// 8192), whose slice dk's inverse transforms in one FFT (it reads the slot order there).
constexpr bool bwd_inner_split(int N0, int RAD) {
  return N0 != 2 && RAD == 16 && N0 * RAD * RAD <= 8192 && N0 * RAD * RAD <= kInvMaxSub;
}
// Whether the backward's inner step runs as bwd_inner_tc_kernel: dk wanted, 16-bit data, such a split, sm_80+.
inline bool bwd_inner_tc(const BwdArgs& a) {
  int N0 = 0, RAD = 0;
  return kBwdInnerTc && a.dk != nullptr && a.dtype != Elem::kF32 && inner::split_n2(a.N2, &N0, &RAD) &&
         bwd_inner_split(N0, RAD) && detail::device_major() >= 8;
}

}  // namespace bwd

inline const char* check_bwd(const BwdArgs& a) {
  if (a.dtype != Elem::kF16 && a.dtype != Elem::kBF16 && a.dtype != Elem::kF32) return "dtype";
  if (!is_pow2(a.N1) || a.N1 < kMinN1 || a.N1 > kMaxN1) return "N1 must be a power of two in [2, 512]";
  if (!inner_supported(a.dtype, a.N2)) return "N2 not supported by the inner step for this dtype";
  const int64_t N = static_cast<int64_t>(a.N1) * a.N2;
  if (N > (int64_t{1} << 24)) return "N = N1 * N2 must be <= 2^24";
  if (a.B < 1 || a.H < 1 || a.G < 1 || a.R < 1) return "B, H, G, R must be >= 1";
  if (a.L < 1 || a.L > N || a.Lk < 1 || a.Lk > N) return "L and Lk must be in [1, N]";
  if (a.dy == nullptr || a.u == nullptr || a.kspec == nullptr || a.du == nullptr || a.scratch == nullptr)
    return "dy, u, kspec, du and scratch are required";
  if (a.dpre != nullptr && a.pre == nullptr) return "dpre needs pre";
  if (a.dpost != nullptr && a.post == nullptr) return "dpost needs post";
  if (reinterpret_cast<uintptr_t>(a.scratch) % 256 != 0 || reinterpret_cast<uintptr_t>(a.kspec) % 16 != 0)
    return "scratch must be 256-byte and kspec 16-byte aligned";
  if (bwd_chunk_h(a.H, a.chunk_h) < a.H && a.dk_ws != nullptr && !dk_ws_rows_fit_slices(a.dtype, a.N1, a.N2))
    return "with channel chunks a lent dk workspace needs rows no larger than K''s slices";
  return nullptr;
}

// Enqueues the whole backward on `stream` (see the top of this file for the passes).
inline cudaError_t long_backward(const BwdArgs& a, cudaStream_t stream, OuterPath path = OuterPath::kAuto) {
  if (check_bwd(a) != nullptr) return cudaErrorInvalidValue;
  const int N1 = a.N1, M1 = N1 / 2;
  const int64_t N2 = a.N2, rows = a.B * a.H, cb = bwd_chunk(a.B, a.chunk_b), hc_max = bwd_chunk_h(a.H, a.chunk_h);
  const bool by_channels = hc_max < a.H;
  const BwdScratch sc(a.dtype, a.B, a.H, a.G, N1, N2, a.chunk_b, a.dk_ws == nullptr, a.chunk_h);
  uint8_t* base = static_cast<uint8_t*>(a.scratch);
  void* ws_v = base;
  void* ws_g = base + sc.ws;
  float2* spec = reinterpret_cast<float2*>(base + 2 * sc.ws);
  void* wsk = a.dk_ws != nullptr ? a.dk_ws : base + 2 * sc.ws + sc.spec;
  const bool wsk_bf16 = dk_ws_elem(a.dtype) == Elem::kBF16;
  double* skp = reinterpret_cast<double*>(base + 2 * sc.ws + sc.spec + sc.wsk);
  const int sub = bwd::sub_of(N2);
  const int lgN2 = ilog2(N2), lgS = ilog2(N2 / sub);
  const bool inner_tc = bwd::bwd_inner_tc(a);
  const bool fused_dskip = bwd::fused_dskip(a, path);
  const bool need_v = a.dpost != nullptr || a.dk != nullptr;

  // What the inner steps see: K' and S of the whole problem, or of one channel chunk's channels h0 .. h0 + hc - 1 in
  // group g as a problem of its own (hc channels, one group, workspace rows from 0).
  struct View {
    const void* kspec;
    float2* spec;
    int64_t H, G, R;
  };
  const View whole{a.kspec, spec, a.H, a.G, a.R};
  const size_t filter_bytes = kspec_bytes(1, N1, N2, kspec_bf16(a.dtype));
  auto chunk_view = [&](int64_t h0, int64_t hc, int64_t g) {
    return View{static_cast<const uint8_t*>(a.kspec) + (g * a.H + h0) * filter_bytes,
                reinterpret_cast<float2*>(reinterpret_cast<uint8_t*>(spec) + spec_bytes(g * hc, N1, N2)), hc, 1, 1};
  };
  // bwd_inner_tc_kernel on batch entries b0 .. b0 + nb - 1 of the view, or nb = 0: group zero_g's S set to zero.
  auto bwd_inner = [&](const View& w, int64_t b0, int64_t nb, int64_t zero_g, bool continues) {
    const bool pair = pairable_rows(b0 * w.H, nb * w.H, w.H, w.G, w.R);
    bwd::BwdInnerParams bp{ws_v, ws_g, reinterpret_cast<float4*>(w.spec), w.kspec, b0, nb, w.H, w.G, w.R,
                           zero_g, N1, pair};
    bp.continues = continues;
    const bool bf16 = a.dtype == Elem::kBF16, dpost = a.dpost != nullptr;
    cudaError_t e = cudaErrorInvalidValue;
    dispatch_n(N2, [&](auto n0, auto rad) {
      if constexpr (bwd::bwd_inner_split(n0(), rad())) {
        constexpr int WARPS = inner::tc_warps(n0(), rad());
        auto go = [&](auto kern) {
          e = inner::launch_items(kern, WARPS * 32, bwd::bwd_inner_smem<n0(), rad()>(), w.H * (M1 + 1), stream, bp);
        };
        using BF = inner::BF16;
        using HF = inner::F16;
        if (dpost)
          bf16 ? go(bwd::bwd_inner_tc_kernel<BF, n0(), rad(), WARPS, true>)
               : go(bwd::bwd_inner_tc_kernel<HF, n0(), rad(), WARPS, true>);
        else
          bf16 ? go(bwd::bwd_inner_tc_kernel<BF, n0(), rad(), WARPS, false>)
               : go(bwd::bwd_inner_tc_kernel<HF, n0(), rad(), WARPS, false>);
      }
    });
    return e;
  };
  // CUDA cores: one batch entry (workspace rows from `row`, group g of the view), or row < 0: group g's S set to zero.
  auto dk_spec = [&](const View& w, int64_t row, int64_t g, bool accumulate) {
    const bwd::SpecParams sp{ws_v, ws_g, w.spec, row, w.H, g, N1, lgN2, lgS, accumulate};
    const size_t smem = sizeof(float2) * 2 * static_cast<size_t>(sub);
    const int64_t n = w.H * (M1 + 1) * (N2 / sub);
    return inner::dispatch_lg<8, 12>(ilog2(sub), [&](auto lg) {  // SUB = 256 .. kMaxSub
      switch (a.dtype) {
        case Elem::kF32:
          return bwd::launch_per_unit(bwd::dk_spec_kernel<float, lg()>, bwd::kSpecThreads, smem, n, stream, sp);
        case Elem::kF16:
          return bwd::launch_per_unit(bwd::dk_spec_kernel<__half, lg()>, bwd::kSpecThreads, smem, n, stream, sp);
        default:
          return bwd::launch_per_unit(bwd::dk_spec_kernel<__nv_bfloat16, lg()>, bwd::kSpecThreads, smem, n, stream, sp);
      }
    });
  };
  cudaError_t err;
  if ((err = mark(a.marks, "start", stream)) != cudaSuccess) return err;

  // Steps 1, 2, 4 and 5 on signal rows row0 .. row0 + nr - 1 (the workspaces' rows 0 .. nr - 1). dk's spectrum:
  // `spec_step` (after the outer forwards, before the inner steps overwrite the workspaces); the inner steps of 4
  // and 5 (where bwd_inner_tc_kernel did not run them) with K' of view w, whose rows start at w_row0.
  auto rows_steps = [&](int64_t row0, int64_t nr, const View& w, int64_t w_row0, auto spec_step) -> cudaError_t {
    cudaError_t e;
    // 1. both outer forwards (v is needed by dpost and dk only).
    if (need_v) {
      OuterFwdArgs fv{a.dtype, a.u, a.pre, ws_v, row0, nr, a.L, N1, N2};
      if ((e = outer_forward(fv, stream, path)) != cudaSuccess) return e;
    }
    OuterFwdArgs fg{a.dtype, a.dy, a.post, ws_g, row0, nr, a.L, N1, N2};
    if ((e = outer_forward(fg, stream, path)) != cudaSuccess) return e;
    if ((e = mark(a.marks, "outer forward of v and g", stream)) != cudaSuccess) return e;

    // 2. dk's spectrum, this chunk's rows added in ascending b.
    if (a.dk != nullptr) {
      if ((e = spec_step()) != cudaSuccess) return e;
      const char* step =
          inner_tc ? "dk spectrum and both inner steps (bwd_inner_tc_kernel)" : "dk spectrum (dk_spec_kernel)";
      if ((e = mark(a.marks, step, stream)) != cudaSuccess) return e;
    }

    // 4. dpost = dy * (conv(v, k) + skip v): the forward pipeline with post := dy.
    if (a.dpost != nullptr) {
      InnerArgs nv{a.dtype, ws_v, w.kspec, w_row0, nr, w.H, w.G, w.R, N1, N2};
      if (!inner_tc && (e = inner_forward(nv, stream)) != cudaSuccess) return e;
      OuterInvArgs iv{a.dtype, ws_v, a.dy, nullptr, nullptr, nullptr, a.dpost, row0, nr, a.L, a.H, a.G, a.R, N1, N2};
      if ((e = outer_inverse(iv, stream, path)) != cudaSuccess) return e;
      const char* step = inner_tc ? "dpost: outer inverse" : "dpost: inner step + outer inverse";
      if ((e = mark(a.marks, step, stream)) != cudaSuccess) return e;
    }

    // 5. dv = corr(g, k) + skip g through conj K'; du = pre dv, dpre = u dv.
    InnerArgs ng{a.dtype, ws_g, w.kspec, w_row0, nr, w.H, w.G, w.R, N1, N2};
    if (!inner_tc) {  // (bwd_inner_tc_kernel ran it in step 2)
      if ((e = inner_forward_conj(ng, stream)) != cudaSuccess) return e;
      if ((e = mark(a.marks, "dv: inner step (conj K')", stream)) != cudaSuccess) return e;
    }
    // du = pre dv and dpre = u dv from one inverse pass (its second output).
    OuterInvArgs iu{a.dtype, ws_g, a.pre, nullptr, nullptr, nullptr, a.du, row0, nr, a.L, a.H, a.G, a.R, N1, N2};
    if (a.dpre != nullptr) {
      iu.post2 = a.u;
      iu.y2 = a.dpre;
    }
    if (fused_dskip) {  // dskip's partials from this pass (step 3b)
      iu.dy = a.dy;
      iu.post_dy = a.post;
      iu.skip_part = skp;
    }
    if ((e = outer_inverse(iu, stream, path)) != cudaSuccess) return e;
    return mark(a.marks, "du and dpre: outer inverse", stream);
  };

  // 3. dk of channels h0 .. h0 + hc - 1 (every group) once all of their batch entries are in: S -> time domain (fp32).
  // Per part: every channel at once (one part), or a channel chunk's channels of one group g (G parts). A lent dk
  // workspace is laid out like K' (BwdArgs::dk_ws): a chunk's part then goes where K' keeps those channels' slices,
  // which no later chunk reads.
  auto dk_inverse = [&](int64_t h0, int64_t hc) -> cudaError_t {
    const int64_t parts = by_channels ? a.G : 1, per = by_channels ? hc : a.G * a.H;
    const int isub = bwd::inv_sub_of(N2), lgSi = ilog2(N2 / isub);
    cudaError_t e = cudaSuccess;
    for (int64_t g = 0; g < parts && e == cudaSuccess; ++g) {
      float2* sp = reinterpret_cast<float2*>(reinterpret_cast<uint8_t*>(spec) + spec_bytes(g * per, N1, N2));
      void* wk = !by_channels ? wsk
                 : a.dk_ws != nullptr
                     ? static_cast<uint8_t*>(a.dk_ws) + (g * a.H + h0) * filter_bytes
                     : static_cast<uint8_t*>(wsk) + workspace_bytes(dk_ws_elem(a.dtype), g * per, N1, N2);
      bwd::InvSubParams ip{sp, wk, wsk_bf16, N1, lgN2, lgSi, {}};
      if (inner_tc) {
        int n0 = 0, rad = 0;
        inner::split_n2(N2, &n0, &rad);
        ip.order.lg_n0 = ilog2(n0);
      }
      const size_t ismem = sizeof(float2) * isub + bwd::inv_staging_bytes(ip.order);
      const int64_t iunits = per * (M1 + 1) * (N2 / isub);
      e = isub > 4096 ? bwd::launch_per_unit(bwd::dk_inv_sub_kernel<512>, 512, ismem, iunits, stream, ip)
                      : bwd::launch_per_unit(bwd::dk_inv_sub_kernel<256>, 256, ismem, iunits, stream, ip);
      if (e == cudaSuccess && lgSi > 0) {  // S == 1: dk_inv_sub_kernel stored the workspace itself
        bwd::CombineParams cp{sp, wk, wsk_bf16, per, N1, lgN2, lgSi};
        e = bwd::launch_units(bwd::dk_combine_kernel, 256, 0, per * (M1 + 1), stream, cp);
      }
      // dk's rows g * H + h0 .. (all G * H rows at once for one part).
      OuterInvArgs ik{Elem::kF32, wk, nullptr, nullptr, nullptr, nullptr, a.dk, g * a.H + h0, per, a.Lk, a.H, a.G, a.R,
                      N1, N2};
      ik.ws_bf16 = wsk_bf16;  // tensor cores where they take bf16; fp32 data keeps the fp32 CUDA-core pass
      if (e == cudaSuccess) e = outer_inverse(ik, stream, wsk_bf16 ? OuterPath::kAuto : OuterPath::kCudaCore);
    }
    if (e != cudaSuccess) return e;
    return mark(a.marks,
                wsk_bf16 ? "dk: inverse (sub FFTs, combine, outer inverse from bf16)"
                         : "dk: inverse (sub FFTs, combine, fp32 outer inverse)",
                stream);
  };

  for (int64_t h0 = 0; h0 < a.H; h0 += hc_max) {
    const int64_t hc = std::min(hc_max, a.H - h0);
    // dk's spectrum in ascending b; a group's first entry (of this channel chunk) starts its S.
    std::vector<char> started(a.dk != nullptr ? a.G : 0, 0);
    if (!by_channels) {
      for (int64_t b0 = 0; b0 < a.B; b0 += cb) {
        const int64_t nb = std::min(cb, a.B - b0);
        err = rows_steps(b0 * a.H, nb * a.H, whole, b0 * a.H, [&]() -> cudaError_t {
          cudaError_t e = inner_tc ? bwd_inner(whole, b0, nb, 0, false) : cudaSuccess;
          for (int64_t b = b0; b < b0 + nb && e == cudaSuccess; ++b) {
            const int64_t g = group_of(b, a.R, a.G);
            if (!inner_tc) e = dk_spec(whole, (b - b0) * a.H, g, started[g] != 0);
            started[g] = 1;
          }
          return e;
        });
        if (err != cudaSuccess) return err;
      }
    } else {
      for (int64_t b = 0; b < a.B; ++b) {
        const int64_t g = group_of(b, a.R, a.G);
        const View w = chunk_view(h0, hc, g);
        err = rows_steps(b * a.H + h0, hc, w, 0, [&]() -> cudaError_t {
          const bool cont = started[g] != 0;
          started[g] = 1;
          return inner_tc ? bwd_inner(w, 0, 1, 0, cont) : dk_spec(w, 0, 0, cont);
        });
        if (err != cudaSuccess) return err;
      }
    }
    if (a.dk != nullptr) {
      for (int64_t g = 0; g < a.G; ++g) {  // groups without a batch entry (G > B): S = 0
        if (started[g]) continue;
        const View w = by_channels ? chunk_view(h0, hc, g) : whole;
        const int64_t zg = by_channels ? 0 : g;
        if ((err = inner_tc ? bwd_inner(w, 0, 0, zg, false) : dk_spec(w, -1, zg, false)) != cudaSuccess) return err;
      }
      if ((err = dk_inverse(h0, hc)) != cudaSuccess) return err;
    }
  }

  // 3b. dskip: the partials from step 5's pass (fused_dskip) or from the inputs (all rows), then their sums.
  if (a.dskip != nullptr) {
    const size_t sm_red = 256 * sizeof(double);
    const int64_t pieces = fused_dskip ? dskip_parts(N1, N2) : skip_pieces(N1, N2);
    if (!fused_dskip) {
      bwd::SkipParams kp{a.dy, a.post, a.u, a.pre, skp, rows, a.L, pieces};
      const int64_t n = rows * pieces;
      switch (a.dtype) {
        case Elem::kF32: err = bwd::launch_units(bwd::dskip_rows_kernel<float>, 256, sm_red, n, stream, kp); break;
        case Elem::kF16: err = bwd::launch_units(bwd::dskip_rows_kernel<__half>, 256, sm_red, n, stream, kp); break;
        default: err = bwd::launch_units(bwd::dskip_rows_kernel<__nv_bfloat16>, 256, sm_red, n, stream, kp); break;
      }
      if (err != cudaSuccess) return err;
    }
    if ((err = bwd::launch_units(bwd::dskip_sum_kernel, 256, sm_red, a.G * a.H, stream, static_cast<const double*>(skp),
                                 a.dskip, a.B, a.H, a.G, a.R, pieces)) != cudaSuccess)
      return err;
    if ((err = mark(a.marks, fused_dskip ? "dskip (sums of the du pass's partials)" : "dskip", stream)) != cudaSuccess)
      return err;
  }
  return cudaSuccess;
}

}  // namespace longconv
}  // namespace jff
