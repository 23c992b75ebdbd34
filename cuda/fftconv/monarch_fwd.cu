// Tensor-core fused FFT convolution, forward (see monarch.h for the contract).
//
// Algorithm (DESIGN.md §3). N = RAD * RAD with RAD = 16 or 32. A row x of length N is the
// RAD x RAD matrix X[n1][n2] = x[RAD*n1 + n2]; with F the unitary RAD-point DFT matrix and
// T[k1][n2] = w_N^(k1*n2):
//   Y = ((F X) .* T) F                      Y[k1][k2] = xhat[k1 + RAD*k2] / sqrt(N)
//   out = conj(F) (((Y .* K) conj(F)) .* conj(T))
// where K is k's spectrum laid out in the same (k1, k2) order, so out = irfft(xhat*khat).
// Both DFT normalisations are 1/sqrt(RAD) per step (unitary), which keeps every
// intermediate at the scale of the data: fp16 operands do not overflow at any N.
//
// Two rows per transform: rows b and b+1 of the same h use the same filter, and k is real,
// so conv(v0 + i*v1, k) = conv(v0, k) + i*conv(v1, k). One complex transform does two real
// convolutions exactly, with no Hermitian post-processing. This is the real-input trick
// in its cheapest form; it needs both rows in one filter group (checked in _supported).
//
// Work split: one warp owns one row pair for the whole pipeline, so the only
// synchronisation is __syncwarp. The data stays in mma.sync fragments between the four
// matrix products:
//   * C (accumulator) fragments of two adjacent n-tiles are exactly an A fragment of the
//     next product, so "right-multiply by F" steps chain without data movement;
//   * the left-multiply of step 1 takes X as a B fragment straight from shared memory
//     with ldmatrix.trans;
//   * the left-multiply of step 4 needs its input transposed relative to the C layout:
//     movmatrix.trans does that in registers.
// Since F is symmetric, its B fragments are a re-indexing of its A fragments.
//
// Memory: each warp streams its rows through a two-stage cp.async buffer in shared memory
// (u, pre, post of both rows), so the next pair's loads are in flight while this pair
// computes; y is written back in place of u and stored with 16-byte coalesced stores.
// 16-byte chunks are XOR-swizzled per matrix row so that ldmatrix and the epilogue's
// fragment-ordered accesses are free of bank conflicts.
//
// The skip term is folded into the filter: z + skip*v = conv(v, k + skip*delta), so K gets
// + skip in every bin and the epilogue is only y = post * z.
//
// k's spectrum is computed per (g, h) by a small pre-kernel in float32 and stored in
// exactly the order each lane consumes it (one slot of two complex bins per lane, coalesced:
// float32, or bfloat16 for bfloat16 data, see KSpecOf in monarch_core.cuh). Work items are
// ordered with h slow so that all pairs of one h run at about the same time and K is read
// from HBM once, then from L2.
//
// The device primitives, the inner routine (dft_pair / mul_spec / idft_pair), the outer
// level of the big kernel and the k-spectrum pre-kernel live in monarch_core.cuh, shared
// with the backward (monarch_bwd.cu).
#include "fftconv/monarch.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "fftconv/monarch_core.cuh"
#include "fftconv/monarch_blh.cuh"

namespace jff {
namespace {

struct FwdParams {
  const void* u;
  const void* pre;
  const void* post;
  const void* kspec;  // (G, H) blocks of N/2 KSpecOf<T>::Slot in fragment order, skip folded in
  void* y;
  int B, H, L, G, R;
  int pairs;  // ceil(B / 2)
  int items;  // H * pairs (checked < 2^31 in _supported)
  int l2_prefetch;  // big kernel: prefetch the next item's inputs into L2 (see there)
};

template <int RAD>
struct Shape {
  static constexpr int N = RAD * RAD;
  static constexpr int MT = RAD / 16;  // m-tiles of 16 rows
  static constexpr int KS = RAD / 16;  // k-steps of 16
  static constexpr int NT = RAD / 8;   // n-tiles of 8 columns
  static constexpr int STAGE_ELEMS = 3 * 2 * N;  // streams (u, pre, post) x rows x N
};

template <typename T, int RAD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    monarch_fwd_sq_kernel(const FwdParams p) {
  using S = Shape<RAD>;
  using O = Ops<T>;
  constexpr int N = S::N, MT = S::MT, KS = S::KS, NT = S::NT;
  constexpr int CHUNKS = N / 8;  // 16-byte chunks per row

  extern __shared__ uint4 smem_raw[];
  float4* tw = reinterpret_cast<float4*>(smem_raw);  // N/2 float4, fragment order
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gid = lane >> 2, tig = lane & 3;
  T* stage_base = reinterpret_cast<T*>(smem_raw + N / 2) + warp * 2 * S::STAGE_ELEMS;

  // Twiddles w_N^(k1*n2) for this lane's C-fragment positions, shared by the block.
  init_inner_twiddles<T, RAD>(tw, threadIdx.x, blockDim.x);
  // The unitary DFT matrix as A fragments: F[r][c] = w_RAD^(r*c) / sqrt(RAD).
  uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
  dft_frags_regs<T, RAD>(Fr, Fi, lane);
  begin_after_prior_grids();  // the tables above are computed; K and the rows below are read
  __syncthreads();

  const T* u = static_cast<const T*>(p.u);
  const T* pre = static_cast<const T*>(p.pre);
  const T* post = static_cast<const T*>(p.post);
  T* y = static_cast<T*>(p.y);
  const bool has_pre = pre != nullptr, has_post = post != nullptr;

  const int warp0 = blockIdx.x * WARPS + warp;
  const int live = live_row_blocks<RAD>(p.L);  // the causal case skips work: see there
  // Rows n1 >= 16 * live are neither read by the DFTs nor stored (t >= L there): their loads and
  // epilogue are skipped too. Warp-uniform: a block of 16 rows is 16 * RAD elements, whole i steps.
  const int live_elems = 16 * RAD * live;
  const int wstride = gridDim.x * WARPS;

  // Issues the cp.async loads of one item into stage `st`; every lane commits one group.
  auto issue_loads = [&](int item, int st) {
    const int h = item / p.pairs, b0 = 2 * (item - h * p.pairs);
    const bool row1 = b0 + 1 < p.B;
    T* sb = stage_base + st * S::STAGE_ELEMS;
    const int64_t base0 = (static_cast<int64_t>(b0) * p.H + h) * p.L;
    const int64_t base1 = base0 + static_cast<int64_t>(p.H) * p.L;
#pragma unroll
    for (int s = 0; s < 3; ++s) {
      const T* src = s == 0 ? u : (s == 1 ? pre : post);
      if (src == nullptr) continue;
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const bool rv = rr == 0 || row1;
        const T* rowp = src + (rr ? base1 : base0);
        T* dst = sb + (s * 2 + rr) * N;
#pragma unroll
        for (int i = 0; i < CHUNKS / 32; ++i) {
          const int t = (lane + 32 * i) * 8;
          if (256 * i >= live_elems) break;
          const bool valid = rv && t < p.L;
          cp_async16<Touch::kLast>(dst + swz_offset<RAD>(t / RAD, t % RAD), valid ? rowp + t : src, valid ? 16 : 0);
        }
      }
    }
    cp_async_commit();
  };

  int st = 0;
  if (warp0 < p.items) issue_loads(warp0, 0);
  for (int item = warp0; item < p.items; item += wstride) {
    const int next = item + wstride;
    if (next < p.items) {
      issue_loads(next, st ^ 1);
    } else {
      cp_async_commit();  // keeps the wait count below uniform
    }
    cp_async_wait<1>();
    __syncwarp();

    const int h = item / p.pairs, b0 = 2 * (item - h * p.pairs);
    const bool row1 = b0 + 1 < p.B;
    const int g = (b0 / p.R) % p.G;
    T* sb = stage_base + st * S::STAGE_ELEMS;
    const auto* kk =
        static_cast<const typename KSpecOf<T>::Slot*>(p.kspec) + (static_cast<int64_t>(g) * p.H + h) * (N / 2);
    prefetch_k_l1<RAD>(kk, lane);

    // DFT of v = u*pre (formed in registers), times K, inverse DFT: z + skip*v in Yr / Yi.
    float Yr[MT][NT][4], Yi[MT][NT][4];
    dft_pair<T, RAD>(sb + 0 * N, sb + 1 * N, has_pre ? sb + 2 * N : nullptr, sb + 3 * N, 0, Fr, Fi, tw,
                     lane, Yr, Yi, live);
    {
      SpecFrags<RAD> Pr, Pi;
      mul_spec<T, RAD, false>(Yr, Yi, kk, lane, Pr, Pi);
      idft_pair<T, RAD>(Pr, Pi, Fr, Fi, tw, lane, Yr, Yi, live);
    }

    // ---- epilogue: y = post * z (skip*v is inside z: K carries + skip), over u in the stage.
    __syncwarp();
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          if (mt > 0 && mt >= live) continue;  // rows past L (see live_elems)
          const int off = swz_offset<RAD>(16 * mt + gid + 8 * hh, 8 * nt + 2 * tig);
#pragma unroll
          for (int rr = 0; rr < 2; ++rr) {
            const float(&Z)[MT][NT][4] = rr == 0 ? Yr : Yi;
            float y0 = Z[mt][nt][2 * hh], y1 = Z[mt][nt][2 * hh + 1];
            if (has_post) {
              const float2 qq = O::unpack(*reinterpret_cast<const uint32_t*>(sb + (4 + rr) * N + off));
              y0 *= qq.x;
              y1 *= qq.y;
            }
            *reinterpret_cast<uint32_t*>(sb + rr * N + off) = O::pack(y0, y1);
          }
        }
    __syncwarp();
#pragma unroll 4
    for (int c = lane; c < 2 * CHUNKS; c += 32) {
      const int rr = c / CHUNKS, t = (c % CHUNKS) * 8;
      if ((rr == 0 || row1) && t < p.L) {
        const uint4 val = *reinterpret_cast<const uint4*>(sb + rr * N + swz_offset<RAD>(t / RAD, t % RAD));
        uint4* const out = reinterpret_cast<uint4*>(y + (static_cast<int64_t>(b0 + rr) * p.H + h) * p.L + t);
        store_hinted<Touch::kLast>(out, val);
      }
    }
    __syncwarp();  // the next iteration's cp.async refills this stage
    st ^= 1;
  }
  cp_async_wait<0>();
}

constexpr int kWarps = 4;

template <int RAD>
size_t sq_smem_bytes() {
  using S = Shape<RAD>;
  return sizeof(float4) * (S::N / 2) + size_t(kWarps) * 2 * S::STAGE_ELEMS * 2;
}

FwdParams make_params(const FftconvFwdArgs& a, const void* kspec) {
  const FftconvDims& d = a.d;
  FwdParams p;
  p.u = a.u;
  p.pre = a.pre;
  p.post = a.post;
  p.kspec = kspec;
  p.y = a.y;
  p.B = static_cast<int>(d.B);
  p.H = static_cast<int>(d.H);
  p.L = static_cast<int>(d.L);
  p.G = static_cast<int>(d.G);
  p.R = static_cast<int>(d.R);
  p.pairs = static_cast<int>((d.B + 1) / 2);
  p.items = p.H * p.pairs;
  p.l2_prefetch = 0;
  return p;
}

// Resident CTAs per SM times SMs for `kern` (the persistent grid's size).
template <typename K>
cudaError_t resident_ctas(K kern, int threads, size_t smem, int64_t* out) {
  cudaError_t err;
  int dev = 0, nsm = 0, per_sm = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, threads, smem)) != cudaSuccess)
    return err;
  if (per_sm < 1) return cudaErrorInvalidConfiguration;
  *out = int64_t(nsm) * per_sm;
  return cudaSuccess;
}

template <typename T, int RAD>
cudaError_t launch_sq(const FftconvFwdArgs& a, cudaStream_t stream, void* kspec) {
  const FftconvDims& d = a.d;
  cudaError_t err = launch_kspec<T, 1, RAD>(a.k, d.G * d.H, d.Lk, a.skip, kspec, stream);
  if (err != cudaSuccess) return err;

  auto kern = monarch_fwd_sq_kernel<T, RAD, kWarps>;
  const size_t sm = sq_smem_bytes<RAD>();
  err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
  if (err != cudaSuccess) return err;
  int64_t resident = 0;
  if ((err = resident_ctas(kern, kWarps * 32, sm, &resident)) != cudaSuccess) return err;
  const FwdParams p = make_params(a, kspec);
  const int64_t want = (int64_t(p.items) + kWarps - 1) / kWarps;
  const int64_t grid = want < resident ? want : resident;
  return launch_kernel(kern, static_cast<unsigned>(grid), kWarps * 32, sm, stream, p);
}


// =======================================================================================
// N = N0 * M with M = RAD^2 in {256, 1024}: N = 512 and 2048 .. 32768, and N0 = 1 (N = 256/1024)
// for lengths the cp.async kernel above cannot take (L % 8 != 0).
//
// One more four-step level around the routine above (monarch_core.cuh's header). One CTA
// owns one row pair; the whole complex signal (real plane = row b, imaginary plane = row
// b+1) lives in shared memory as 16-bit values (4N bytes: 128 KB at N = 32768) between the
// phases load -> outer DFT -> inner rows -> outer inverse -> store, separated by
// __syncthreads. The outer DFT (N0 = 16, 32) is a tensor-core product F_N0 * X over
// 16-column tiles, one tile per warp at a time (outer_dft / outer_idft); N0 = 2 is a
// butterfly folded into the load and store passes. Overlap of memory and compute comes from
// several CTAs per SM (one at N = 32768).
// =======================================================================================

// Asks L2 for the 128-byte lines of n 16-bit elements at p (a hint: nothing waits on it).
// Rounding the start down stays inside the allocation, which is 128-byte aligned.
__device__ __forceinline__ void prefetch_l2(const uint16_t* p, int n, int tid, int nth) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(127);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + n);
  for (uintptr_t a = first + uintptr_t(128) * tid; a < end; a += uintptr_t(128) * nth)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
}

// Chunks of 8 elements each thread of the big kernel loads per round of its load phase (u and
// pre of both rows: 4 x 16 bytes per chunk, held in registers until the round is stored). RAD = 16
// (4K / 8K) takes 2: 4 capped 4K / 8K at 4 / 3 CTAs per SM (124 / 150 registers; 96 / 124 with 2);
// H200, 8K 1.75 -> 1.64 ms, 4K -1.5%. RAD = 32 (16K / 32K, one or two CTAs per SM whatever the
// round, so 2 kept only ~32 KB of loads in flight per SM) takes 4 since the transposed spectrum
// made room (255 registers; float16 spills 36 bytes): H200, issue-3 workload, two interleaved
// rounds, bfloat16 16K 3.67 -> 3.48 ms, 32K 8.99 -> 7.90; float16 16K 3.80 -> 3.71, 32K 8.96 ->
// 8.01 (3 chunks: 3.80 / 8.44). Session 16, logs/nvidia-h200-monarch-load-rounds-ab-session16.log.
template <int RAD>
constexpr int big_load_round() {
  return RAD == 32 ? 4 : 2;
}

// A round of U chunks per thread (chunk c0 + i*NTH, 8 elements each) that lies whole inside both
// rows, 16-byte aligned: every round but the last ones. It needs no per-chunk bounds checks, and its
// loads address each row once with the chunks at constant offsets (load8 costs about 9 instructions
// per chunk in checks, branches and 64-bit address arithmetic). L1 = 0 (no second row) never is whole.
// H200, issue-3 workload, against load8 / store8 for every round: 4K 0.701 -> 0.673 ms, 8K 1.466 ->
// 1.397 ms, 32K 9.39 -> 9.09 ms (at 8 bytes of spill in the bfloat16 16K / 32K kernels).
template <int U, int NTH>
__device__ __forceinline__ bool whole_round(bool vec, int c0, int L, int L1) {
  return vec && 8 * (c0 + (U - 1) * NTH) + 8 <= (L < L1 ? L : L1);
}
template <int U, int NTH>
__device__ __forceinline__ void load_round(const uint16_t* src, int64_t base0, int64_t base1, int c0, uint4 (&r0)[U],
                                           uint4 (&r1)[U]) {
  const uint4* const p0 = reinterpret_cast<const uint4*>(src + base0) + c0;
  const uint4* const p1 = reinterpret_cast<const uint4*>(src + base1) + c0;
#pragma unroll
  for (int i = 0; i < U; ++i) {
    r0[i] = load_hinted<Touch::kLast>(p0 + i * NTH);
    r1[i] = load_hinted<Touch::kLast>(p1 + i * NTH);
  }
}

// One warp: inner row k0 of a row pair's planes (bre, bim: that row's block), times its block kk of
// K, inverse, then the conjugate twiddle conj(w_N^(k0 m)), in place.
template <typename T, int N0, int RAD>
__device__ __forceinline__ void fwd_inner_row(const BigSmem<T, N0, RAD>& sm, T* bre, T* bim, int k0,
                                              const typename KSpecOf<T>::Slot* kk, const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                              const uint32_t (&Fi)[RAD / 16][RAD / 16][4], int lane) {
  constexpr int MT = RAD / 16, NT = RAD / 8;
  const int key = (k0 & 7) << 3;
  prefetch_k_l1<RAD>(kk, lane);
  float Yr[MT][NT][4], Yi[MT][NT][4];
  dft_pair<T, RAD>(bre, bim, nullptr, nullptr, key, Fr, Fi, sm.tw, lane, Yr, Yi);
  inner_row_inverse<T, N0, RAD, false>(Yr, Yi, kk, Fr, Fi, sm.tw, sm.twN, bre, bim, key, k0, lane);
}

// Phase probe of the BHL big kernel, a compile-time switch for one timing experiment (its results are wrong and
// the self-test reports them as failures), as the backward's JFF_BWD_PHASE_PROBE: 1 = the load and store phases
// alone (no transforms), 2 = the transforms alone (zeros in place of the loads, no output stores; K is still
// read). Against the full kernel it tells how much of a CTA's time each phase takes at N0 >= 16 and so what
// overlapping them could gain (notes_monarch.md, session 29).
#ifndef JFF_FWD_PHASE_PROBE
#define JFF_FWD_PHASE_PROBE 0
#endif
constexpr bool kFwdProbeTransforms = JFF_FWD_PHASE_PROBE != 1, kFwdProbeStreams = JFF_FWD_PHASE_PROBE != 2;

// The big kernels' store phase multiplies by the post gate as packed 16-bit pairs (Ops::mul2), bitwise what the
// float32 route gives (see there). JFF_STORE_PACKED=0: the float32 route, as before session 34. Not yet timed.
#ifndef JFF_STORE_PACKED
#define JFF_STORE_PACKED 1
#endif
constexpr bool kStorePacked = JFF_STORE_PACKED != 0;

// The phases between load and store, shared by the BHL and the BLH kernel: outer DFT, inner rows
// with K, outer inverse DFT, in place in the planes (the caller syncs before; this syncs after).
template <typename T, int N0, int RAD, int WARPS>
__device__ __forceinline__ void big_fwd_compute(const BigSmem<T, N0, RAD>& sm, const typename KSpecOf<T>::Slot* kbase,
                                                int live16,
                                                int warp, int lane) {
  using S = BigShape<N0, RAD>;
  constexpr int M = S::M, MT = S::MT, KS = S::KS;
  T* const sre = sm.sre;
  T* const sim = sm.sim;
  const TwN<S::N> twN = sm.twN;
  // ---- outer DFT over n0 (tensor cores), twiddle w_N^(k0 m), in place.
  if constexpr (S::kMmaOuter) {
    outer_dft<T, N0, RAD, WARPS, true>(sre, sim, sm.frag0, twN, live16, warp, lane);
    __syncthreads();
  }

  // ---- inner rows: the M-point routine on each row k0 with row k0's block of K, then the
  // conjugate twiddle conj(w_N^(k0 m)), in place.
  {
    uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
    load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
    for (int k0 = warp; k0 < N0; k0 += WARPS)
      fwd_inner_row<T, N0, RAD>(sm, sre + k0 * M, sim + k0 * M, k0, kbase + k0 * (M / 2), Fr, Fi, lane);
  }
  __syncthreads();

  // ---- outer inverse DFT (conj F_N0), output rows n0 with M*n0 < L only, in place.
  if constexpr (S::kMmaOuter) {
    outer_idft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, live16, warp, lane);
    __syncthreads();
  }
}

template <typename T, int N0, int RAD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    monarch_fwd_big_kernel(const FwdParams p) {
  using S = BigShape<N0, RAD>;
  using O = Ops<T>;
  constexpr int M = S::M, N = S::N;
  constexpr int NTH = WARPS * 32;

  extern __shared__ uint4 smem_raw[];
  BigSmem<T, N0, RAD> sm(smem_raw);
  T* const sre = sm.sre;
  T* const sim = sm.sim;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  sm.init(tid, NTH);
  begin_after_prior_grids();  // the tables above are computed; K and the rows below are read
  __syncthreads();
  const TwN<N> twN = sm.twN;

  const uint16_t* u = static_cast<const uint16_t*>(p.u);
  const uint16_t* pre = static_cast<const uint16_t*>(p.pre);
  const uint16_t* post = static_cast<const uint16_t*>(p.post);
  uint16_t* y = static_cast<uint16_t*>(p.y);
  const bool vec = (p.L & 7) == 0;
  const int L = p.L;
  // Rows of X that can be nonzero, rounded up to the outer DFT's 16-row k-steps: the
  // k-steps (and output m-tiles) beyond it are skipped (half of them for L = N/2).
  const int live16 = S::kMmaOuter ? (L + 16 * M - 1) / (16 * M) : 1;
  const int lpad = S::kMmaOuter ? min(N, live16 * 16 * M) : N;

  for (int item = blockIdx.x; item < p.items; item += gridDim.x) {
    const int h = item / p.pairs, b0 = 2 * (item - h * p.pairs);
    const bool row1 = b0 + 1 < p.B;
    const int g = (b0 / p.R) % p.G;
    const int64_t base0 = (static_cast<int64_t>(b0) * p.H + h) * p.L;
    const int64_t base1 = base0 + static_cast<int64_t>(p.H) * p.L;
    const int L1 = row1 ? L : 0;
    const auto* kbase =
        static_cast<const typename KSpecOf<T>::Slot*>(p.kspec) + (static_cast<int64_t>(g) * p.H + h) * (N / 2);
    // ---- load: v = pre*u of both rows into the planes (and, for N0 = 2, the outer butterfly).
    if constexpr (N0 <= 2) {
      for (int c = tid; c < M / 8; c += NTH) {
        float xr[N0][8], xi[N0][8];
#pragma unroll
        for (int n0 = 0; n0 < N0; ++n0) {
          const int t = n0 * M + 8 * c;
          uint4 a0 = load8<Touch::kLast>(u + base0, t, L, vec), a1 = load8<Touch::kLast>(u + base1, t, L1, vec);
          if (pre != nullptr) {
            a0 = mul8<T>(a0, load8<Touch::kLast>(pre + base0, t, L, vec));
            a1 = mul8<T>(a1, load8<Touch::kLast>(pre + base1, t, L1, vec));
          }
          unpack8<T>(a0, xr[n0]);
          unpack8<T>(a1, xi[n0]);
        }
        const int m = 8 * c, m1 = m / RAD, m2 = m % RAD;
        if constexpr (N0 == 1) {
          *reinterpret_cast<uint4*>(sre + sig_off<RAD>(0, m1, m2)) = pack8<T>(xr[0]);
          *reinterpret_cast<uint4*>(sim + sig_off<RAD>(0, m1, m2)) = pack8<T>(xi[0]);
        } else {
          store_outer_butterfly2<T, RAD>(sre, sim, xr, xi, m, twN);
        }
      }
    } else {
      // big_load_round chunks per thread per round, all loads issued before any is used.
      constexpr int U = big_load_round<RAD>();
      // Chunks that can hold data (t < L). Past them, up to lpad, the outer DFT reads the rows' zero
      // padding (the second half of a causal row at 4K / 16K): zeros are stored there instead of
      // running the load loop on nothing (all of lpad in the probe without streams).
      const int nch = kFwdProbeStreams ? min(lpad, (L + 7) & ~7) / 8 : 0;
      zero_chunks<T, RAD, NTH>(sre, sim, 8 * nch, lpad, tid);
      for (int c0 = tid; c0 < nch; c0 += U * NTH) {
        uint4 a0[U], a1[U], q0[U], q1[U];
        if (whole_round<U, NTH>(vec, c0, L, L1)) {
          load_round<U, NTH>(u, base0, base1, c0, a0, a1);
          if (pre != nullptr) load_round<U, NTH>(pre, base0, base1, c0, q0, q1);
        } else {
#pragma unroll
          for (int i = 0; i < U; ++i) {
            const int t = 8 * (c0 + i * NTH);
            a0[i] = load8<Touch::kLast>(u + base0, t, L, vec);
            a1[i] = load8<Touch::kLast>(u + base1, t, L1, vec);
            if (pre != nullptr) {
              q0[i] = load8<Touch::kLast>(pre + base0, t, L, vec);
              q1[i] = load8<Touch::kLast>(pre + base1, t, L1, vec);
            }
          }
        }
#pragma unroll
        for (int i = 0; i < U; ++i) {
          const int c = c0 + i * NTH;
          if (c < nch) {
            if (pre != nullptr) {
              a0[i] = mul8<T>(a0[i], q0[i]);
              a1[i] = mul8<T>(a1[i], q1[i]);
            }
            const int t = 8 * c;
            const int off = chunk_sig_off<RAD>(t);
            *reinterpret_cast<uint4*>(sre + off) = a0[i];
            *reinterpret_cast<uint4*>(sim + off) = a1[i];
          }
        }
      }
    }
    __syncthreads();

    // The phases of one CTA run one after another, so its next load would wait on HBM latency
    // with nothing else to do. Ask L2 for the next item's u and pre now, while this item
    // computes, and for this item's post where that still fits comfortably (N <= 4096).
    // Enabled per size by the launcher (it pays off only for N0 <= 2; see notes_monarch.md).
    if (p.l2_prefetch) {
      const int nxt = item + gridDim.x;
      if (nxt < p.items) {
        const int h2 = nxt / p.pairs, c0 = 2 * (nxt - h2 * p.pairs);
        const int64_t nb0 = (static_cast<int64_t>(c0) * p.H + h2) * p.L;
        const int64_t nb1 = nb0 + static_cast<int64_t>(p.H) * p.L;
        const bool nrow1 = c0 + 1 < p.B;
        prefetch_l2(u + nb0, L, tid, NTH);
        if (nrow1) prefetch_l2(u + nb1, L, tid, NTH);
        if (pre != nullptr) {
          prefetch_l2(pre + nb0, L, tid, NTH);
          if (nrow1) prefetch_l2(pre + nb1, L, tid, NTH);
        }
      }
      if (N <= 4096 && post != nullptr) {
        prefetch_l2(post + base0, L, tid, NTH);
        if (row1) prefetch_l2(post + base1, L, tid, NTH);
      }
    }

    if constexpr (kFwdProbeTransforms || N0 <= 2) big_fwd_compute<T, N0, RAD, WARPS>(sm, kbase, live16, warp, lane);

    // ---- store: y = post * out (skip*v is inside out: K carries + skip), first L elements.
    if constexpr (N0 <= 2) {
      constexpr float kS = N0 == 2 ? 0.70710678118654752f : 1.f;
      for (int c = tid; c < M / 8; c += NTH) {
        const int m = 8 * c, m1 = m / RAD, m2 = m % RAD;
        float zr[N0][8], zi[N0][8];
#pragma unroll
        for (int k0 = 0; k0 < N0; ++k0) {
          unpack8<T>(*reinterpret_cast<const uint4*>(sre + sig_off<RAD>(k0, m1, m2)), zr[k0]);
          unpack8<T>(*reinterpret_cast<const uint4*>(sim + sig_off<RAD>(k0, m1, m2)), zi[k0]);
        }
        if constexpr (N0 == 2) {
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            const float ar = zr[0][e], ai = zi[0][e], br = zr[1][e], bi = zi[1][e];
            zr[0][e] = kS * (ar + br);
            zi[0][e] = kS * (ai + bi);
            zr[1][e] = kS * (ar - br);
            zi[1][e] = kS * (ai - bi);
          }
        }
#pragma unroll
        for (int n0 = 0; n0 < N0; ++n0) {
          const int t = n0 * M + m;
          if (post != nullptr) {
            float g0[8], g1[8];
            unpack8<T>(load8<Touch::kLast>(post + base0, t, L, vec), g0);
            unpack8<T>(load8<Touch::kLast>(post + base1, t, L1, vec), g1);
#pragma unroll
            for (int e = 0; e < 8; ++e) {
              zr[n0][e] *= g0[e];
              zi[n0][e] *= g1[e];
            }
          }
          store8<Touch::kLast>(y + base0, t, L, vec, pack8<T>(zr[n0]));
          store8<Touch::kLast>(y + base1, t, L1, vec, pack8<T>(zi[n0]));
        }
      }
    } else {
      // 2: a 4-chunk round here spilled 32 bytes in the bfloat16 16K / 32K kernels and measured
      // 32K 7.92 -> 7.77 ms but 16K 3.51 -> 3.65 (session 16).
      constexpr int U = 2;
      const int nch = (L + 7) / 8;
      for (int c0 = tid; kFwdProbeStreams && c0 < nch; c0 += U * NTH) {
        uint4 g0[U], g1[U];
        const bool whole = whole_round<U, NTH>(vec, c0, L, L1);
        if (post != nullptr) {
          if (whole) {
            load_round<U, NTH>(post, base0, base1, c0, g0, g1);
          } else {
#pragma unroll
            for (int i = 0; i < U; ++i) {
              const int t = 8 * (c0 + i * NTH);
              g0[i] = load8<Touch::kLast>(post + base0, t, L, vec);
              g1[i] = load8<Touch::kLast>(post + base1, t, L1, vec);
            }
          }
        }
#pragma unroll
        for (int i = 0; i < U; ++i) {
          const int c = c0 + i * NTH;
          if (c >= nch) continue;
          const int t = 8 * c;
          const int off = chunk_sig_off<RAD>(t);
          uint4 zr = *reinterpret_cast<const uint4*>(sre + off);
          uint4 zi = *reinterpret_cast<const uint4*>(sim + off);
          // The post gate as packed 16-bit products (kStorePacked): the product of two 16-bit values is exact
          // in float32, so rounding it once to 16 bits is what the float32 route (unpack, multiply, pack) gave,
          // bit for bit, in 4 instructions per row and chunk instead of ~28.
          if (post != nullptr) {
            if constexpr (kStorePacked) {
              zr = mul8<T>(zr, g0[i]);
              zi = mul8<T>(zi, g1[i]);
            } else {
              float z0[8], z1[8], p0[8], p1[8];
              unpack8<T>(zr, z0);
              unpack8<T>(zi, z1);
              unpack8<T>(g0[i], p0);
              unpack8<T>(g1[i], p1);
#pragma unroll
              for (int e = 0; e < 8; ++e) {
                z0[e] *= p0[e];
                z1[e] *= p1[e];
              }
              zr = pack8<T>(z0);
              zi = pack8<T>(z1);
            }
          }
          if (whole) {
            store_hinted<Touch::kLast>(reinterpret_cast<uint4*>(y + base0) + c, zr);
            store_hinted<Touch::kLast>(reinterpret_cast<uint4*>(y + base1) + c, zi);
          } else {
            store8<Touch::kLast>(y + base0, t, L, vec, zr);
            store8<Touch::kLast>(y + base1, t, L1, vec, zi);
          }
        }
      }
    }
    __syncthreads();  // the next item's load overwrites the planes
  }
}

// BLH: the big kernel's pipeline with the load and store done for a tile of TH = CL * HPC
// consecutive heads at once (monarch_blh.cuh): a cluster of CL CTAs holding HPC heads each. N >= 8192:
// CL = 16, HPC = 1 (one head's row pair fills a CTA); 4096: CL = 8, HPC = 2 (the heads one after
// the other); N <= 2048: CL = 1, HPC = 16 or 8, a CTA transposes its own tile and its warps share
// the heads' inner rows. Work items are (head tile,
// row pair), ordered so that the TPL tiles sharing 128-byte lines of the rows run at the same time
// (a 32-byte sector is fetched from DRAM with its neighbour), then row pair, then tile group.


template <typename T, int N0, int RAD>
__global__ void __launch_bounds__(BlhShape<N0, RAD>::WARPS * 32, BlhShape<N0, RAD>::MIN_CTAS)
    monarch_fwd_blh_kernel(const FwdParams p) {
  using S = BigShape<N0, RAD>;
  using B = BlhShape<N0, RAD>;
  constexpr int M = S::M, N = S::N, MT = S::MT, KS = S::KS;
  constexpr int CL = B::CL, HPC = B::HPC, TH = B::TH, WARPS = B::WARPS, NTH = WARPS * 32;

  extern __shared__ uint4 smem_raw[];
  // Head j's planes at planes + 2N j (real, then imaginary); the tables after the last head's.
  T* const planes = reinterpret_cast<T*>(smem_raw);
  BigSmem<T, N0, RAD> sm(planes + (HPC - 1) * 2 * N);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  sm.init(tid, NTH);  // the first tile barrier below also orders this

  const uint16_t* u = static_cast<const uint16_t*>(p.u);
  const uint16_t* pre = static_cast<const uint16_t*>(p.pre);
  const uint16_t* post = static_cast<const uint16_t*>(p.post);
  uint16_t* y = static_cast<uint16_t*>(p.y);
  const int L = p.L;
  const int live16 = S::kMmaOuter ? (L + 16 * M - 1) / (16 * M) : 1;
  const int lpad = S::kMmaOuter ? min(N, live16 * 16 * M) : N;
  const int rank = CL > 1 ? static_cast<int>(cluster_rank()) : 0;
  const int gthread = rank * NTH + tid;
  const int htiles = (p.H + TH - 1) / TH;
  const int stride = gridDim.x / CL;

  // The tile of `item`, or false for the last tile group's missing tiles (the same for the
  // whole cluster).
  auto tile_of = [&](int item, BlhTile& tl) {
    const int rest = item / B::TPL, pair = rest % p.pairs;
    const int ht = (rest / p.pairs) * B::TPL + item % B::TPL;
    const int b0 = 2 * pair;
    tl.h0 = ht * TH;
    tl.H = p.H;
    tl.L = L;
    tl.L1 = b0 + 1 < p.B ? L : 0;
    tl.base0 = static_cast<int64_t>(b0) * L * p.H + tl.h0;
    tl.base1 = tl.base0 + static_cast<int64_t>(L) * p.H;
    tl.vec = p.H % 8 == 0;
    tl.g = (b0 / p.R) % p.G;
    return ht < htiles;
  };
  auto next_item = [&](int item, BlhTile& tl) {
    while (item < p.items && !tile_of(item, tl)) item += stride;
    return item;
  };
  // Everything between the load and the store (heads past H, in the last tile, only help move
  // the others' data).
  auto compute = [&](const BlhTile& tl) {
    const int hc = tl.h0 + rank * HPC;  // this CTA's first head
    const auto* kbase =
        static_cast<const typename KSpecOf<T>::Slot*>(p.kspec) + (static_cast<int64_t>(tl.g) * p.H + hc) * (N / 2);
    if constexpr (N0 == 2) {  // the outer butterfly, which the BHL kernel folds into its load
      blh_outer_butterfly2<T, RAD, HPC>(planes, hc, p.H, sm.twN, tid, NTH);
      __syncthreads();
    }
    if constexpr (HPC == 1) {
      if (hc < p.H) big_fwd_compute<T, N0, RAD, WARPS>(sm, kbase, live16, warp, lane);
    } else if constexpr (S::kMmaOuter) {  // the heads one after another, all warps on each
      for (int j = 0; j < HPC && hc + j < p.H; ++j) {
        BigSmem<T, N0, RAD> head = sm;
        head.sre = planes + j * 2 * N;
        head.sim = head.sre + N;
        big_fwd_compute<T, N0, RAD, WARPS>(head, kbase + j * (N / 2), live16, warp, lane);
      }
    } else {
      uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
      load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
      for (int r = warp; r < HPC * N0; r += WARPS) {
        const int j = r / N0, k0 = r % N0;
        if (hc + j >= p.H) continue;
        T* re = planes + j * 2 * N + k0 * M;
        fwd_inner_row<T, N0, RAD>(sm, re, re + N, k0, kbase + j * (N / 2) + k0 * (M / 2), Fr, Fi, lane);
      }
    }
  };

  BlhTile tl;
  for (int item = next_item(blockIdx.x / CL, tl); item < p.items; item = next_item(item + stride, tl)) {
    tile_sync<CL>();  // nobody still reads the planes (previous item's store)
    blh_push_tile<T, N, RAD, CL, HPC>(u, pre, tl, lpad, planes, gthread, CL * NTH);
    tile_sync<CL>();  // every column has arrived
    compute(tl);
    tile_sync<CL>();  // every head's result is final
    blh_pull_tile<T, N0, RAD, CL, HPC>(y, post, tl, planes, gthread, CL * NTH);
  }
  if constexpr (CL > 1) cluster_sync_all();  // peers may still read this CTA's planes
}

template <typename T, int N0, int RAD>
cudaError_t launch_big(const FftconvFwdArgs& a, cudaStream_t stream, void* kspec) {
  constexpr int WARPS = big_warps(N0, RAD);
  const FftconvDims& d = a.d;
  cudaError_t err = launch_kspec<T, N0, RAD>(a.k, d.G * d.H, d.Lk, a.skip, kspec, stream);
  if (err != cudaSuccess) return err;

  auto kern = monarch_fwd_big_kernel<T, N0, RAD, WARPS>;
  const size_t sm = BigShape<N0, RAD>::kSmem;
  err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
  if (err != cudaSuccess) return err;
  int64_t resident = 0;
  if ((err = resident_ctas(kern, WARPS * 32, sm, &resident)) != cudaSuccess) return err;
  FwdParams p = make_params(a, kspec);
  // L2 prefetch: on by default only for N0 <= 2 (N = 256/1024 odd L, 2048), where it was
  // measured faster (H200: 2048 0.68 -> 0.57 ms); at N >= 4096 it cost 2-8% (extra L2 traffic
  // competing with K). JFF_MONARCH_L2_PREFETCH=0/1 forces it (a measurement switch).
  const char* pf = std::getenv("JFF_MONARCH_L2_PREFETCH");
  p.l2_prefetch = pf != nullptr ? (pf[0] != '0') : (N0 <= 2);
  const int64_t grid = p.items < resident ? p.items : resident;
  return launch_kernel(kern, static_cast<unsigned>(grid), WARPS * 32, sm, stream, p);
}

// The BLH forward kernel, for blh_clusters_fit.
struct FwdBlhKernels {
  template <typename T, int N0, int RAD>
  static constexpr auto kern() {
    return monarch_fwd_blh_kernel<T, N0, RAD>;
  }
  template <int N0, int RAD>
  static constexpr size_t smem() {
    return BlhShape<N0, RAD>::kSmem;
  }
};

template <typename T, int N0, int RAD>
cudaError_t launch_blh(const FftconvFwdArgs& a, cudaStream_t stream, void* kspec) {
  using B = BlhShape<N0, RAD>;
  const FftconvDims& d = a.d;
  cudaError_t err = launch_kspec<T, N0, RAD>(a.k, d.G * d.H, d.Lk, a.skip, kspec, stream);
  if (err != cudaSuccess) return err;

  FwdParams p = make_params(a, kspec);
  // Tile groups of TPL tiles (4 measured against 1 on the H200: 4K 1.88 -> 1.55 ms, 32K 21.6 -> 17.7).
  const int groups = static_cast<int>((d.H + int64_t(B::TH) * B::TPL - 1) / (int64_t(B::TH) * B::TPL));
  p.items = groups * B::TPL * p.pairs;
  if constexpr (B::CL == 1) {
    auto kern = monarch_fwd_blh_kernel<T, N0, RAD>;
    const size_t sm = B::kSmem;
    err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
    if (err != cudaSuccess) return err;
    int64_t resident = 0;
    if ((err = resident_ctas(kern, B::WARPS * 32, sm, &resident)) != cudaSuccess) return err;
    const int64_t grid = std::min<int64_t>(p.items, std::max(resident, blh_min_units(p.items, d.N)));
    kern<<<static_cast<unsigned>(grid), B::WARPS * 32, sm, stream>>>(p);
    return cudaGetLastError();
  } else {
#ifdef JFF_MONARCH_EMU
    return cudaErrorNotSupported;
#else
    return launch_clusters<monarch_fwd_blh_kernel<T, N0, RAD>, B::CL, B::WARPS * 32, B::kSmem>(p, p.items, stream,
                                                                                                blh_min_units(p.items, d.N));
#endif
  }
}

// The cp.async kernel (N = 256/1024 with 16-byte aligned rows) is the faster path where it applies.
bool use_sq(const FftconvDims& d) { return radix_of(d.N) != 0 && d.L % 8 == 0; }

}  // namespace

bool monarch_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  if (device_major < 8) return false;
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return false;
  // N >= 4096 moves BLH tiles with a thread block cluster (compute capability 9.0; not in the CPU
  // emulation).
  if (d.layout != kBHL && !(d.layout == kBLH && (device_major >= 9 || d.N <= 2048))) return false;
  if (d.layout == kBLH && d.N > 2048) {
    if (!blh_clusters_fit<FwdBlhKernels>(d.dtype, d.N)) return false;  // e.g. a small GPU partition (and the CPU emulation)
  }
  size_t sm = 0, ksm = 0;
  const bool known = dispatch_n(d.N, [&](auto n0, auto rad) {  // N = 256 .. 32768
    sm = d.layout == kBLH ? BlhShape<n0(), rad()>::kSmem : BigShape<n0(), rad()>::kSmem;
    ksm = kspec_smem_bytes<n0(), rad()>();
  });
  if (!known) return false;
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  if (d.G < 1 || d.R < 1) return false;
  // Rows 2p and 2p+1 share one transform, hence one filter group.
  if (d.G != 1 && d.R % 2 != 0) return false;
  if (d.layout == kBHL && use_sq(d)) sm = radix_of(d.N) == 16 ? sq_smem_bytes<16>() : sq_smem_bytes<32>();
  // Falls back (false) where the device's per-block opt-in shared memory is too small, e.g.
  // N = 32768 (150 KB main, 192 KB pre-kernel) on a GPU with less than 192 KB.
  if (sm > max_smem_per_block || ksm > max_smem_per_block) return false;
  // Item and row indices are 32-bit in the kernel (element offsets are 64-bit).
  if (d.B >= (int64_t(1) << 30) || d.R >= (int64_t(1) << 30) || d.G * d.H >= (int64_t(1) << 31)) return false;
  if (d.H * ((d.B + 1) / 2) >= (int64_t(1) << 30)) return false;
  return true;
}

size_t monarch_fwd_scratch_bytes(const FftconvDims& d) {
  // K's spectrum: G * H * N complex values of KSpecOf<T>::Elem.
  return kspec_bytes_for(d.dtype == DType::kBF16, d.G * d.H, d.N);
}

cudaError_t monarch_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void* scratch,
                        size_t scratch_bytes) {
  const FftconvDims& d = a.d;
  if (scratch == nullptr || scratch_bytes < monarch_fwd_scratch_bytes(d)) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(scratch) % 16 != 0) return cudaErrorInvalidValue;
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return cudaErrorInvalidValue;
  void* kspec = scratch;
  const bool bf = d.dtype == DType::kBF16;
  cudaError_t err = cudaErrorInvalidValue;
  if (d.layout == kBLH) {
    dispatch_n(d.N, [&](auto n0, auto rad) {
      err = bf ? launch_blh<__nv_bfloat16, n0(), rad()>(a, stream, kspec)
               : launch_blh<__half, n0(), rad()>(a, stream, kspec);
    });
    return err;
  }
  if (d.layout != kBHL) return cudaErrorInvalidValue;
  if (use_sq(d)) {
    const int rad = radix_of(d.N);
    if (rad == 16) err = bf ? launch_sq<__nv_bfloat16, 16>(a, stream, kspec) : launch_sq<__half, 16>(a, stream, kspec);
    if (rad == 32) err = bf ? launch_sq<__nv_bfloat16, 32>(a, stream, kspec) : launch_sq<__half, 32>(a, stream, kspec);
    return err;
  }
  dispatch_n(d.N, [&](auto n0, auto rad) {
    err = bf ? launch_big<__nv_bfloat16, n0(), rad()>(a, stream, kspec)
             : launch_big<__half, n0(), rad()>(a, stream, kspec);
  });
  return err;
}

}  // namespace jff
