// Tensor-core fused FFT convolution, backward (see monarch_bwd.h for the contract).
//
// Transform machinery: the forward's (monarch_fwd.cu header comment, monarch_core.cuh, which
// holds all device code the two directions share): unitary four-step DFTs on mma.sync
// fragments, rows b, b+1 of one h packed as real / imaginary part of one complex signal.
//
// Math per row pair (cuda/README.md): v = pre*u, dz = dy*post, K' = khat + skip (skip folded
// into the filter as in the forward: z + skip*v = conv(v, k + skip*delta)).
//   X  = DFT(v0 + i v1)
//   z' = IDFT(X .* K')      -> dpost = dy * z'       (only when post and dpost exist)
//   D  = DFT(dz0 + i dz1)
//   dv = IDFT(D .* conj(K')) -> du = dv*pre, dpre = dv*u   (corr(dz, k) + skip*dz)
//   dk: with P = conj(X) .* D, sum_rows conj(V_b) DZ_b = (P[f] + conj(P[-f]))/2 for the two rows
//       of a pair, and the inverse transform of that Hermitian part is Re(IDFT(P)). So
//       dk[g,h] = Re(IDFT(sum over pairs of P))[:Lk] with no per-pair unpacking.
//   dskip[g,h] = sum_t dz*v, summed directly in float32 in the time domain from the 16-bit
//       inputs (as the lag-0 term of the spectral sum its absolute error was dk's, which is
//       large next to a small dskip).
// Because the transforms are unitary, X and D are the spectra / sqrt(N) and P = conj(xhat)dhat/N,
// which is exactly what an unnormalised inverse DFT turns into dk.
//
// Deterministic reductions: the pairs of one h are cut into chunks of `cp` consecutive pairs
// that lie in one filter group. One warp (N = 256/1024, rows 16-byte aligned) or one CTA
// (every other case) processes a whole chunk in pair order and accumulates P (float32,
// fragment order) into the chunk's slot in global scratch: the first pair writes, the others
// read-add-write, each thread always the same entries, so the summation order is fixed and no
// atomics are used (the big kernel at N = 2048 .. 16384, where the SM has room, adds into a
// shared-memory copy and stores the slot once per chunk: `big_bwd_has_shared_acc`,
// launch_bwd_big; at N = 32768 a quarter of it (JFF_BWD_PART_ACC_ROWS); elsewhere the slot is in L2 at best: at
// N = 32768 ncu shows most of that read-add-write going to DRAM). dskip goes the same
// way through one float per chunk. A last kernel, one block per (g, h), sums the slots of the
// chunks of group g in chunk order and runs one float32 inverse DFT.
//
// Two kernels for the main pass:
// * monarch_bwd_sq_kernel (N = 256/1024, L % 8 == 0): one warp per row pair. u and pre stream
//   through a two-stage cp.async buffer (the next pair's loads fly during this pair's four
//   transforms), post and dy through one buffer loaded at the start of the pair and first read
//   after two transforms (24 KB per warp at N=1024, so 8 warps fit an SM). Results are staged
//   in place of inputs that are no longer needed and leave with 16-byte coalesced stores: dz
//   (the MMA operand) replaces post, dpost replaces dy, du and dpre replace u and pre. The
//   packed spectrum X is kept in registers in the 16-bit type (one extra rounding on the dk
//   path only).
// * monarch_bwd_big_kernel (N = 2048..32768, and N = 256/1024 with any L): the forward's big
//   structure, one CTA per row pair with the whole complex signal in shared memory (4N bytes),
//   outer N0-point DFT + the inner routine per row k0. Only one signal fits at N = 32768, so
//   the pair runs as passes over that one buffer:
//     1. v = u*pre -> outer DFT -> per inner row: X_k0 saved (16-bit, fragment order) to a
//        per-CTA buffer in global memory (4N bytes, written and read back by the same thread,
//        it lives in L2); if dpost: times K', inner inverse -> outer inverse = z'.
//     2. one pass in element order: dpost = dy * z' out, dz = dy*post in, dskip += dz*v.
//     3. outer DFT of dz -> per inner row: D_k0, P_k0 += conj(X_k0) D_k0 into the chunk slot;
//        times conj(K'), inner inverse -> outer inverse = dv.
//     4. du = dv*pre, dpre = dv*u out.
//   u and pre are read again in passes 2 and 4 (L2 hits while the CTA is on the pair, when it
//   fits): more traffic than the 7-stream floor; the price of one shared-memory signal.
#include "fftconv/monarch_bwd.h"

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

// The backward's big kernels look store_inner_row's row twiddles up instead of reading the forward's per-lane
// table (BigShape::kLaneTw, 4 KB at N = 4096): with it the 4096 shared-accumulator variant needed 59,152 B per CTA,
// so 3 CTAs per SM on an H100 / H200 (228 KB) instead of 4, and launch_bwd_big's warps rule fell back to the
// global-slot variant (the slot read-add-write per pair back in the DRAM traffic). Without it: 55,056 B, 4 CTAs;
// H100, B=64 H=768 fwd+bwd through JAX: bf16 2.229 -> 1.755 ms, fp16 2.431 -> 1.881 (session 41).
// JFF_BWD_ROW_LANE_TW=1 keeps the table in the backward (A/B runs). monarch_core.cuh is in an anonymous namespace,
// so this translation unit's BigShape may differ from the forward's.
#ifndef JFF_BWD_ROW_LANE_TW
#define JFF_BWD_ROW_LANE_TW 0
#endif
#ifndef JFF_ROW_LANE_TW
#define JFF_ROW_LANE_TW JFF_BWD_ROW_LANE_TW
#endif
#include "fftconv/monarch_core.cuh"
#include "fftconv/monarch_blh.cuh"

// Which element types' kernels this translation unit compiles: 1 = bfloat16 (with the host-side
// entry points below), 2 = float16, 3 = both. The package builds the two halves as separate
// translation units (monarch_bwd_bf16.cu, monarch_bwd_f16.cu), since this file was the build's
// longest compile; the standalone self-tests compile this file alone, with both.
#ifndef JFF_MONARCH_BWD_TYPES
#define JFF_MONARCH_BWD_TYPES 3
#endif

namespace jff {
namespace {

template <int RAD>
struct BwdShape {
  static constexpr int N = RAD * RAD;
  static constexpr int MT = RAD / 16;  // m-tiles of 16 rows
  static constexpr int KS = RAD / 16;  // k-steps of 16
  static constexpr int NT = RAD / 8;   // n-tiles of 8 columns
  // u and pre are needed first (X) and are double-buffered; post and dy are needed only
  // after X and z' are done, so one buffer loaded at the start of the pair hides their
  // latency behind the first transforms. Per warp: [u,pre stage 0][u,pre stage 1][post,dy].
  static constexpr int HALF_ELEMS = 2 * 2 * N;  // two streams x rows x N
  static constexpr int WARP_ELEMS = 3 * HALF_ELEMS;
};

struct BwdParams {
  const void* dy;
  const void* u;
  const void* pre;
  const void* post;
  const void* kspec;  // (G, H) blocks of N/2 KSpecOf<T>::Slot in fragment order, skip folded in
  float4* slots;        // (H, chunks) blocks of N/2 float4 (fragment order), then the balanced tail's; nullptr: no dk
  float* sslots;        // (H, chunks) partial dskip sums, then the balanced tail's; nullptr: no dskip
  uint2* xbuf;          // big kernel: N/2 uint2 per CTA (the spectrum X of the current pair)
  void* du;             // each nullptr when not wanted
  void* dpre;
  void* dpost;
  int B, H, L, G, R;
  int pairs;   // ceil(B / 2)
  int cp;      // pairs per chunk; a chunk never spans two filter groups
  int chunks;  // ceil(pairs / cp)
  int items;   // H * chunks
};

// The balanced tail of the big kernel's last round (its TAIL instantiation, JFF_MONARCH_BWD_TAIL=1). The items
// (channel, chunk of cp pairs) go out by stride over the persistent grid, and wherever their number is not a
// multiple of the grid the busiest worker holds one item more than the average: at 8K-32K with H = 768 (one chunk
// per channel) 768 items on 132 CTAs is 6 against 5.82, ~3% of the kernel's SM time idle at its end (4K: 1536 on
// 528, 3 against 2.91). The tail keeps the stride for the whole rounds (items below tail_i0 = items - items mod W,
// W workers = CTAs) and splits the T = (items - tail_i0) * cp pairs of the last items (all chunks whole: pairs a
// multiple of cp), in order q = (i - tail_i0) * cp + (pair's place in item i), into equal ranges: worker w takes
// [lo(w), lo(w + 1)), lo(w) = floor(w T / W). A worker's part of an item has its own slot: the part that starts the
// item the item's slot i, a part that starts inside it (only ever a worker's first part) the worker's extra slot
// items + w; a small kernel (monarch_bwd_tail_merge_kernel) adds them in pair order before the dk reduce, so the
// result is deterministic (dk / dskip differ from the stride hand-out in their rounding only; du, dpre, dpost are
// the same bits).
__host__ __device__ __forceinline__ int64_t bwd_range_lo(int64_t w, int64_t W, int64_t T) { return w * T / W; }
// The worker whose range holds q: the largest w with lo(w) <= q.
__host__ __device__ __forceinline__ int64_t bwd_worker_of(int64_t q, int64_t W, int64_t T) {
  return ((q + 1) * W - 1) / T;
}

template <typename T, int RAD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    monarch_bwd_sq_kernel(const BwdParams p) {
  using S = BwdShape<RAD>;
  using O = Ops<T>;
  constexpr int N = S::N, MT = S::MT, KS = S::KS, NT = S::NT;
  constexpr int RCH = N / 8;  // 16-byte chunks per row

  extern __shared__ uint4 smem_raw[];
  float4* tw = reinterpret_cast<float4*>(smem_raw);  // N/2 float4, fragment order
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gid = lane >> 2, tig = lane & 3;
  T* const up_base = reinterpret_cast<T*>(smem_raw + N / 2) + warp * S::WARP_ELEMS;
  T* const rPost = up_base + 2 * S::HALF_ELEMS;  // rows 0, 1 of post (later dz)
  T* const rDy = rPost + 2 * N;                 // rows 0, 1 of dy (later dpost)

  // Twiddles w_N^(k1*n2) for this lane's C-fragment positions, shared by the block, and the
  // unitary DFT matrix as A fragments: F[r][c] = w_RAD^(r*c) / sqrt(RAD).
  init_inner_twiddles<T, RAD>(tw, threadIdx.x, blockDim.x);
  uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
  dft_frags_regs<T, RAD>(Fr, Fi, lane);
  begin_after_prior_grids();  // the tables above are computed; K and the rows below are read
  __syncthreads();

  const T* const src[4] = {static_cast<const T*>(p.u), static_cast<const T*>(p.pre),
                           static_cast<const T*>(p.post), static_cast<const T*>(p.dy)};
  const bool has_pre = p.pre != nullptr, has_post = p.post != nullptr;
  const bool want_dpost = p.dpost != nullptr;  // implies has_post (checked on the host)
  const bool want_dpre = p.dpre != nullptr;    // implies has_pre
  const bool want_dskip = p.sslots != nullptr;
  float dsk_run = 0.f;  // dskip partial of the current chunk (pair order)

  const int warp0 = blockIdx.x * WARPS + warp;
  // v and dz are zero past L and only rows of z', dv within L are stored: see live_row_blocks.
  const int live = live_row_blocks<RAD>(p.L);
  // Rows n1 >= 16 * live are neither read by the DFTs nor stored (t >= L there): their loads and
  // element work are skipped too. Warp-uniform: a block of 16 rows is 16 * RAD elements, whole i steps.
  const int live_elems = 16 * RAD * live;
  const int wstride = gridDim.x * WARPS;

  // Issues the cp.async loads of streams s0, s0+1 (u, pre or post, dy) of pair `pr` of
  // channel `h` into `sb` (stream s0 + s, row rr at sb + (2s + rr) * N); every lane commits one
  // group. Positions t >= L and a missing second row are zero-filled: that is the implicit
  // padding of v and dz, and it makes a lone last row contribute nothing to dk.
  auto issue_loads = [&](int h, int pr, int s0, T* sb) {
    const int b0 = 2 * pr;
    const bool row1 = b0 + 1 < p.B;
    const int64_t base0 = (static_cast<int64_t>(b0) * p.H + h) * p.L;
    const int64_t rstride = static_cast<int64_t>(p.H) * p.L;
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      const T* sp = src[s0 + s];
      if (sp == nullptr) continue;
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const bool rv = rr == 0 || row1;
        T* dst = sb + (s * 2 + rr) * N;
#pragma unroll
        for (int i = 0; i < RCH / 32; ++i) {
          const int t = (lane + 32 * i) * 8;
          if (256 * i >= live_elems) break;
          const bool valid = rv && t < p.L;
          cp_async16<Touch::kLast>(dst + swz_offset<RAD>(t / RAD, t % RAD),
                     valid ? sp + base0 + rr * rstride + t : sp, valid ? 16 : 0);
        }
      }
    }
    cp_async_commit();
  };

  // Copies rows 0 (and 1) of a staged region to global with 16-byte coalesced stores.
  auto store_rows = [&](const T* region, void* dst_v, int h, int b0, bool row1) {
    T* dst = static_cast<T*>(dst_v);
#pragma unroll 4
    for (int c = lane; c < 2 * RCH; c += 32) {
      const int rr = c / RCH, t = (c % RCH) * 8;
      if ((rr == 0 || row1) && t < p.L) {
        const uint4 val =
            *reinterpret_cast<const uint4*>(region + rr * N + swz_offset<RAD>(t / RAD, t % RAD));
        uint4* const out = reinterpret_cast<uint4*>(dst + (static_cast<int64_t>(b0 + rr) * p.H + h) * p.L + t);
        store_hinted<Touch::kLast>(out, val);
      }
    }
  };

  // Work list of this warp: items (h, chunk) warp0, warp0 + wstride, ...; within an item its
  // pairs in increasing order (the order the chunk's dk partial sum is accumulated in).
  int it = warp0;
  if (it >= p.items) return;  // no __syncthreads below this point
  int h = it / p.chunks;
  int pr = (it - h * p.chunks) * p.cp;
  int pend = min(pr + p.cp, p.pairs);

  int st = 0;
  issue_loads(h, pr, 0, up_base);
  while (true) {
    // The next pair of this warp, loaded into the other stage while this one is processed.
    int nit = it, nh = h, npr = pr + 1, npend = pend;
    if (npr == pend) {
      nit = it + wstride;
      if (nit < p.items) {
        nh = nit / p.chunks;
        npr = (nit - nh * p.chunks) * p.cp;
        npend = min(npr + p.cp, p.pairs);
      }
    }
    const bool has_next = nit < p.items;
    // Groups in flight after this, oldest first: u/pre of this pair, post/dy of this pair,
    // u/pre of the next pair.
    issue_loads(h, pr, 2, rPost);
    if (has_next) {
      issue_loads(nh, npr, 0, up_base + (st ^ 1) * S::HALF_ELEMS);
    } else {
      cp_async_commit();  // keeps the wait counts below uniform
    }
    cp_async_wait<2>();  // this pair's u, pre
    __syncwarp();

    const int b0 = 2 * pr;
    const bool row1 = b0 + 1 < p.B;
    const int g = (b0 / p.R) % p.G;
    T* const rU = up_base + st * S::HALF_ELEMS;
    T* const rPre = rU + 2 * N;
    const auto* kk =
        static_cast<const typename KSpecOf<T>::Slot*>(p.kspec) + (static_cast<int64_t>(g) * p.H + h) * (N / 2);
    prefetch_k_l1<RAD>(kk, lane);

    // ---- X = DFT(v), v = u * pre formed in registers.
    float Yr[MT][NT][4], Yi[MT][NT][4];
    dft_pair<T, RAD>(rU, rU + N, has_pre ? rPre : nullptr, rPre + N, 0, Fr, Fi, tw, lane, Yr, Yi, live);
    // X kept for P = conj(X) D, packed like an A fragment (32 registers instead of 64).
    uint32_t Xr[MT][KS][4], Xi[MT][KS][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int ks = nt >> 1, q = (nt & 1) * 2 + hh;
          Xr[mt][ks][q] = O::pack(Yr[mt][nt][2 * hh], Yr[mt][nt][2 * hh + 1]);
          Xi[mt][ks][q] = O::pack(Yi[mt][nt][2 * hh], Yi[mt][nt][2 * hh + 1]);
        }

    // ---- z' = z + skip*v = IDFT(X K') for dpost.
    if (want_dpost) {
      SpecFrags<RAD> Wr, Wi;
      mul_spec<T, RAD, false>(Yr, Yi, kk, lane, Wr, Wi);
      idft_pair<T, RAD>(Wr, Wi, Fr, Fi, tw, lane, Yr, Yi, live);
    }

    cp_async_wait<1>();  // this pair's post, dy
    __syncwarp();

    // ---- dz = dy * post in place of post; dpost = dy * z' in place of dy; dskip: sum of
    // dz*v over both rows in float32 from the staged 16-bit inputs (zero beyond L and for a
    // missing row). Lane order, a fixed butterfly, then the chunk's running sum in pair order
    // (lane 0 keeps it in a register, the slot is written once at the chunk's end): bitwise
    // reproducible, and no global read on the pair's critical path.
    if (has_post || want_dskip) {
      float acc = 0.f;
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
              uint32_t* dyp = reinterpret_cast<uint32_t*>(rDy + rr * N + off);
              uint32_t* pop = reinterpret_cast<uint32_t*>(rPost + rr * N + off);
              const uint32_t dyv = *dyp;
              float2 dz = O::unpack(dyv);
              if (has_post) {
                const uint32_t pv = *pop;
                *pop = O::mul2(dyv, pv);
                if (want_dpost) {
                  const float(&Z)[MT][NT][4] = rr == 0 ? Yr : Yi;
                  *dyp = O::pack(dz.x * Z[mt][nt][2 * hh], dz.y * Z[mt][nt][2 * hh + 1]);
                }
                const float2 gt = O::unpack(pv);
                dz.x *= gt.x;
                dz.y *= gt.y;
              }
              if (want_dskip) {
                float2 v = O::unpack(*reinterpret_cast<const uint32_t*>(rU + rr * N + off));
                if (has_pre) {
                  const float2 gt = O::unpack(*reinterpret_cast<const uint32_t*>(rPre + rr * N + off));
                  v.x *= gt.x;
                  v.y *= gt.y;
                }
                acc = fmaf(dz.x, v.x, acc);
                acc = fmaf(dz.y, v.y, acc);
              }
            }
          }
      __syncwarp();
      if (want_dpost) store_rows(rDy, p.dpost, h, b0, row1);
      if (want_dskip) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        dsk_run = pr % p.cp == 0 ? acc : dsk_run + acc;
        if (lane == 0 && pr + 1 == pend) __stcg(p.sslots + static_cast<int64_t>(h) * p.chunks + pr / p.cp, dsk_run);
      }
    }

    // ---- D = DFT(dz).
    const T* rDz = has_post ? rPost : rDy;
    dft_pair<T, RAD>(rDz, rDz + N, nullptr, nullptr, 0, Fr, Fi, tw, lane, Yr, Yi, live);

    // ---- P = conj(X) D, accumulated into this chunk's slot (fixed order, see header).
    if (p.slots != nullptr) {
      float4* slot = p.slots + (static_cast<int64_t>(h) * p.chunks + pr / p.cp) * (N / 2);
      const bool first = pr % p.cp == 0;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        float4 old[NT][2];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh)
            old[nt][hh] = first ? make_float4(0.f, 0.f, 0.f, 0.f)
                                : __ldcg(slot + ((mt * NT + nt) * 2 + hh) * 32 + lane);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            const int ks = nt >> 1, q = (nt & 1) * 2 + hh;
            const float2 xr = O::unpack(Xr[mt][ks][q]), xi = O::unpack(Xi[mt][ks][q]);
            const float dr0 = Yr[mt][nt][2 * hh], di0 = Yi[mt][nt][2 * hh];
            const float dr1 = Yr[mt][nt][2 * hh + 1], di1 = Yi[mt][nt][2 * hh + 1];
            float4 pv = old[nt][hh];
            pv.x += xr.x * dr0 + xi.x * di0;
            pv.y += xr.x * di0 - xi.x * dr0;
            pv.z += xr.y * dr1 + xi.y * di1;
            pv.w += xr.y * di1 - xi.y * dr1;
            __stcg(slot + ((mt * NT + nt) * 2 + hh) * 32 + lane, pv);
          }
      }
    }

    // ---- dv = IDFT(D conj(K')) = corr(dz, k) + skip*dz.
    {
      SpecFrags<RAD> Wr, Wi;
      mul_spec<T, RAD, true>(Yr, Yi, kk, lane, Wr, Wi);
      idft_pair<T, RAD>(Wr, Wi, Fr, Fi, tw, lane, Yr, Yi, live);
    }

    // ---- du = dv * pre in place of u, dpre = dv * u in place of pre.
    if (p.du != nullptr || want_dpre) {
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
              const float v0 = Z[mt][nt][2 * hh], v1 = Z[mt][nt][2 * hh + 1];
              uint32_t* up = reinterpret_cast<uint32_t*>(rU + rr * N + off);
              uint32_t* pp = reinterpret_cast<uint32_t*>(rPre + rr * N + off);
              if (has_pre) {
                const float2 uf = O::unpack(*up), pf = O::unpack(*pp);
                *up = O::pack(v0 * pf.x, v1 * pf.y);
                if (want_dpre) *pp = O::pack(v0 * uf.x, v1 * uf.y);
              } else {
                *up = O::pack(v0, v1);
              }
            }
          }
      __syncwarp();
      if (p.du != nullptr) store_rows(rU, p.du, h, b0, row1);
      if (want_dpre) store_rows(rPre, p.dpre, h, b0, row1);
    }
    __syncwarp();  // the next iteration's cp.async refills the post/dy buffer and this stage

    st ^= 1;
    if (!has_next) break;
    it = nit;
    h = nh;
    pr = npr;
    pend = npend;
  }
  cp_async_wait<0>();
}

// ---------------------------------------------------------------------------------------
// Big kernel (see the header comment): one CTA per row pair, the pairs of a chunk in order.
// ---------------------------------------------------------------------------------------

// Raw 16-byte chunks of rows b and b+1 of S streams, as load8_pairs fills them.
template <int S>
struct PairChunks {
  uint4 r0[S], r1[S];
};

// One pass over the signal in element order t, 8 elements a thread at a time. For each
// 8-chunk: fetch(t, raw) issues the chunk's global loads into raw (a Raw); if `read`, (zr, zi) =
// the signal at t (rows b, b+1; for N0 <= 2 the outer inverse butterfly is applied here, the inner
// rows having been untwiddled already), else zeros; use(t, raw, zr, zi) turns them in place into
// the values to keep; if WRITE they are stored (for N0 = 2 through the outer forward butterfly and
// twiddle). For N0 >= 16 only t < limit is visited (the rest of the signal is never read), and the
// loads go out before the signal's shared-memory reads; chunks at t >= live (the rows' zero padding:
// nothing to load, nothing to store) are not fetched or used, only zeroed in the planes if WRITE (see
// zero_chunks). Two chunks per iteration with all their loads first measured no faster at 16K / 32K
// (session 16, notes_monarch_bwd.md).
template <typename T, int N0, int RAD, int NTH, bool WRITE, typename Raw, typename Fetch, typename Use>
__device__ __forceinline__ void exchange(T* sre, T* sim, const TwN<N0 * RAD * RAD>& twN, bool read,
                                         int limit, int live, int tid, Fetch&& fetch, Use&& use) {
  constexpr int M = RAD * RAD;
  if constexpr (N0 <= 2) {
    constexpr float kS = N0 == 2 ? 0.70710678118654752f : 1.f;
    for (int c = tid; c < M / 8; c += NTH) {
      const int m = 8 * c, m1 = m / RAD, m2 = m % RAD;
      float zr[N0][8], zi[N0][8];
#pragma unroll
      for (int k0 = 0; k0 < N0; ++k0) {
        if (read) {
          unpack8<T>(*reinterpret_cast<const uint4*>(sre + sig_off<RAD>(k0, m1, m2)), zr[k0]);
          unpack8<T>(*reinterpret_cast<const uint4*>(sim + sig_off<RAD>(k0, m1, m2)), zi[k0]);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) zr[k0][e] = zi[k0][e] = 0.f;
        }
      }
      if constexpr (N0 == 2) {
        if (read) {
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            const float ar = zr[0][e], ai = zi[0][e], br = zr[1][e], bi = zi[1][e];
            zr[0][e] = kS * (ar + br);
            zi[0][e] = kS * (ai + bi);
            zr[1][e] = kS * (ar - br);
            zi[1][e] = kS * (ai - bi);
          }
        }
      }
#pragma unroll
      for (int n0 = 0; n0 < N0; ++n0) {
        Raw raw;
        fetch(n0 * M + m, raw);
        use(n0 * M + m, raw, zr[n0], zi[n0]);
      }
      if constexpr (WRITE) {
        if constexpr (N0 == 1) {
          *reinterpret_cast<uint4*>(sre + sig_off<RAD>(0, m1, m2)) = pack8<T>(zr[0]);
          *reinterpret_cast<uint4*>(sim + sig_off<RAD>(0, m1, m2)) = pack8<T>(zi[0]);
        } else {
          store_outer_butterfly2<T, RAD>(sre, sim, zr, zi, m, twN);
        }
      }
    }
  } else {
    if constexpr (WRITE) zero_chunks<T, RAD, NTH>(sre, sim, live, limit, tid);
    for (int c = tid; c < live / 8; c += NTH) {
      const int t = 8 * c, n0 = t / M, m = t % M;
      const int off = sig_off<RAD>(n0, m / RAD, m % RAD);
      Raw raw;
      fetch(t, raw);
      float zr[8], zi[8];
      if (read) {
        unpack8<T>(*reinterpret_cast<const uint4*>(sre + off), zr);
        unpack8<T>(*reinterpret_cast<const uint4*>(sim + off), zi);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) zr[e] = zi[e] = 0.f;
      }
      use(t, raw, zr, zi);
      if constexpr (WRITE) {
        *reinterpret_cast<uint4*>(sre + off) = pack8<T>(zr);
        *reinterpret_cast<uint4*>(sim + off) = pack8<T>(zi);
      }
    }
  }
}

// Pass 1 on one inner row k0 of a row pair's planes (one warp): X = the row's DFT, saved to x
// (16-bit, fragment order; global memory that stays in L2) when dk is wanted; with dpost, the
// row times its block kk of K', inverse, then the conjugate twiddle, in place (z').
template <typename T, int N0, int RAD>
__device__ __forceinline__ void bwd_row_pass1(const BigSmem<T, N0, RAD>& sm, const TwN<N0 * RAD * RAD>& twN,
                                              T* bre, T* bim, int k0, const typename KSpecOf<T>::Slot* kk, uint2* x,
                                              bool want_dk,
                                              bool want_dpost,
                                              const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                              const uint32_t (&Fi)[RAD / 16][RAD / 16][4], int lane) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, NT = RAD / 8;
  const int key = (k0 & 7) << 3;
  if (want_dpost) prefetch_k_l1<RAD>(kk, lane);
  float Yr[MT][NT][4], Yi[MT][NT][4];
  dft_pair<T, RAD>(bre, bim, nullptr, nullptr, key, Fr, Fi, sm.tw, lane, Yr, Yi);
  if (want_dk) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int j = (mt * NT + nt) * 2 + hh;
          __stcg(x + j * 32 + lane, make_uint2(O::pack(Yr[mt][nt][2 * hh], Yr[mt][nt][2 * hh + 1]),
                                               O::pack(Yi[mt][nt][2 * hh], Yi[mt][nt][2 * hh + 1])));
        }
  }
  if (want_dpost) inner_row_inverse<T, N0, RAD, false>(Yr, Yi, kk, Fr, Fi, sm.tw, twN, bre, bim, key, k0, lane);
}

// Pass 3 on one inner row k0 (one warp): D = the row's DFT; with dk, P += conj(X) D into the
// row's part of the chunk's accumulator, acc_base + acc_off (written, not added, for the chunk's
// first pair): the slot in global scratch, or with kSharedAcc its copy in shared memory (the
// caller writes it to the slot at the chunk's end). Each lane always touches the same entries,
// so the order of the sum is the same either way. With dv, D times conj of its block kk of K',
// inverse, then the conjugate twiddle, in place (dv).
template <typename T, int N0, int RAD, bool kSharedAcc = false>
__device__ __forceinline__ void bwd_row_pass3(const BigSmem<T, N0, RAD>& sm, const TwN<N0 * RAD * RAD>& twN,
                                              T* bre, T* bim, int k0, const typename KSpecOf<T>::Slot* kk,
                                              const uint2* x,
                                              float4* acc_base, int64_t acc_off, bool first, bool want_dk,
                                              bool want_dv,
                                              const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                              const uint32_t (&Fi)[RAD / 16][RAD / 16][4], int lane) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, NT = RAD / 8;
  const int key = (k0 & 7) << 3;
  if (want_dv) prefetch_k_l1<RAD>(kk, lane);
  float Yr[MT][NT][4], Yi[MT][NT][4];
  dft_pair<T, RAD>(bre, bim, nullptr, nullptr, key, Fr, Fi, sm.tw, lane, Yr, Yi);
  if (want_dk) {
    float4* acc = acc_base + acc_off;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float4 old[NT][2];
      uint2 xv[NT][2];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int j = (mt * NT + nt) * 2 + hh;
          xv[nt][hh] = __ldcg(x + j * 32 + lane);
          old[nt][hh] = first        ? make_float4(0.f, 0.f, 0.f, 0.f)
                        : kSharedAcc ? acc[j * 32 + lane]
                                     : __ldcg(acc + j * 32 + lane);
        }
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const int j = (mt * NT + nt) * 2 + hh;
          const float2 xr = O::unpack(xv[nt][hh].x), xi = O::unpack(xv[nt][hh].y);
          const float dr0 = Yr[mt][nt][2 * hh], di0 = Yi[mt][nt][2 * hh];
          const float dr1 = Yr[mt][nt][2 * hh + 1], di1 = Yi[mt][nt][2 * hh + 1];
          float4 pv = old[nt][hh];
          pv.x += xr.x * dr0 + xi.x * di0;
          pv.y += xr.x * di0 - xi.x * dr0;
          pv.z += xr.y * dr1 + xi.y * di1;
          pv.w += xr.y * di1 - xi.y * dr1;
          if constexpr (kSharedAcc)
            acc[j * 32 + lane] = pv;
          else
            __stcg(acc + j * 32 + lane, pv);
        }
    }
  }
  if (want_dv) inner_row_inverse<T, N0, RAD, true>(Yr, Yi, kk, Fr, Fi, sm.tw, twN, bre, bim, key, k0, lane);
}

// The big kernel can keep the chunk's dk accumulator (N/2 float4, 8N bytes) in shared memory
// (SHARED_ACC): the per-pair read-add-write of the slot in global memory (16N bytes per pair,
// mostly L2 misses: ncu at 4096 showed 6.5% L2 hits on loads and DRAM traffic ~2.6x the 7-stream
// floor) becomes one store per chunk. That variant exists for N = 2048 .. 16384 and runs where
// it keeps nearly as many warps per SM as the other (launch_bwd_big): on an H100/H200 (228 KB
// per SM) it does, 4 CTAs x 54.5 KB at 4096, and measured 4096 2.854 -> 2.641 ms, 2048 1.942 ->
// 1.824 ms (B=64 H=768 bf16); with 164 KB (A100) or 100 KB per SM it would cost CTAs. At 8192 and
// 16384 the accumulator (64 / 128 KB) leaves room for half the CTAs, so that variant runs twice
// the warps per CTA (big_bwd_acc_warps): 16384 then is one CTA of 8 warps and 209 KB per SM
// instead of two of 4 warps, and the slots' 16N bytes per pair leave the DRAM traffic (ncu at
// 16384: 30 GB moved against the 7 streams' 11.3, the slots 21% of it, and with them in L2 the
// K' blocks and X buffers of the resident CTAs were evicted too); H200: 16384 11.39 -> 10.93 ms,
// 8192 5.43 -> 5.25, less than the bytes suggest (the passes' loads and transforms alternate in
// step across the SM's warps, so DRAM idles during transforms). The one-warp N0 = 1 kernels (odd
// L at 256/1024) got slower with it (1024: 1.567 -> 1.655 ms; more spills) and have no such
// variant. At 32768 the whole accumulator (256 KB) does not fit beside the 151 KB signal: the shared
// variant there (JFF_BWD_PART_ACC_ROWS, default 8) keeps the part of 8 inner rows (8 KB each, one row
// per warp, 64 KB) and the other rows' part stays in the slot, a quarter less read-add-write traffic:
// H100, B=64 H=768 bf16, 24.73 -> 24.57 ms (two rounds; the slots are not what the 32768 backward waits
// on; an L2 evict_last policy on the slot accesses instead measured 24.78, no gain). memcheck and
// racecheck clean on the H100 (session 45); 0 restores the global-only 32768 kernel.
#ifndef JFF_BWD_SHARED_ACC_MAX_N  // compile-time, for A/B runs (benchmarks/device_monarch_ab.sh, BWD=1)
#define JFF_BWD_SHARED_ACC_MAX_N 16384
#endif
#ifndef JFF_BWD_PART_ACC_ROWS  // 0: no shared variant at 32768
#define JFF_BWD_PART_ACC_ROWS 8
#endif
// Inner rows whose part of the accumulator the shared variant holds (0: no such variant).
constexpr int big_bwd_acc_rows(int N0, int RAD) {
  return N0 < 2 ? 0
                : (N0 * RAD * RAD <= JFF_BWD_SHARED_ACC_MAX_N ? N0
                                                             : (N0 * RAD * RAD == 32768 ? JFF_BWD_PART_ACC_ROWS : 0));
}
constexpr bool big_bwd_has_shared_acc(int N0, int RAD) { return big_bwd_acc_rows(N0, RAD) > 0; }

template <int N0, int RAD, int WARPS>
constexpr size_t big_bwd_acc_offset() {  // the dskip warp partials, then (16-byte aligned) the accumulator
  return (BigShape<N0, RAD>::kSmem + sizeof(float) * WARPS + 15) / 16 * 16;
}

template <int N0, int RAD, int WARPS, bool SHARED_ACC = false>
constexpr size_t big_bwd_smem_bytes() {
  return SHARED_ACC
             ? big_bwd_acc_offset<N0, RAD, WARPS>() + sizeof(float4) * big_bwd_acc_rows(N0, RAD) * (RAD * RAD / 2)
             : BigShape<N0, RAD>::kSmem + sizeof(float) * WARPS;
}
// With GROUPS warp groups per CTA: each group's own layout.
template <int N0, int RAD, int WARPS, bool SHARED_ACC, int GROUPS>
constexpr size_t big_bwd_cta_smem_bytes() {
  return GROUPS * big_bwd_smem_bytes<N0, RAD, WARPS, SHARED_ACC>();
}
// 4 CTAs of the 4096 shared-accumulator variant per 228 KB SM (each CTA also costs the 1 KB the driver
// reserves): see JFF_BWD_ROW_LANE_TW above.
static_assert(JFF_ROW_LANE_TW != 0 || 4 * (big_bwd_cta_smem_bytes<16, 16, 4, true, 1>() + 1024) <= 228 * 1024,
              "the 4096 backward's shared-accumulator CTA no longer fits 4 per SM");

// Two warp groups per CTA that take turns at the element passes (MemoryTurns), for the
// shared-accumulator variant at the N in the set JFF_BWD_GROUPS_N (an OR of powers of two, e.g.
// 4096|8192 = 12288; 0 = never). Session 18's phase probe (notes_monarch_bwd.md): at 8K the element
// passes alone take 3.2 ms and the transforms alone 3.8 ms of the kernel's 5.3, so most of each
// phase's time is exposed; two groups in one CTA, one in its element pass while the other transforms,
// were to overlap them, where two independent CTAs drift in and out of step. Measured on an H200 it is
// slower (8K 5.46 vs 5.30 ms, 4K 1.92 vs 1.87): with the element passes exclusive only half the warps
// load at a time. Off; kept for a loader that keeps the bytes in flight by itself (TMA into staging).
#ifndef JFF_BWD_GROUPS_N
#define JFF_BWD_GROUPS_N 0
#endif
constexpr int big_bwd_acc_groups(int N0, int RAD) { return (N0 * RAD * RAD & (JFF_BWD_GROUPS_N)) != 0 ? 2 : 1; }
// The sizes whose shared-accumulator variant (one warp group) has a balanced-tail instantiation (bwd_range_lo):
// 4096 .. 32768.
constexpr bool big_bwd_has_tail(int N) {
  return N >= 4096 && (N <= JFF_BWD_SHARED_ACC_MAX_N || (N == 32768 && JFF_BWD_PART_ACC_ROWS > 0)) &&
         (N & (JFF_BWD_GROUPS_N)) == 0;
}

// At N = 4096 the kernel needs <= 128 registers for 4 CTAs per SM; load8_pairs took the fp16
// variants to 132-134 (3 CTAs per SM; bf16 122 / 128). A minimum of 4 CTAs there
// (-DJFF_BWD_4K_MIN_CTAS=4, for an A/B run) gives 128 registers with 8-32 B of spill in all four
// 4096 variants, bf16 included. 0 = no minimum: the SASS is that of a kernel without one.
#ifndef JFF_BWD_4K_MIN_CTAS
#define JFF_BWD_4K_MIN_CTAS 0
#endif
// The 8192-point shared-accumulator variant (8 warps, 105 KB) asks for 2 CTAs per SM, i.e. <= 128
// registers, as its 4-warp global-slot sibling gets by itself (118).
// With two warp groups per CTA: the same warps per SM, so half the CTAs (<= 128 registers at 4096 and
// 8192 either way).
constexpr int big_bwd_min_ctas(int N0, int RAD, bool shared_acc, int groups = 1) {
  return groups == 2 ? (N0 * RAD * RAD == 4096 ? 2 : 1)
                     : (N0 * RAD * RAD == 4096 ? JFF_BWD_4K_MIN_CTAS : (N0 * RAD * RAD == 8192 && shared_acc ? 2 : 0));
}

// The turns of a CTA's two warp groups (GROUPS = 2) at their element passes: a group takes the turn
// before an element pass and gives it after, strictly alternating with the other group (named
// barriers 3 and 4: group g waits on 3 + g and gives by arriving on the other's), so that one group's
// loads and stores run while the other transforms. A group keeps the turn from its pass 4 through the
// next pair's first element pass (back to back in its own order). Group 1 starts holding the turn and
// hands it over at once, so group 0 goes first. Both groups know each other's number of turns
// (group_turns); at the end the group with fewer takes empty turns up to the other's count, and group
// 0 absorbs group 1's last give with one more take, so every arrival meets one sync and no flag is
// shared. GROUPS = 1: all no-ops.
template <int GROUPS, int NTH>
struct MemoryTurns {
  int g;
  bool holding;
  __device__ explicit MemoryTurns(int grp) : g(grp), holding(grp == 1) {}
  __device__ void take() {
    if constexpr (GROUPS == 2)
      if (!holding) {
        if (g == 0)
          named_barrier<3, true>(2 * NTH);
        else
          named_barrier<4, true>(2 * NTH);
        holding = true;
      }
  }
  __device__ void give() {
    if constexpr (GROUPS == 2)
      if (holding) {
        if (g == 0)
          named_barrier<4, false>(2 * NTH);
        else
          named_barrier<3, false>(2 * NTH);
        holding = false;
      }
  }
  __device__ void start() { give(); }
  // After the group's own `done` turns, with the other group's turns at `other`.
  __device__ void finish(int done, int other) {
    if constexpr (GROUPS == 2) {
      give();
      for (int i = done; i < other; ++i) {
        take();
        give();
      }
      if (g == 0) take();
    }
  }
};

// The element-pass turns of the warp-group slot `slot` (items slot, slot + stride, ...): per pair one
// for pass 2, one for pass 1 and one for pass 4 where they run, less one per pair after the first when
// pass 4 runs (it shares its turn with the next pair's first element pass), as MemoryTurns counts them.
__device__ __forceinline__ int group_turns(const BwdParams& p, int slot, int stride, bool pass1, bool pass4) {
  int pairs = 0;
  for (int item = slot; item < p.items; item += stride) {
    const int chunk = item % p.chunks, pr0 = chunk * p.cp;
    pairs += max(0, min(pr0 + p.cp, p.pairs) - pr0);  // as the kernel's pair loop
  }
  if (pairs == 0) return 0;
  return pairs * (1 + int(pass1) + int(pass4)) - (pass4 ? pairs - 1 : 0);
}

// Phase probe, a compile-time switch for one timing experiment (its results are wrong and the
// self-test reports them as failures): 1 = the element passes alone (no outer or inner transforms),
// 2 = the transforms alone (no stream loads or stores; the X buffer, K' and dk slot traffic of the
// inner rows stays). Against the full kernel it tells how far apart the two phases' times are and so
// what overlapping them could gain (notes_monarch_bwd.md, session 17).
#ifndef JFF_BWD_PHASE_PROBE
#define JFF_BWD_PHASE_PROBE 0
#endif
constexpr bool kProbeTransforms = JFF_BWD_PHASE_PROBE != 1, kProbeStreams = JFF_BWD_PHASE_PROBE != 2;

// Pass 1 of the big backward kernel (N0 >= 16) forms v = u * pre as packed 16-bit products (Ops::mul2), bitwise
// what the float32 route gives (see there). JFF_BWD_PACKED_V=0: the float32 route through exchange, as before
// session 34. Not yet timed.
#ifndef JFF_BWD_PACKED_V
#define JFF_BWD_PACKED_V 1
#endif
constexpr bool kBwdPackedV = JFF_BWD_PACKED_V != 0;
// The same for passes 2 and 4 (N0 >= 16): dpost = dy z', dz = dy post, du = dv pre and dpre = dv u are each one
// product of two 16-bit values, so packed products (mul8) give exchange's float32 bits without its unpacking,
// FMULs and packing; dskip's sum stays float32. Emulated output identical to the float32 route's. Only at RAD = 32
// (16K, 32K): at 4K / 8K ptxas gave the kernels 142 / 151 registers with it (4K: past the 128 that 4 CTAs per SM
// allow). SASS (bf16, per loop body): pass 2 850 -> 804, pass 4 679 -> 584 at 16K. H100, B=64 H=768 bf16 gated,
// no skip, backward ms (session 54): 16K 10.27 -> 10.13, causal 16K 7.21 -> 7.05, 32K 23.31 -> 22.99, causal 32K
// 16.76 -> 16.58. JFF_BWD_PACKED_PASSES=0: the float32 route (A/B runs; `make emulate` checks the bits are equal).
#ifndef JFF_BWD_PACKED_PASSES
#define JFF_BWD_PACKED_PASSES 1
#endif
constexpr bool kBwdPackedPasses = JFF_BWD_PACKED_PASSES != 0;

// A chunk's loads for one element pass of the big kernel (load8_pairs with the pass's policies W),
// or zeros in the probe's transforms-only build.
template <Touch... W>
__device__ __forceinline__ void fetch_chunks(const uint16_t* const (&s)[sizeof...(W)], int64_t base0, int64_t base1,
                                             int t, int L, int L1, bool vec, PairChunks<int(sizeof...(W))>& r) {
  if constexpr (kProbeStreams)
    load8_pairs<W...>(s, base0, base1, t, L, L1, vec, r.r0, r.r1);
  else
    r = {};
}

// TAIL: the balanced tail (bwd_range_lo; whole chunks, GROUPS = 1). A separate instantiation so that the
// stride-only kernels keep their code.
template <typename T, int N0, int RAD, int WARPS, bool SHARED_ACC, int GROUPS = 1, bool TAIL = false>
__global__ void __launch_bounds__(GROUPS * WARPS * 32, big_bwd_min_ctas(N0, RAD, SHARED_ACC, GROUPS))
    monarch_bwd_big_kernel(const BwdParams p) {
  using S = BigShape<N0, RAD>;
  using O = Ops<T>;
  constexpr int M = S::M, N = S::N, MT = S::MT, KS = S::KS;
  constexpr int NTH = WARPS * 32;  // threads of one warp group (GROUPS = 2: the CTA has two)
  constexpr size_t kGroupBytes = big_bwd_smem_bytes<N0, RAD, WARPS, SHARED_ACC>();
  static_assert(GROUPS == 1 || kGroupBytes % 16 == 0, "each group's layout starts 16-byte aligned");

  extern __shared__ uint4 smem_raw[];
  // Each group has the whole single-group layout to itself (signal, tables, partials, accumulator).
  const int grp = GROUPS == 1 ? 0 : static_cast<int>(threadIdx.x) / NTH;
  uint4* const gsm = smem_raw + grp * (kGroupBytes / 16);
  BigSmem<T, N0, RAD> sm(gsm);
  float* red = reinterpret_cast<float*>(reinterpret_cast<char*>(gsm) + S::kSmem);
  constexpr bool kSharedAcc = SHARED_ACC;
  // The inner rows whose accumulator part is in shared memory (all of them up to 16384).
  constexpr int kAccRows = SHARED_ACC ? big_bwd_acc_rows(N0, RAD) : 0;
  float4* const acc = reinterpret_cast<float4*>(reinterpret_cast<char*>(gsm) + big_bwd_acc_offset<N0, RAD, WARPS>());
  T* const sre = sm.sre;
  T* const sim = sm.sim;
  const int tid = static_cast<int>(threadIdx.x) - grp * NTH, warp = tid >> 5, lane = tid & 31;
  MemoryTurns<GROUPS, NTH> turns(grp);
  sm.init(tid, NTH);
  begin_after_prior_grids();  // the tables above are computed; K and the rows below are read
  __syncthreads();
  turns.start();
  auto group_sync = [&] {
    if constexpr (GROUPS == 1)
      __syncthreads();
    else if (grp == 0)
      named_barrier<1, true>(NTH);
    else
      named_barrier<2, true>(NTH);
  };
  const TwN<N> twN = sm.twN;

  const uint16_t* u = static_cast<const uint16_t*>(p.u);
  const uint16_t* pre = static_cast<const uint16_t*>(p.pre);
  const uint16_t* post = static_cast<const uint16_t*>(p.post);
  const uint16_t* dy = static_cast<const uint16_t*>(p.dy);
  uint16_t* du = static_cast<uint16_t*>(p.du);
  uint16_t* dpre = static_cast<uint16_t*>(p.dpre);
  uint16_t* dpost = static_cast<uint16_t*>(p.dpost);
  const bool want_dk = p.slots != nullptr, want_dskip = p.sslots != nullptr;
  const bool want_dpost = dpost != nullptr;  // implies post (checked on the host)
  const bool want_dv = du != nullptr || dpre != nullptr;
  const bool vec = (p.L & 7) == 0;
  const int L = p.L;
  // Rows n0 of the outer level that can be nonzero (M*n0 < L), in the outer DFT's 16-row
  // steps: the outer products skip the rest (half of them for L = N/2).
  const int live16 = S::kMmaOuter ? (L + 16 * M - 1) / (16 * M) : 1;
  const int lpad = S::kMmaOuter ? min(N, live16 * 16 * M) : N;
  // Elements that can hold data (t < L, whole chunks): the element passes skip the rest (exchange).
  const int live8 = min(lpad, (L + 7) & ~7);
  uint2* const xb = p.xbuf + static_cast<int64_t>(blockIdx.x * GROUPS + grp) * (N / 2);

  uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
  load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
  float dsk_run = 0.f;  // thread 0: dskip partial of the current chunk (pair order)

  static_assert(!TAIL || GROUPS == 1, "the balanced tail has one warp group per CTA");
  // TAIL (whole chunks: pairs = chunks * cp): this worker's range [q, qend) of the tail's pairs (bwd_range_lo above),
  // after its stride items. (Derived here rather than passed: a field added to BwdParams changed the code of every
  // kernel that takes it.)
  int64_t q = 0, qend = 0;
  [[maybe_unused]] const int tail_i0 = p.items - p.items % static_cast<int>(gridDim.x);
  if constexpr (TAIL) {
    const int64_t tail_pairs = static_cast<int64_t>(p.items - tail_i0) * p.cp;
    q = bwd_range_lo(blockIdx.x, gridDim.x, tail_pairs);
    qend = bwd_range_lo(blockIdx.x + 1, gridDim.x, tail_pairs);
  }
  for (int item = blockIdx.x * GROUPS + grp; item < (TAIL ? INT_MAX : p.items); item += gridDim.x * GROUPS) {
    int h = item / p.chunks, chunk = item - h * p.chunks;
    int pr0 = chunk * p.cp, pend = min(pr0 + p.cp, p.pairs);
    if constexpr (TAIL) {
      // The next part of the worker's range, in tail item i; its slot, h * chunks + chunk below, is i where the part
      // starts the item and items + w (the worker's extra slot) where it starts inside it.
      if (item >= tail_i0) {
        if (q >= qend) break;
        const int64_t j = q / p.cp;
        const int i = tail_i0 + static_cast<int>(j), in_item = static_cast<int>(q - j * p.cp);
        h = i / p.chunks;
        chunk = i - h * p.chunks;
        pr0 = chunk * p.cp + in_item;
        pend = pr0 + static_cast<int>(min(static_cast<int64_t>(p.cp - in_item), qend - q));
        if (in_item != 0) chunk = p.items + static_cast<int>(blockIdx.x) - h * p.chunks;
        q += pend - pr0;
      }
    }
    for (int pr = pr0; pr < pend; ++pr) {
      const bool first = pr == pr0;
      const int b0 = 2 * pr;
      const bool row1 = b0 + 1 < p.B;
      const int g = (b0 / p.R) % p.G;
      const int64_t base0 = (static_cast<int64_t>(b0) * p.H + h) * p.L;
      const int64_t base1 = base0 + static_cast<int64_t>(p.H) * p.L;
      const int L1 = row1 ? L : 0;
      const auto* kbase =
          static_cast<const typename KSpecOf<T>::Slot*>(p.kspec) + (static_cast<int64_t>(g) * p.H + h) * (N / 2);

      // Chunk t of rows b, b+1 of the streams a pass reads, all loads issued together
      // (load8_pairs), then unpacked to floats; u and pre are read again after passes 1 and 2
      // (Touch::kAgain), every other read and every output store is a last touch.
      auto put = [&](uint16_t* d, int t, const float (&a)[8], const float (&b)[8]) {
        if constexpr (!kProbeStreams) return;
        store8<Touch::kLast>(d + base0, t, L, vec, pack8<T>(a));
        store8<Touch::kLast>(d + base1, t, L1, vec, pack8<T>(b));
      };
      // The same for packed 16-bit chunks (kBwdPackedPasses).
      auto put16 = [&](uint16_t* d, int t, uint4 a, uint4 b) {
        if constexpr (!kProbeStreams) return;
        store8<Touch::kLast>(d + base0, t, L, vec, a);
        store8<Touch::kLast>(d + base1, t, L1, vec, b);
      };
      // v = u * pre (or u) of chunk t from its raw rows.
      auto form_v = [&](const uint4& u0, const uint4& u1, const uint4& q0, const uint4& q1, float (&v0)[8],
                        float (&v1)[8]) {
        unpack8<T>(u0, v0);
        unpack8<T>(u1, v1);
        if (pre != nullptr) {
          float g0[8], g1[8];
          unpack8<T>(q0, g0);
          unpack8<T>(q1, g1);
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            v0[e] *= g0[e];
            v1[e] *= g1[e];
          }
        }
      };

      // ---- pass 1: X = DFT(v); X saved for P; z' = IDFT(X K') for dpost.
      if (want_dk || want_dpost) {
        const uint16_t* const s1[2] = {u, pre};
        turns.take();
        if constexpr (N0 >= 16 && kBwdPackedV) {
          // v = u * pre as packed 16-bit products straight into the planes: bitwise form_v + pack8 (a product
          // of two 16-bit values is exact in float32 and rounded once either way), without the unpacking, the
          // 8 FMUL and the packing per row and chunk (exchange's loop at N0 >= 16 otherwise).
          zero_chunks<T, RAD, NTH>(sre, sim, live8, lpad, tid);
          for (int c = tid; c < live8 / 8; c += NTH) {
            const int t = 8 * c, n0 = t / M, m = t % M;
            PairChunks<2> r;
            fetch_chunks<Touch::kAgain, Touch::kAgain>(s1, base0, base1, t, L, L1, vec, r);
            const int off = sig_off<RAD>(n0, m / RAD, m % RAD);
            *reinterpret_cast<uint4*>(sre + off) = pre != nullptr ? mul8<T>(r.r0[0], r.r0[1]) : r.r0[0];
            *reinterpret_cast<uint4*>(sim + off) = pre != nullptr ? mul8<T>(r.r1[0], r.r1[1]) : r.r1[0];
          }
        } else {
          exchange<T, N0, RAD, NTH, true, PairChunks<2>>(
              sre, sim, twN, false, lpad, live8, tid,
              [&](int t, PairChunks<2>& r) {
                fetch_chunks<Touch::kAgain, Touch::kAgain>(s1, base0, base1, t, L, L1, vec, r);
              },
              [&](int, const PairChunks<2>& r, float (&xr)[8], float (&xi)[8]) {
                form_v(r.r0[0], r.r1[0], r.r0[1], r.r1[1], xr, xi);
              });
        }
        turns.give();
        group_sync();
        if constexpr (S::kMmaOuter && kProbeTransforms) {
          outer_dft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, twN, live16, warp, lane);
          group_sync();
        }
        for (int k0 = warp; kProbeTransforms && k0 < N0; k0 += WARPS)
          bwd_row_pass1<T, N0, RAD>(sm, twN, sre + k0 * M, sim + k0 * M, k0, kbase + k0 * (M / 2),
                                    xb + k0 * (M / 2), want_dk, want_dpost, Fr, Fi, lane);
        group_sync();
        if constexpr (S::kMmaOuter && kProbeTransforms) {
          if (want_dpost) {
            outer_idft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, live16, warp, lane);
            group_sync();
          }
        }
      }

      // ---- pass 2: dpost = dy * z' out, dz = dy * post in, dskip += dz * v.
      float dsk = 0.f;
      const uint16_t* const s2[4] = {dy, post, want_dskip ? u : nullptr, want_dskip ? pre : nullptr};
      // dz = dy * post in float32 from dy's unpacked rows (d0, d1) and post's raw ones (r.r*[1]); dy alone without post.
      auto times_post = [&](const PairChunks<4>& r, float (&d0)[8], float (&d1)[8]) {
        if (post == nullptr) return;
        float g0[8], g1[8];
        unpack8<T>(r.r0[1], g0);
        unpack8<T>(r.r1[1], g1);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          d0[e] *= g0[e];
          d1[e] *= g1[e];
        }
      };
      turns.take();
      if constexpr (N0 >= 16 && RAD == 32 && kBwdPackedPasses) {
        zero_chunks<T, RAD, NTH>(sre, sim, live8, lpad, tid);
        for (int c = tid; c < live8 / 8; c += NTH) {
          const int t = 8 * c, n0 = t / M, m = t % M;
          const int off = sig_off<RAD>(n0, m / RAD, m % RAD);
          PairChunks<4> r;
          fetch_chunks<Touch::kLast, Touch::kLast, Touch::kAgain, Touch::kAgain>(s2, base0, base1, t, L, L1, vec, r);
          uint4* const zr = reinterpret_cast<uint4*>(sre + off);
          uint4* const zi = reinterpret_cast<uint4*>(sim + off);
          if (want_dpost) put16(dpost, t, mul8<T>(r.r0[0], *zr), mul8<T>(r.r1[0], *zi));
          if (want_dskip) {  // dskip from float32 dz = dy * post, as the float32 route sums it
            float d0[8], d1[8], v0[8], v1[8];
            unpack8<T>(r.r0[0], d0);
            unpack8<T>(r.r1[0], d1);
            times_post(r, d0, d1);
            form_v(r.r0[2], r.r1[2], r.r0[3], r.r1[3], v0, v1);
#pragma unroll
            for (int e = 0; e < 8; ++e) {
              dsk = fmaf(d0[e], v0[e], dsk);
              dsk = fmaf(d1[e], v1[e], dsk);
            }
          }
          *zr = post != nullptr ? mul8<T>(r.r0[0], r.r0[1]) : r.r0[0];
          *zi = post != nullptr ? mul8<T>(r.r1[0], r.r1[1]) : r.r1[0];
        }
      } else {
        exchange<T, N0, RAD, NTH, true, PairChunks<4>>(
            sre, sim, twN, want_dpost, lpad, live8, tid,
            [&](int t, PairChunks<4>& r) {
              fetch_chunks<Touch::kLast, Touch::kLast, Touch::kAgain, Touch::kAgain>(s2, base0, base1, t, L, L1, vec, r);
            },
            [&](int t, const PairChunks<4>& r, float (&zr)[8], float (&zi)[8]) {
              float d0[8], d1[8];
              unpack8<T>(r.r0[0], d0);
              unpack8<T>(r.r1[0], d1);
              if (want_dpost) {
                float o0[8], o1[8];
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                  o0[e] = d0[e] * zr[e];
                  o1[e] = d1[e] * zi[e];
                }
                put(dpost, t, o0, o1);
              }
              times_post(r, d0, d1);
              if (want_dskip) {
                float v0[8], v1[8];
                form_v(r.r0[2], r.r1[2], r.r0[3], r.r1[3], v0, v1);
#pragma unroll
                for (int e = 0; e < 8; ++e) {
                  dsk = fmaf(d0[e], v0[e], dsk);
                  dsk = fmaf(d1[e], v1[e], dsk);
                }
              }
#pragma unroll
              for (int e = 0; e < 8; ++e) {
                zr[e] = d0[e];
                zi[e] = d1[e];
              }
            });
      }
      turns.give();
      group_sync();

      // ---- pass 3: D = DFT(dz); P += conj(X) D into the chunk's slot; dv = IDFT(D conj(K')).
      if (want_dk || want_dv) {
        if constexpr (S::kMmaOuter && kProbeTransforms) {
          outer_dft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, twN, live16, warp, lane);
          group_sync();
        }
        if constexpr (kSharedAcc) {
          float4* const slot = want_dk ? p.slots + (static_cast<int64_t>(h) * p.chunks + chunk) * (N / 2) : nullptr;
          for (int k0 = warp; kProbeTransforms && k0 < N0; k0 += WARPS) {
            // Rows past kAccRows (32768 only) add into the slot itself, through the same (generic) pointer.
            float4* const row_acc = kAccRows == N0 || k0 < kAccRows ? acc : slot;
            bwd_row_pass3<T, N0, RAD, true>(sm, twN, sre + k0 * M, sim + k0 * M, k0, kbase + k0 * (M / 2),
                                            xb + k0 * (M / 2), row_acc, k0 * (M / 2), first, want_dk, want_dv,
                                            Fr, Fi, lane);
          }
          group_sync();
          // The chunk's sum to its slot; the next write to acc is the next pair's pass 3, two
          // barriers later.
          if (want_dk && pr + 1 == pend)
            for (int i = tid; i < kAccRows * (M / 2); i += NTH) __stcg(slot + i, acc[i]);
        } else {
          for (int k0 = warp; kProbeTransforms && k0 < N0; k0 += WARPS)
            bwd_row_pass3<T, N0, RAD>(sm, twN, sre + k0 * M, sim + k0 * M, k0, kbase + k0 * (M / 2),
                                      xb + k0 * (M / 2), p.slots,
                                      (static_cast<int64_t>(h) * p.chunks + chunk) * (N / 2) + k0 * (M / 2), first,
                                      want_dk, want_dv, Fr, Fi, lane);
          group_sync();
        }
      }

      // ---- pass 4: du = dv * pre, dpre = dv * u.
      if (want_dv) {
        if constexpr (S::kMmaOuter && kProbeTransforms) {
          outer_idft<T, N0, RAD, WARPS>(sre, sim, sm.frag0, live16, warp, lane);
          group_sync();
        }
        // du needs pre, dpre needs u (without pre, du = dv and dpre is not asked for).
        const uint16_t* const s4[2] = {pre != nullptr && du != nullptr ? pre : nullptr,
                                       pre != nullptr && dpre != nullptr ? u : nullptr};
        turns.take();  // kept through the next pair's pass 1: one turn for both element passes
        if constexpr (N0 >= 16 && RAD == 32 && kBwdPackedPasses) {
          for (int c = tid; c < live8 / 8; c += NTH) {
            const int t = 8 * c, n0 = t / M, m = t % M;
            const int off = sig_off<RAD>(n0, m / RAD, m % RAD);
            PairChunks<2> r;
            fetch_chunks<Touch::kLast, Touch::kLast>(s4, base0, base1, t, L, L1, vec, r);
            if (t >= L) continue;
            const uint4 zr = *reinterpret_cast<const uint4*>(sre + off);
            const uint4 zi = *reinterpret_cast<const uint4*>(sim + off);
            if (pre == nullptr) {
              put16(du, t, zr, zi);  // du is given when dpre is not
              continue;
            }
#pragma unroll
            for (int i = 0; i < 2; ++i)
              if (s4[i] != nullptr) put16(i == 0 ? du : dpre, t, mul8<T>(r.r0[i], zr), mul8<T>(r.r1[i], zi));
          }
        } else {
          exchange<T, N0, RAD, NTH, false, PairChunks<2>>(
              sre, sim, twN, true, lpad, live8, tid,
              [&](int t, PairChunks<2>& r) {
                fetch_chunks<Touch::kLast, Touch::kLast>(s4, base0, base1, t, L, L1, vec, r);
              },
              [&](int t, const PairChunks<2>& r, float (&zr)[8], float (&zi)[8]) {
                if (t >= L) return;
                if (pre == nullptr) {
                  put(du, t, zr, zi);  // du is given when dpre is not
                  return;
                }
#pragma unroll
                for (int i = 0; i < 2; ++i) {
                  if (s4[i] == nullptr) continue;
                  float a0[8], a1[8];
                  unpack8<T>(r.r0[i], a0);
                  unpack8<T>(r.r1[i], a1);
#pragma unroll
                  for (int e = 0; e < 8; ++e) {
                    a0[e] *= zr[e];
                    a1[e] *= zi[e];
                  }
                  put(i == 0 ? du : dpre, t, a0, a1);
                }
              });
        }
      }

      // ---- dskip: thread partials -> fixed butterfly per warp -> warps in order -> slot.
      if (want_dskip) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) dsk += __shfl_xor_sync(0xffffffffu, dsk, o);
        if (lane == 0) red[warp] = dsk;
        group_sync();
        if (tid == 0) {
          float s = 0.f;
          for (int w = 0; w < WARPS; ++w) s += red[w];
          dsk_run = first ? s : dsk_run + s;  // the chunk's pairs in order; one store at its end
          if (pr + 1 == pend) __stcg(p.sslots + static_cast<int64_t>(h) * p.chunks + chunk, dsk_run);
        }
      }
      group_sync();  // the next pair's pass 1 overwrites the planes (and red)
    }
  }
  if constexpr (GROUPS == 2) {
    const bool pass1 = want_dk || want_dpost;
    const int own = group_turns(p, blockIdx.x * GROUPS + grp, gridDim.x * GROUPS, pass1, want_dv);
    const int other = group_turns(p, blockIdx.x * GROUPS + 1 - grp, gridDim.x * GROUPS, pass1, want_dv);
    turns.finish(own, other);
  }
}

// ---------------------------------------------------------------------------------------
// BLH: the big kernel's four passes per row pair with every pass in element order done for a
// tile of TH consecutive heads at once (monarch_blh.cuh's tiles: 8 rows l x 8 heads of one
// batch row per unit, transposed in registers). One CTA holds HPC heads (N <= 2048: 16 or 8, no
// cluster); an item is (head tile, chunk of pairs), the pairs of a chunk in order, so each head's
// dk slot sums its pairs in the same order as the BHL kernel. dskip: each thread keeps its
// partial per tile head in shared memory (red), summed per head in a fixed order after pass 2.
// ---------------------------------------------------------------------------------------
template <int N0, int RAD>
struct BlhBwdShape {
  using B = BlhShape<N0, RAD>;
  static constexpr int NTH = B::WARPS * 32;
  // BlhShape's planes and tables, then red (TH x NTH floats) and the chunk's running dskip per head.
  static constexpr size_t kSmem = B::kSmem + sizeof(float) * (size_t(B::TH) * NTH + B::HPC);
};

template <typename T, int N0, int RAD>
__global__ void __launch_bounds__(BlhShape<N0, RAD>::WARPS * 32)
    monarch_bwd_blh_kernel(const BwdParams p) {
  using S = BigShape<N0, RAD>;
  using B = BlhShape<N0, RAD>;
  using O = Ops<T>;
  constexpr int M = S::M, N = S::N, MT = S::MT, KS = S::KS;
  constexpr int CL = B::CL, HPC = B::HPC, TH = B::TH, G8 = TH / 8, WARPS = B::WARPS, NTH = WARPS * 32;
  constexpr int NH = N0 == 2 ? 2 : 1;

  extern __shared__ uint4 smem_raw[];
  T* const planes = reinterpret_cast<T*>(smem_raw);  // head j: planes + 2N j (real, imaginary)
  BigSmem<T, N0, RAD> sm(planes + (HPC - 1) * 2 * N);
  float* const red = reinterpret_cast<float*>(reinterpret_cast<char*>(smem_raw) + B::kSmem);  // [TH][NTH]
  float* const dsk_run = red + TH * NTH;                                                        // [HPC]
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  sm.init(tid, NTH);  // the first tile barrier below also orders this
  const TwN<N> twN = sm.twN;

  const uint16_t* u = static_cast<const uint16_t*>(p.u);
  const uint16_t* pre = static_cast<const uint16_t*>(p.pre);
  const uint16_t* post = static_cast<const uint16_t*>(p.post);
  const uint16_t* dy = static_cast<const uint16_t*>(p.dy);
  uint16_t* du = static_cast<uint16_t*>(p.du);
  uint16_t* dpre = static_cast<uint16_t*>(p.dpre);
  uint16_t* dpost = static_cast<uint16_t*>(p.dpost);
  const bool want_dk = p.slots != nullptr, want_dskip = p.sslots != nullptr;
  const bool want_dpost = dpost != nullptr;  // implies post (checked on the host)
  const bool want_dv = du != nullptr || dpre != nullptr;
  const int L = p.L;
  const int live16 = S::kMmaOuter ? (L + 16 * M - 1) / (16 * M) : 1;
  const int lpad = S::kMmaOuter ? min(N, live16 * 16 * M) : N;
  const int rank = CL > 1 ? static_cast<int>(cluster_rank()) : 0;
  const int gthread = rank * NTH + tid, gthreads = CL * NTH;
  const int htiles = (p.H + TH - 1) / TH;
  uint2* const xb = p.xbuf + static_cast<int64_t>(blockIdx.x) * HPC * (N / 2);

  // The outer N0 = 2 butterfly (and twiddle) on every head's planes, in place: what the BHL
  // kernel folds into its element-order writes.
  auto outer_butterfly2 = [&](int hc) {
    if constexpr (N0 == 2) {
      blh_outer_butterfly2<T, RAD, HPC>(planes, hc, p.H, twN, tid, NTH);
      __syncthreads();
    }
  };
  // row(j, k0, Fr, Fi) on the inner rows of every head of this CTA, with the outer DFT before and
  // (if `inverse`) the outer inverse after for N0 >= 16; ends with the CTA synchronised. The DFT
  // fragments are loaded here, not held through the element-order passes (registers).
  auto for_rows = [&](int hc, bool inverse, auto&& row_frags) {
    uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
    load_dft_frags<MT, KS>(Fr, Fi, sm.frag, lane);
    auto row = [&](int j, int k0) { row_frags(j, k0, Fr, Fi); };
    if constexpr (S::kMmaOuter) {
      for (int j = 0; j < HPC && hc + j < p.H; ++j) {
        T* re = planes + j * 2 * N;
        outer_dft<T, N0, RAD, WARPS>(re, re + N, sm.frag0, twN, live16, warp, lane);
        __syncthreads();
        for (int k0 = warp; k0 < N0; k0 += WARPS) row(j, k0);
        __syncthreads();
        if (inverse) {
          outer_idft<T, N0, RAD, WARPS>(re, re + N, sm.frag0, live16, warp, lane);
          __syncthreads();
        }
      }
    } else {
      for (int r = warp; r < HPC * N0; r += WARPS)
        if (hc + r / N0 < p.H) row(r / N0, r % N0);
      __syncthreads();
    }
  };

  for (int item = blockIdx.x / CL; item < p.items; item += gridDim.x / CL) {
    const int rest = item / B::TPL, chunk = rest % p.chunks;
    const int ht = (rest / p.chunks) * B::TPL + item % B::TPL;
    if (ht >= htiles) continue;  // the last tile group's missing tiles (same for the whole cluster)
    const int pr0 = chunk * p.cp, pend = min(pr0 + p.cp, p.pairs);
    const int h0 = ht * TH, hc = h0 + rank * HPC;  // the tile's and this CTA's first head
    for (int pr = pr0; pr < pend; ++pr) {
      const bool first = pr == pr0;
      const int b0 = 2 * pr;
      const int g = (b0 / p.R) % p.G;
      BlhTile tl;
      tl.h0 = h0;
      tl.H = p.H;
      tl.L = L;
      tl.L1 = b0 + 1 < p.B ? L : 0;
      tl.base0 = static_cast<int64_t>(b0) * L * p.H + h0;
      tl.base1 = tl.base0 + static_cast<int64_t>(L) * p.H;
      tl.vec = p.H % 8 == 0;
      tl.g = g;
      const auto* kbase =  // + j (N/2): head j
          static_cast<const typename KSpecOf<T>::Slot*>(p.kspec) + (static_cast<int64_t>(g) * p.H + hc) * (N / 2);

      // ---- pass 1: X = DFT(v) saved for P; z' = IDFT(X K') for dpost.
      if (want_dk || want_dpost) {
        tile_sync<CL>();  // nobody still reads the planes (previous pair)
        blh_push_tile<T, N, RAD, CL, HPC>(u, pre, tl, lpad, planes, gthread, gthreads);
        tile_sync<CL>();
        outer_butterfly2(hc);
        for_rows(hc, want_dpost, [&](int j, int k0, const auto& Fr, const auto& Fi) {
          T* re = planes + j * 2 * N + k0 * M;
          bwd_row_pass1<T, N0, RAD>(sm, twN, re, re + N, k0, kbase + j * (N / 2) + k0 * (M / 2),
                                    xb + j * (N / 2) + k0 * (M / 2), want_dk, want_dpost, Fr, Fi, lane);
        });
      }

      // ---- pass 2: dpost = dy * z' out, dz = dy * post into the planes, dskip += dz * v.
      tile_sync<CL>();  // every head's z' is final (or, without pass 1, nobody reads the planes)
      if (want_dskip)
        for (int s = 0; s < TH; ++s) red[s * NTH + tid] = 0.f;
      {
        const int nchunk = N0 == 2 ? M / 8 : lpad / 8;
#pragma unroll 1
        for (int w = gthread; w < blh_units<G8>(nchunk); w += gthreads) {
          int g8, rr, c;
          blh_unit<G8>(w, &g8, &rr, &c);
          if (c >= nchunk) continue;
          uint4 zc[NH][8];
          if (want_dpost) blh_read_plane_cols<T, N0, RAD, CL, HPC>(planes, rr, g8, c, zc);
#pragma unroll
          for (int n0 = 0; n0 < NH; ++n0) {
            const int t = n0 * M + 8 * c;
            uint4 dyc[8], qc[8], dzc[8];
            blh_load_cols(dy, tl, rr, g8, t, dyc);
            if (post != nullptr) blh_load_cols(post, tl, rr, g8, t, qc);
            if (want_dpost) {
              uint4 oc[8];
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                float d[8], z[8];
                unpack8<T>(dyc[j], d);
                blh_col_values<T, N0>(zc, j, n0, z);
#pragma unroll
                for (int e = 0; e < 8; ++e) z[e] *= d[e];
                oc[j] = pack8<T>(z);
              }
              blh_store_cols(dpost, tl, rr, g8, t, oc);
            }
            // dy post is formed twice, for dskip and for dz: one loop holding it (with the u / pre
            // columns loaded; tried together with a pass-4 helper) spilled 184-240 B more at
            // N = 256 .. 2048 (ptxas, sm_90a).
            float part[8];  // this unit's dskip terms per head
            if (want_dskip) {
              uint4 vc[8], gc[8];
              blh_load_cols(u, tl, rr, g8, t, vc);
              if (pre != nullptr) blh_load_cols(pre, tl, rr, g8, t, gc);
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                float d[8], v[8];
                unpack8<T>(dyc[j], d);
                unpack8<T>(vc[j], v);
                if (post != nullptr) times_col<T>(d, qc[j]);
                if (pre != nullptr) times_col<T>(v, gc[j]);
                float s = 0.f;
#pragma unroll
                for (int e = 0; e < 8; ++e) s = fmaf(d[e], v[e], s);
                part[j] = s;
              }
#pragma unroll
              for (int j = 0; j < 8; ++j) red[(8 * g8 + j) * NTH + tid] += part[j];
            }
#pragma unroll
            for (int j = 0; j < 8; ++j) {
              float d[8];
              unpack8<T>(dyc[j], d);
              if (post != nullptr) times_col<T>(d, qc[j]);  // dz = dy post
              dzc[j] = pack8<T>(d);
            }
            const int off = sig_off<RAD>(t / M, (t % M) / RAD, t % RAD) + rr * N;
#pragma unroll
            for (int j = 0; j < 8; ++j)
              *reinterpret_cast<uint4*>(blh_slot<T, N, CL, HPC>(planes, 8 * g8 + j) + off) = dzc[j];
          }
        }
      }
      tile_sync<CL>();  // dz everywhere; red complete
      if (want_dskip) {
        // Head j of this CTA (tile slot s): the partials of every thread of the tile in a fixed
        // order (ranks, threads), then a fixed butterfly; the chunk's pairs in order.
        for (int j = warp; j < HPC; j += WARPS) {
          const int s = rank * HPC + j;
          float a = 0.f;
          for (int r = 0; r < CL; ++r) {
            const float* rr = CL > 1 ? cluster_peer(red, static_cast<unsigned>(r)) : red;
            for (int i = lane; i < NTH; i += 32) a += rr[s * NTH + i];
          }
#pragma unroll
          for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
          if (lane == 0 && hc + j < p.H) {
            dsk_run[j] = first ? a : dsk_run[j] + a;
            if (pr + 1 == pend) __stcg(p.sslots + static_cast<int64_t>(hc + j) * p.chunks + chunk, dsk_run[j]);
          }
        }
      }
      outer_butterfly2(hc);

      // ---- pass 3: D = DFT(dz); P += conj(X) D into the chunk's slot; dv = IDFT(D conj(K')).
      if (want_dk || want_dv) {
        for_rows(hc, want_dv, [&](int j, int k0, const auto& Fr, const auto& Fi) {
          T* re = planes + j * 2 * N + k0 * M;
          bwd_row_pass3<T, N0, RAD>(sm, twN, re, re + N, k0, kbase + j * (N / 2) + k0 * (M / 2),
                                    xb + j * (N / 2) + k0 * (M / 2), p.slots,
                                    (static_cast<int64_t>(hc + j) * p.chunks + chunk) * (N / 2) + k0 * (M / 2),
                                    first, want_dk, want_dv, Fr, Fi, lane);
        });
      }

      // ---- pass 4: du = dv * pre, dpre = dv * u.
      if (want_dv) {
        tile_sync<CL>();  // every head's dv is final
        const int nchunk = N0 == 2 ? M / 8 : (L + 7) / 8;
#pragma unroll 1
        for (int w = gthread; w < blh_units<G8>(nchunk); w += gthreads) {
          int g8, rr, c;
          blh_unit<G8>(w, &g8, &rr, &c);
          const int Lr = rr ? tl.L1 : tl.L;
          if (Lr == 0 || c >= nchunk) continue;  // no row b0 + 1; past the chunks
          uint4 dvc[NH][8];
          blh_read_plane_cols<T, N0, RAD, CL, HPC>(planes, rr, g8, c, dvc);
#pragma unroll
          for (int n0 = 0; n0 < NH; ++n0) {
            const int t = n0 * M + 8 * c;
            if (t >= Lr) continue;
            uint4 gc[8], oc[8];
            if (pre == nullptr) {  // du is given when dpre is not
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                float z[8];
                blh_col_values<T, N0>(dvc, j, n0, z);
                oc[j] = pack8<T>(z);
              }
              blh_store_cols(du, tl, rr, g8, t, oc);
              continue;
            }
            if (du != nullptr) {
              blh_load_cols(pre, tl, rr, g8, t, gc);
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                float z[8];
                blh_col_values<T, N0>(dvc, j, n0, z);
                times_col<T>(z, gc[j]);
                oc[j] = pack8<T>(z);
              }
              blh_store_cols(du, tl, rr, g8, t, oc);
            }
            if (dpre != nullptr) {
              blh_load_cols(u, tl, rr, g8, t, gc);
#pragma unroll
              for (int j = 0; j < 8; ++j) {
                float z[8];
                blh_col_values<T, N0>(dvc, j, n0, z);
                times_col<T>(z, gc[j]);
                oc[j] = pack8<T>(z);
              }
              blh_store_cols(dpre, tl, rr, g8, t, oc);
            }
          }
        }
      }
    }
  }
  tile_sync<CL>();  // peers may still read this CTA's planes and red
}

// ---------------------------------------------------------------------------------------
// dk and dskip, once per (g, h), in float32. dskip: the chunk partials of group g in chunk order.
// A (g, h) with no rows gets zeros.
// ---------------------------------------------------------------------------------------
// dk of one (g, h): P = the slots of the group's chunks summed in chunk order (dk's spectrum, in slot
// order: slot s holds frequencies k0 + N0 f0 and k0 + N0 f1, as the k spectrum), and dk[n] = Re sum_k P[k]
// w_N^(-kn) (unnormalised) for n < Lk. Re of that inverse is the inverse of P's Hermitian part
// H[k] = (P[k] + conj P[N-k]) / 2, the spectrum of a real signal, so one N/2-point complex inverse FFT
// (common/smem_fft.cuh, as the k-spectrum kernel's forward one) of Z[k] = E[k] + i O[k], E = H[k] + H[k + N/2],
// O = (H[k] - H[k + N/2]) w_N^(-k), returns dk's even samples as its real parts and the odd ones as its
// imaginary parts: the float view of the result is dk in order. It replaces N0 M-point radix-2 FFTs (a barrier
// per stage) and an O(N * N0) sum over the rows k0 with twiddle lookups: H200, B=64 H=768 bf16, 4K: 0.152 ms
// of the 1.78 ms backward (session 28 profile). Shared memory: (N/2 + 1) complex floats (128 KB at N = 32768).
// Threads: those of the k-spectrum kernel (kspec_threads: what the N/2-point FFT needs, at least 256;
// with one warp at N <= 1K the fwd+bwd through JAX read 0.0862 -> 0.0893 ms at 256 and 0.409 -> 0.416
// at 1K, H200, session 29).
template <int N0, int RAD>
constexpr size_t reduce_smem_bytes() {
  return sizeof(float2) * (N0 * RAD * RAD / 2 + 1);
}

// Resident CTAs per SM the reduce's registers are budgeted for (__launch_bounds__): 4, or fewer where its threads or
// shared memory allow fewer (16K: 3, 32K: 1). Unbounded, the radix-16 passes took 77-95 registers, i.e. 3 CTAs per SM
// at 4K and one at 16K; bounded, ptxas spills 8-144 bytes. H100 (B=64 H=768 bf16, backward self-test ms, two rounds,
// session 51): 16K 10.341 / 10.341 -> 10.298 / 10.310, 32K 23.40 / 23.39 -> 23.36 / 23.35, 4K within noise; bounded
// to 8 CTAs (32-40 registers, 144-280 bytes of spill) the 4K backward was 2% slower. (A register budget only: the
// shared-memory term uses Hopper's 227 KB per SM; where a GPU has less, fewer CTAs fit and nothing else changes.)
template <int N0, int RAD>
constexpr int reduce_min_blocks() {
  const int by_threads = 2048 / kspec_threads(N0 * RAD * RAD);
  const int by_smem = static_cast<int>((227u * 1024u) / (reduce_smem_bytes<N0, RAD>() + 1024));
  const int cap = by_threads < by_smem ? by_threads : by_smem;
  return cap < 4 ? (cap > 0 ? cap : 1) : 4;
}

template <int N0, int RAD>
__global__ void __launch_bounds__(kspec_threads(N0 * RAD * RAD), reduce_min_blocks<N0, RAD>())
    monarch_dk_reduce_kernel(const float4* __restrict__ slots, const float* __restrict__ sslots, int H,
                             int chunks, int cp, int R, int G, int64_t Lk, float* dk, float* dskip) {
  constexpr int M = RAD * RAD, N = N0 * M, H2 = N / 2;
  constexpr int LOGH = log2_exact(H2);
  static_assert(LOGH >= 0 && (1 << LOGH) == H2, "log2");
  extern __shared__ float2 hs[];  // H[0 .. N/2], then Z[0 .. N/2) in place, then z
  constexpr int kThreads = kspec_threads(N);  // blockDim.x (launch_reduce)
  const int tid = threadIdx.x, nth = kThreads;
  const int gh = blockIdx.x;
  const int g = gh / H, h = gh - g * H;
  // All pairs of a chunk are in the group of its first pair (cp divides R/2 when G > 1).
  auto in_group = [&](int c) { return ((2 * c * cp) / R) % G == g; };

  begin_after_prior_grids();  // the slots are the main kernel's output
  if (dskip != nullptr && tid == 0) {
    float s = 0.f;
    for (int c = 0; c < chunks; ++c)
      if (in_group(c)) s += sslots[static_cast<int64_t>(h) * chunks + c];
    dskip[gh] = s;
  }
  if (dk == nullptr) return;  // uniform over the block, before any barrier

  // Slot s summed over the group's chunks in chunk order. Its two bins are the inner frequencies f0 and f0 + 1
  // (f0 even) of row k0, i.e. frequencies k0 + N0 f0 and k0 + N0 (f0 + 1): both below N/2 when f0 < M/2 (a "low"
  // slot), both at or above N/2 otherwise, so each slot is read once, by the one pass that uses it.
  auto slot_freq = [&](int s) {  // the slot's first frequency f = k0 + N0 f0, and f0
    unsigned f0, f1;
    spec_freqs<RAD>(s % (M / 2), f0, f1);
    return make_int2(s / (M / 2) + N0 * static_cast<int>(f0), static_cast<int>(f0));
  };
  // One pass over this thread's slots of one kind (low or high), kBatch slots at a time: every chunk's loads of a
  // batch are issued before any is used, rather than one slot's loads after the last slot's stores (the reduce
  // took 0.050 ms at 4K and 0.172 ms at 16K for 61 / 150 MB of traffic, H100 session 41). Sums in chunk order.
  constexpr int kPerThread = (H2 + kThreads - 1) / kThreads, kBatch = kPerThread < 4 ? kPerThread : 4;
  auto slot_pass = [&](bool high, auto&& use) {
    for (int j0 = 0; j0 < kPerThread; j0 += kBatch) {
      int sl[kBatch];
      bool mine[kBatch];
      float4 a[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {  // (spec_walk_slot: the k-spectrum kernel's slot order)
        const int i = tid + (j0 + b) * kThreads;
        sl[b] = i < H2 ? spec_walk_slot<N0, RAD>(i) : 0;
        mine[b] = i < H2 && (slot_freq(sl[b]).y >= M / 2) == high;
        a[b] = make_float4(0.f, 0.f, 0.f, 0.f);
      }
      for (int c = 0; c < chunks; ++c) {
        if (!in_group(c)) continue;
        const float4* src = slots + (static_cast<int64_t>(h) * chunks + c) * H2;
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          if (mine[b]) {
            const float4 v = src[sl[b]];
            a[b] = make_float4(a[b].x + v.x, a[b].y + v.y, a[b].z + v.z, a[b].w + v.w);
          }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b)
        if (mine[b]) use(slot_freq(sl[b]).x, a[b]);
    }
  };
  // Low slots: H[f] = P[f] / 2, except H[0] = Re P[0] (P[0]'s own conjugate term). Then, after a barrier, high
  // slots add conj P[f] / 2 to H[N - f] (each such H written once in the first pass, added to once here), except
  // H[N/2] = Re P[N/2], which no low slot writes.
  slot_pass(false, [&](int f, float4 a) {
    hs[f] = f == 0 ? make_float2(a.x, 0.f) : make_float2(0.5f * a.x, 0.5f * a.y);
    hs[f + N0] = make_float2(0.5f * a.z, 0.5f * a.w);
  });
  __syncthreads();
  slot_pass(true, [&](int f, float4 a) {
    if (f == H2) {
      hs[H2] = make_float2(a.x, 0.f);
    } else {
      float2& t = hs[N - f];
      t = make_float2(t.x + 0.5f * a.x, t.y - 0.5f * a.y);
    }
    float2& t = hs[N - f - N0];
    t = make_float2(t.x + 0.5f * a.z, t.y - 0.5f * a.w);
  });
  __syncthreads();
  // Z[k] from H[k] and H[k + N/2] = conj H[N/2 - k]: one thread per pair (k, N/2 - k), in place.
  auto zbin = [](float2 a, float2 b, int k) {  // a = H[k], b = H[N/2 - k]
    float sn, cs;
    sincospif(2.0f * static_cast<float>(k) / N, &sn, &cs);  // w_N^(-k)
    const float er = a.x + b.x, ei = a.y - b.y, dr = a.x - b.x, di = a.y + b.y;
    const float orr = dr * cs - di * sn, oi = dr * sn + di * cs;
    return make_float2(er - oi, ei + orr);
  };
  for (int k = tid; k <= H2 / 2; k += nth) {
    const int kc = H2 - k;
    const float2 a = hs[k], b = hs[kc];
    hs[k] = zbin(a, b, k);
    if (k > 0 && kc != k) hs[kc] = zbin(b, a, kc);
  }
  __syncthreads();
  smem_fft::fft_smem_fixed<LOGH>(hs, true, tid, nth);  // syncs after
  const float* z = reinterpret_cast<const float*>(hs);
  float* out = dk + static_cast<int64_t>(gh) * Lk;
  for (int n = tid; n < Lk; n += nth) out[n] = z[n];
}

template <int RAD>
constexpr int bwd_warps() {
  // N=1024: 24 KB of buffers per warp; 4 warps (104 KB with the twiddles) let 2 CTAs share
  // an SM (8 warps, which is also what 255 registers a thread allow). N=256: 6 KB per warp,
  // registers are the limit, not shared memory.
  return 4;
}

// After the balanced tail (monarch_bwd_big_kernel's TAIL): the parts of tail item i = tail_i0 + blockIdx.x added, in
// pair order, into its slot i (and dskip's), so that the dk reduce reads one slot per item as without the tail. The
// part that starts the item is in slot i already; each later part is the first part of a worker w in (w0, w1] with
// a non-empty range (w0 / w1 hold the item's first / last pair), in slot items + w. A separate kernel rather than a
// tail-aware reduce: that one changed the default reduce's code (register allocation).
__global__ void __launch_bounds__(256) monarch_bwd_tail_merge_kernel(float4* slots, float* sslots, int items, int H2,
                                                                     int tail_i0, int workers, int cp) {
  const int i = tail_i0 + static_cast<int>(blockIdx.x);
  const int64_t T = static_cast<int64_t>(items - tail_i0) * cp, q0 = static_cast<int64_t>(blockIdx.x) * cp;
  const int w0 = static_cast<int>(bwd_worker_of(q0, workers, T));
  const int w1 = static_cast<int>(bwd_worker_of(q0 + cp - 1, workers, T));
  auto has_part = [&](int w) { return bwd_range_lo(w, workers, T) < bwd_range_lo(w + 1, workers, T); };
  begin_after_prior_grids();  // the slots are the main kernel's output
  if (w1 == w0) return;       // the item is one worker's part
  if (sslots != nullptr && threadIdx.x == 0) {
    float s = sslots[i];
    for (int w = w0 + 1; w <= w1; ++w)
      if (has_part(w)) s += sslots[items + w];
    sslots[i] = s;
  }
  if (slots == nullptr) return;
  float4* const dst = slots + static_cast<int64_t>(i) * H2;
  for (int e = threadIdx.x; e < H2; e += blockDim.x) {
    float4 a = dst[e];
    for (int w = w0 + 1; w <= w1; ++w)
      if (has_part(w)) {
        const float4 v = slots[(static_cast<int64_t>(items) + w) * H2 + e];
        a = make_float4(a.x + v.x, a.y + v.y, a.z + v.z, a.w + v.w);
      }
    dst[e] = a;
  }
}

template <int RAD>
size_t bwd_smem_bytes() {
  using S = BwdShape<RAD>;
  return sizeof(float4) * (S::N / 2) + size_t(bwd_warps<RAD>()) * S::WARP_ELEMS * 2;
}

// Warps per CTA of the big kernel: the forward's choice (enough to share the N0 inner rows,
// few enough that several CTAs fit per SM; 32768 has room for one CTA and gets 8).
constexpr int big_bwd_warps(int N0, int RAD) {
  return N0 == 1 ? 1 : (N0 == 2 ? 2 : (N0 * RAD * RAD == 32768 ? 8 : 4));
}
// The shared-accumulator variant's warps per CTA: twice the other's where the accumulator halves
// the CTAs per SM (8192, 16384), so both run as many warps per SM on an H100/H200 (32768: one CTA of
// 8 warps either way).
constexpr int big_bwd_acc_warps(int N0, int RAD) {
  const int n = N0 * RAD * RAD;
  return n == 8192 || n == 16384 ? 2 * big_bwd_warps(N0, RAD) : big_bwd_warps(N0, RAD);
}

// The one-warp-per-pair kernel where it applies (BHL, 16-byte aligned rows, N = 256/1024).
bool use_sq(const FftconvDims& d) { return d.layout == kBHL && radix_of(d.N) != 0 && d.L % 8 == 0; }

// BLH tile geometry of the N at hand (BlhShape): heads per tile, per CTA, CTAs per cluster.
struct BlhDims {
  int TH = 1, HPC = 1, CL = 1, TPL = 1;
};
BlhDims blh_dims(int64_t N) {
  BlhDims b;
  dispatch_n(N, [&](auto n0, auto rad) {
    using B = BlhShape<n0(), rad()>;
    b.TH = B::TH;
    b.HPC = B::HPC;
    b.CL = B::CL;
    b.TPL = B::TPL;
  });
  return b;
}

// Pairs per chunk. sq kernel: 8 (scratch traffic ~5% of the main pass, enough chunks per h to
// spread over all warps). Big kernel (one CTA runs a whole chunk): enough chunks for ~4096
// items (H * chunks) to balance the CTAs, few enough that the float32 slots (8N bytes each)
// stay under a cap where possible. With several filter groups a chunk must not cross a run of
// R/2 pairs of one group: the largest divisor of R/2 up to that.
// The cap: 64 MB, so N >= 8192 at H = 768 gets one chunk per h and no two CTAs share an h's K'
// blocks in L2 (ncu at 32K: K' read twice per pair, ~13 GB of the 48 GB read). More chunks per h,
// measured (H200, B=64 H=768 bf16, backward ms, self-test): 16K 17.35 -> 17.70 (3 chunks), 32K
// 38.3 -> 37.8 (5 chunks, 1 GB of slots), 4K 2.43 -> 2.62 (6 chunks instead of 2). 8K had 6 chunks
// (a 320 MB cap, session 11, slots then reduced in global memory) until session 30: with the shared
// accumulator and the one-FFT dk reduce, 6 / 3 / 1 chunks read 4.28 / 3.99 / 3.90 ms (two rounds).
// JFF_MONARCH_BWD_SLOT_CAP_MB=<MB> overrides the cap (A/B runs: benchmarks/device_fftconv.sh SLOT_AB).
int64_t bwd_slot_cap_bytes() {
  static const int64_t forced_mb = [] {
    const char* v = std::getenv("JFF_MONARCH_BWD_SLOT_CAP_MB");
    return v == nullptr ? int64_t(0) : int64_t(std::atoll(v));
  }();
  const int64_t mb = forced_mb > 0 ? forced_mb : 64;
  return mb << 20;
}

int64_t bwd_chunk_pairs(const FftconvDims& d) {
  const int64_t pairs = (d.B + 1) / 2;
  int64_t cp;
  if (use_sq(d)) {
    cp = 8 < pairs ? 8 : pairs;
  } else {
    // BLH: an item holds a tile of TH heads, so ~4096 / TH * 4 items (tiles are fewer and bigger).
    int64_t chunks = d.layout == kBLH ? (1024 * int64_t(blh_dims(d.N).TH) + d.H - 1) / d.H : (4096 + d.H - 1) / d.H;
    int64_t cap = bwd_slot_cap_bytes() / (d.H * 8 * d.N);
    if (cap < 1) cap = 1;
    if (chunks > cap) chunks = cap;
    if (chunks > pairs) chunks = pairs;
    cp = (pairs + chunks - 1) / chunks;
  }
  if (d.G > 1) {
    const int64_t run = d.R / 2;  // R is even when G > 1 (monarch_bwd_supported)
    while (cp > 1 && run % cp != 0) --cp;
  }
  return cp;
}

int64_t bwd_chunks(const FftconvDims& d) {
  const int64_t pairs = (d.B + 1) / 2, cp = bwd_chunk_pairs(d);
  return (pairs + cp - 1) / cp;
}

// Work items of the big kernels: (h, chunk), or for BLH (head tile, chunk) in tile groups.
int64_t bwd_items(const FftconvDims& d) {
  if (d.layout != kBLH) return d.H * bwd_chunks(d);
  const BlhDims b = blh_dims(d.N);
  const int64_t groups = (d.H + int64_t(b.TH) * b.TPL - 1) / (int64_t(b.TH) * b.TPL);
  return groups * b.TPL * bwd_chunks(d);
}

// CTAs of the big kernel that get an X buffer (4N bytes per head it holds): the grid never
// exceeds it (a whole number of clusters for BLH).
int64_t big_xbuf_ctas(const FftconvDims& d) {
  const BlhDims b = d.layout == kBLH ? blh_dims(d.N) : BlhDims{};
  int64_t n = (int64_t(64) << 20) / (4 * d.N * b.HPC);  // 64 MB
  if (n > 2048) n = 2048;
  const int64_t items = bwd_items(d) * b.CL;
  n = n < items ? n : items;
  n -= n % b.CL;
  return n > b.CL ? n : b.CL;
}

// Scratch layout (16-byte aligned pieces): k spectrum | dk slots | dskip slots | X buffers.
size_t kspec_bytes(const FftconvDims& d) {  // G * H * N complex values of KSpecOf<T>::Elem
  return kspec_bytes_for(d.dtype == DType::kBF16, d.G * d.H, d.N);
}
// JFF_MONARCH_BWD_TAIL=1 turns the balanced tail on (bwd_range_lo above); off by default until timed on a GPU.
bool bwd_tail_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("JFF_MONARCH_BWD_TAIL");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

// Slots for the balanced tail's extra parts, one per worker. Where it can apply (switched on, the BHL big kernel at
// a size with a tail instantiation, one filter group, whole chunks): room for as many workers as the
// shared-accumulator variant has CTAs on an H100 / H200 (per SM: 4 at 4K, 2 at 8K, 1 at 16K / 32K); a larger grid
// runs without the tail (launch_bwd_big).
int64_t bwd_tail_slots(const FftconvDims& d) {
  if (!bwd_tail_enabled() || d.layout != kBHL || use_sq(d) || !big_bwd_has_tail(static_cast<int>(d.N)) || d.G != 1 ||
      bwd_chunks(d) * bwd_chunk_pairs(d) != (d.B + 1) / 2)
    return 0;
  int dev = 0, nsm = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    return 0;
  const int64_t want = int64_t(nsm) * (d.N >= 16384 ? 1 : (d.N == 8192 ? 2 : 4)), xc = big_xbuf_ctas(d);
  return want < xc ? want : xc;
}
// dk / dskip slots: (H, chunks), i.e. one per item, then the balanced tail's.
int64_t bwd_slot_count(const FftconvDims& d) { return d.H * bwd_chunks(d) + bwd_tail_slots(d); }
size_t slot_bytes(const FftconvDims& d) {
  return static_cast<size_t>(bwd_slot_count(d)) * static_cast<size_t>(d.N) * 2 * sizeof(float);
}
size_t sslot_bytes(const FftconvDims& d) {
  return (static_cast<size_t>(bwd_slot_count(d)) * sizeof(float) + 15) / 16 * 16;
}
size_t xbuf_bytes(const FftconvDims& d) {
  const size_t heads = d.layout == kBLH ? static_cast<size_t>(blh_dims(d.N).HPC) : 1;
  return use_sq(d) ? 0 : static_cast<size_t>(big_xbuf_ctas(d)) * heads * static_cast<size_t>(d.N) * 4;
}

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

// The device's opt-in shared memory per block, bytes (0 if it cannot be read).
size_t max_dyn_smem() {
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
  return static_cast<size_t>(v);
}

// JFF_MONARCH_BWD_ACC=shared / =global picks the big kernel's dk accumulator where both variants
// exist (self-tests of the variant the device would not choose, A/B runs); unset or any other
// value: by occupancy.
int forced_bwd_acc() {
  static const int forced = [] {
    const char* v = std::getenv("JFF_MONARCH_BWD_ACC");
    if (v == nullptr) return 0;
    const std::string s(v);
    return s == "shared" ? 1 : (s == "global" ? -1 : 0);
  }();
  return forced;
}

// JFF_MONARCH_REPORT=1: one stderr line per (kernel shape, dtype, device) when a launch first decides between
// kernel variants, naming the variant and the occupancy it was chosen on (tests/test_gpu_fftconv.py checks it).
bool report_variants() {
  static const bool report = [] {
    const char* v = std::getenv("JFF_MONARCH_REPORT");
    return v != nullptr && std::string(v) == "1";
  }();
  return report;
}

BwdParams make_params(const FftconvBwdArgs& a, const void* kspec, char* rest) {
  const FftconvDims& d = a.d;
  BwdParams p;
  p.dy = a.dy;
  p.u = a.u;
  p.pre = a.pre;
  p.post = a.post;
  p.kspec = kspec;
  p.slots = a.dk != nullptr ? reinterpret_cast<float4*>(rest) : nullptr;
  p.sslots = a.dskip != nullptr ? reinterpret_cast<float*>(rest + slot_bytes(d)) : nullptr;
  p.xbuf = reinterpret_cast<uint2*>(rest + slot_bytes(d) + sslot_bytes(d));
  p.du = a.du;
  p.dpre = a.dpre;
  p.dpost = a.dpost;
  p.B = static_cast<int>(d.B);
  p.H = static_cast<int>(d.H);
  p.L = static_cast<int>(d.L);
  p.G = static_cast<int>(d.G);
  p.R = static_cast<int>(d.R);
  p.pairs = static_cast<int>((d.B + 1) / 2);
  p.cp = static_cast<int>(bwd_chunk_pairs(d));
  p.chunks = static_cast<int>(bwd_chunks(d));
  p.items = static_cast<int>(bwd_items(d));
  return p;
}

// JFF_MONARCH_BWD_GRID=<n>: at most n CTAs for the BHL big kernel (tests: small problems then get several items per
// worker and a balanced tail, as large ones do on a whole GPU); unset or 0: no cap.
int forced_bwd_grid() {
  static const int cap = [] {
    const char* v = std::getenv("JFF_MONARCH_BWD_GRID");
    return v == nullptr ? 0 : std::atoi(v);
  }();
  return cap;
}

template <int N0, int RAD>
cudaError_t launch_reduce(const FftconvBwdArgs& a, const BwdParams& p, cudaStream_t stream) {
  if (a.dk == nullptr && a.dskip == nullptr) return cudaSuccess;
  auto kern = monarch_dk_reduce_kernel<N0, RAD>;
  constexpr size_t sm = reduce_smem_bytes<N0, RAD>();
  if constexpr (sm > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
    if (err != cudaSuccess) return err;
  }
  return launch_kernel(kern, static_cast<unsigned>(a.d.G * a.d.H), kspec_threads(N0 * RAD * RAD), sm, stream, p.slots,
                       p.sslots, p.H, p.chunks, p.cp, p.R, p.G, a.d.Lk, a.dk, a.dskip);
}

template <typename T, int RAD>
cudaError_t launch_bwd_sq(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest) {
  const FftconvDims& d = a.d;
  constexpr int WARPS = bwd_warps<RAD>();
  cudaError_t err = launch_kspec<T, 1, RAD>(a.k, d.G * d.H, d.Lk, a.skip, kspec, stream);
  if (err != cudaSuccess) return err;
  auto kern = monarch_bwd_sq_kernel<T, RAD, WARPS>;
  const size_t sm = bwd_smem_bytes<RAD>();
  err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
  if (err != cudaSuccess) return err;
  int64_t resident = 0;
  if ((err = resident_ctas(kern, WARPS * 32, sm, &resident)) != cudaSuccess) return err;
  const BwdParams p = make_params(a, kspec, rest);
  const int64_t want = (int64_t(p.items) + WARPS - 1) / WARPS;
  const int64_t grid = want < resident ? want : resident;
  if ((err = launch_kernel(kern, static_cast<unsigned>(grid), WARPS * 32, sm, stream, p)) != cudaSuccess) return err;
  return launch_reduce<1, RAD>(a, p, stream);
}

template <typename T, int N0, int RAD>
cudaError_t launch_bwd_big(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest) {
  const FftconvDims& d = a.d;
  constexpr int WARPS = big_bwd_warps(N0, RAD), WARPS_S = big_bwd_acc_warps(N0, RAD);
  constexpr int GROUPS_S = big_bwd_has_shared_acc(N0, RAD) ? big_bwd_acc_groups(N0, RAD) : 1;
  cudaError_t err = launch_kspec<T, N0, RAD>(a.k, d.G * d.H, d.Lk, a.skip, kspec, stream);
  if (err != cudaSuccess) return err;
  const BwdParams p = make_params(a, kspec, rest);
  // One variant of the main kernel: resident CTAs from the occupancy API (registers and the
  // device's shared memory per SM), persistent grid; `groups` warp groups per CTA, each with its own
  // items and X buffer.
  auto grid_of = [&](int groups, int64_t resident) {
    // Group slot s = CTA * groups + group works on items s, s + grid * groups, ... with X buffer s; a
    // slot without items (s >= items) touches no buffer, so xc / groups CTAs (at least one) suffice.
    const int64_t want = (p.items + groups - 1) / groups, xc = big_xbuf_ctas(d) / groups;
    int64_t grid = want < resident ? want : resident;
    if (grid > xc) grid = xc > 1 ? xc : 1;
    if (const int cap = forced_bwd_grid(); cap > 0 && grid > cap) grid = cap;
    return grid;
  };
  auto launch = [&](auto kern, int warps, int groups, size_t sm, int64_t resident) {
    return launch_kernel(kern, static_cast<unsigned>(grid_of(groups, resident)), groups * warps * 32, sm, stream, p);
  };
  auto prepare = [&](auto kern, int warps, size_t sm, int64_t* resident) {
    cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
    return e != cudaSuccess ? e : resident_ctas(kern, warps * 32, sm, resident);
  };
  auto kern = monarch_bwd_big_kernel<T, N0, RAD, WARPS, false>;
  const size_t sm = big_bwd_smem_bytes<N0, RAD, WARPS, false>();
  if constexpr (!big_bwd_has_shared_acc(N0, RAD)) {
    int64_t resident = 0;
    if ((err = prepare(kern, WARPS, sm, &resident)) != cudaSuccess) return err;
    err = launch(kern, WARPS, 1, sm, resident);
  } else {
    auto kern_s = monarch_bwd_big_kernel<T, N0, RAD, WARPS_S, true, GROUPS_S>;
    const size_t sm_s = big_bwd_cta_smem_bytes<N0, RAD, WARPS_S, true, GROUPS_S>();
    // Which variant, and its resident CTAs, decided once per device (the function attributes set
    // on the way persist): resident * 2 + (1 for the shared accumulator); 0 = not decided yet.
    constexpr int kMaxDevices = 64;
    static std::atomic<int64_t> plans[kMaxDevices] = {};
    int dev = 0;
    if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
    if (dev < 0 || dev >= kMaxDevices) return cudaErrorInvalidDevice;
    int64_t plan = plans[dev].load(std::memory_order_relaxed);
    if (plan == 0) {
      int64_t resident = 0, resident_s = 0;
      if ((err = prepare(kern, WARPS, sm, &resident)) != cudaSuccess) return err;
      // Not where the device's block limit cannot take it (checked first: a failing runtime call
      // would leave its error for the launch's check), nor where no CTA of it fits an SM.
      bool shared_acc =
          sm_s <= max_dyn_smem() && prepare(kern_s, GROUPS_S * WARPS_S, sm_s, &resident_s) == cudaSuccess;
      const int forced = forced_bwd_acc();
      if (forced != 0) {
        shared_acc = shared_acc && forced > 0;
      } else {
        // At least 80% of the other variant's warps per SM: on an H200, fp16 at 4096 runs 4 instead
        // of 5 CTAs per SM with it (shared memory vs registers) and was still faster (3.143 -> 3.116
        // ms); with 164 KB per SM (A100) bf16 at 4096 would run 2 instead of 4.
        shared_acc = shared_acc && 5 * resident_s * GROUPS_S * WARPS_S >= 4 * resident * WARPS;
      }
      plan = (shared_acc ? resident_s : resident) * 2 + (shared_acc ? 1 : 0);
      plans[dev].store(plan, std::memory_order_relaxed);
      if (report_variants()) {
        // The choice that once went wrong silently for seven sessions (notes_monarch_bwd.md, session 41): a
        // table added to the shared shape cost the shared variant a CTA per SM and the rule above chose global.
        std::fprintf(stderr,
                     "jax-flashfft: monarch backward N=%d %s on device %d: %s dk accumulator "
                     "(resident: shared %lld CTAs x %d warps, %zu B each; global %lld x %d, %zu B)\n",
                     N0 * RAD * RAD, std::is_same_v<T, __half> ? "fp16" : "bf16", dev,
                     shared_acc ? "shared" : "global", static_cast<long long>(resident_s), GROUPS_S * WARPS_S, sm_s,
                     static_cast<long long>(resident), WARPS, sm);
      }
    }
    if constexpr (big_bwd_has_tail(N0 * RAD * RAD)) {
      // The balanced tail (JFF_MONARCH_BWD_TAIL=1) where the last round of items is partial: its own
      // instantiation, with its own resident CTAs (registers), decided once per device like the plan.
      const int64_t tail_slots = bwd_tail_slots(d);
      if ((plan & 1) && tail_slots > 0) {
        auto kern_t = monarch_bwd_big_kernel<T, N0, RAD, WARPS_S, true, 1, true>;
        static std::atomic<int64_t> tail_resident[kMaxDevices] = {};
        int64_t resident_t = tail_resident[dev].load(std::memory_order_relaxed);
        if (resident_t == 0) {
          if ((err = prepare(kern_t, WARPS_S, sm_s, &resident_t)) != cudaSuccess) return err;
          tail_resident[dev].store(resident_t, std::memory_order_relaxed);
        }
        const int64_t grid = grid_of(1, resident_t);
        if (p.items % grid != 0 && grid <= tail_slots) {
          static std::atomic<bool> reported[kMaxDevices] = {};
          if (report_variants() && !reported[dev].exchange(true))
            std::fprintf(stderr,
                         "jax-flashfft: monarch backward N=%d %s on device %d: balanced tail (items %lld..%d of %d, "
                         "%d pairs each, in ranges over %lld CTAs)\n",
                         N0 * RAD * RAD, std::is_same_v<T, __half> ? "fp16" : "bf16", dev,
                         static_cast<long long>(p.items / grid * grid), p.items - 1, p.items, p.cp,
                         static_cast<long long>(grid));
          if ((err = launch_kernel(kern_t, static_cast<unsigned>(grid), WARPS_S * 32, sm_s, stream, p)) != cudaSuccess)
            return err;
          if (a.dk != nullptr || a.dskip != nullptr) {
            const int tail_i0 = static_cast<int>(p.items / grid * grid);
            err = launch_kernel(monarch_bwd_tail_merge_kernel, static_cast<unsigned>(p.items - tail_i0), 256, 0,
                                stream, p.slots, p.sslots, p.items, N0 * RAD * RAD / 2, tail_i0, static_cast<int>(grid),
                                p.cp);
            if (err != cudaSuccess) return err;
          }
          return launch_reduce<N0, RAD>(a, p, stream);
        }
      }
    }
    err = (plan & 1) ? launch(kern_s, WARPS_S, GROUPS_S, sm_s, plan / 2) : launch(kern, WARPS, 1, sm, plan / 2);
  }
  if (err != cudaSuccess) return err;
  return launch_reduce<N0, RAD>(a, p, stream);
}

// BLH: one CTA per tile (N <= 2048) or a cluster per tile (N >= 4096, compute capability 9.0).
template <typename T, int N0, int RAD>
cudaError_t launch_bwd_blh(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest) {
  using B = BlhShape<N0, RAD>;
  constexpr size_t kSmem = BlhBwdShape<N0, RAD>::kSmem;
  constexpr auto kern = monarch_bwd_blh_kernel<T, N0, RAD>;
  const FftconvDims& d = a.d;
  cudaError_t err = launch_kspec<T, N0, RAD>(a.k, d.G * d.H, d.Lk, a.skip, kspec, stream);
  if (err != cudaSuccess) return err;
  const BwdParams p = make_params(a, kspec, rest);
  const int64_t xc = big_xbuf_ctas(d);  // a whole number of clusters
  if constexpr (B::CL == 1) {
    err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem));
    if (err != cudaSuccess) return err;
    int64_t resident = 0;
    if ((err = resident_ctas(kern, B::WARPS * 32, kSmem, &resident)) != cudaSuccess) return err;
    int64_t grid = p.items < resident ? p.items : resident;
    if (grid > xc) grid = xc;
    kern<<<static_cast<unsigned>(grid), B::WARPS * 32, kSmem, stream>>>(p);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  } else {
#ifdef JFF_MONARCH_EMU
    return cudaErrorNotSupported;
#else
    const int64_t max_clusters = p.items < xc / B::CL ? p.items : xc / B::CL;
    if ((err = launch_clusters<kern, B::CL, B::WARPS * 32, kSmem>(p, max_clusters, stream)) != cudaSuccess) return err;
#endif
  }
  return launch_reduce<N0, RAD>(a, p, stream);
}

// The BLH backward kernel, for blh_clusters_fit.
struct BwdBlhKernels {
  template <typename T, int N0, int RAD>
  static constexpr auto kern() {
    return monarch_bwd_blh_kernel<T, N0, RAD>;
  }
  template <int N0, int RAD>
  static constexpr size_t smem() {
    return BlhBwdShape<N0, RAD>::kSmem;
  }
};

// The BLH backward is correct on the GPU (H200: self-test in both layouts, memcheck, racecheck) but slower
// than the BHL kernels behind XLA transposes: B=64 H=768 bf16 fwd+bwd 4K 6.50 vs 4.31 ms, 32K 52.0 vs 44.6
// (benchmarks/notes_monarch_bwd.md, session 10). So it runs only with JFF_MONARCH_BLH_BWD=1 (self-tests,
// experiments), and jax_flashfft.fftconv sends BLH gradients through the transposes.
bool blh_bwd_enabled() {
#ifdef JFF_MONARCH_EMU
  return true;
#else
  static const bool on = [] {
    const char* v = std::getenv("JFF_MONARCH_BLH_BWD");
    return v != nullptr && v[0] == '1';
  }();
  return on;
#endif
}

// The launches of one element type: k's spectrum, the main pass (sq, BLH or big kernel), the reduction.
template <typename T>
cudaError_t launch_bwd_typed(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest) {
  const FftconvDims& d = a.d;
  cudaError_t err = cudaErrorInvalidValue;
  if (use_sq(d)) {
    const int rad = radix_of(d.N);
    if (rad == 16) err = launch_bwd_sq<T, 16>(a, stream, kspec, rest);
    if (rad == 32) err = launch_bwd_sq<T, 32>(a, stream, kspec, rest);
    return err;
  }
  if (d.layout == kBLH) {
    dispatch_n(d.N, [&](auto n0, auto rad) { err = launch_bwd_blh<T, n0(), rad()>(a, stream, kspec, rest); });
    return err;
  }
  dispatch_n(d.N, [&](auto n0, auto rad) { err = launch_bwd_big<T, n0(), rad()>(a, stream, kspec, rest); });
  return err;
}

}  // namespace

// Per element type, defined in the translation unit that compiles that type's kernels.
cudaError_t monarch_bwd_launch_bf16(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest);
cudaError_t monarch_bwd_launch_f16(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest);
bool monarch_bwd_blh_fits_bf16(int64_t N);
bool monarch_bwd_blh_fits_f16(int64_t N);

#if JFF_MONARCH_BWD_TYPES & 1
cudaError_t monarch_bwd_launch_bf16(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest) {
  return launch_bwd_typed<__nv_bfloat16>(a, stream, kspec, rest);
}
bool monarch_bwd_blh_fits_bf16(int64_t N) { return blh_clusters_fit_for<BwdBlhKernels, __nv_bfloat16>(N); }
#endif
#if JFF_MONARCH_BWD_TYPES & 2
cudaError_t monarch_bwd_launch_f16(const FftconvBwdArgs& a, cudaStream_t stream, void* kspec, char* rest) {
  return launch_bwd_typed<__half>(a, stream, kspec, rest);
}
bool monarch_bwd_blh_fits_f16(int64_t N) { return blh_clusters_fit_for<BwdBlhKernels, __half>(N); }
#endif

#if JFF_MONARCH_BWD_TYPES & 1
bool monarch_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  if (device_major < 8) return false;
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return false;
  if (d.layout != kBHL && !(d.layout == kBLH && blh_bwd_enabled() && (device_major >= 9 || d.N <= 2048)))
    return false;
  if (d.layout == kBLH && d.N > 2048 &&
      !(d.dtype == DType::kBF16 ? monarch_bwd_blh_fits_bf16(d.N) : monarch_bwd_blh_fits_f16(d.N)))
    return false;
  size_t sm = 0, ksm = 0, rsm = 0;
  const bool known = dispatch_n(d.N, [&](auto n0, auto rad) {  // N = 256 .. 32768
    // The big kernel: its global-slot variant, which always runs (the shared-accumulator one only where it fits).
    sm = d.layout == kBLH ? BlhBwdShape<n0(), rad()>::kSmem : big_bwd_smem_bytes<n0(), rad(), big_bwd_warps(n0(), rad())>();
    ksm = kspec_smem_bytes<n0(), rad()>();
    rsm = reduce_smem_bytes<n0(), rad()>();
  });
  if (!known) return false;
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  if (d.G < 1 || d.R < 1) return false;
  // Rows 2p and 2p+1 share one transform, hence one filter group.
  if (d.G != 1 && d.R % 2 != 0) return false;
  if (use_sq(d)) sm = radix_of(d.N) == 16 ? bwd_smem_bytes<16>() : bwd_smem_bytes<32>();
  if (sm > max_smem_per_block || ksm > max_smem_per_block || rsm > max_smem_per_block) return false;
  // Item, row and group indices are 32-bit in the kernels (element offsets are 64-bit);
  // 2 * c * cp and b0 stay below 2^31.
  if (d.B >= (int64_t(1) << 30) || d.R >= (int64_t(1) << 30) || d.G * d.H >= (int64_t(1) << 31)) return false;
  if (d.H * bwd_chunks(d) >= (int64_t(1) << 30)) return false;
  return true;
}

size_t monarch_bwd_scratch_bytes(const FftconvDims& d) {
  return kspec_bytes(d) + slot_bytes(d) + sslot_bytes(d) + xbuf_bytes(d);
}

cudaError_t monarch_bwd(const FftconvBwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes) {
  const FftconvDims& d = a.d;
  int dev = 0, major = 0, smem = 0;
  cudaError_t err;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) != cudaSuccess)
    return err;
  if (!monarch_bwd_supported(d, major, static_cast<size_t>(smem))) return cudaErrorInvalidValue;
  // An output for an absent operand would be left unwritten: refuse rather than guess.
  if ((a.dpre != nullptr && a.pre == nullptr) || (a.dpost != nullptr && a.post == nullptr) ||
      (a.dskip != nullptr && a.skip == nullptr))
    return cudaErrorInvalidValue;
  if (a.dy == nullptr || a.u == nullptr || a.k == nullptr) return cudaErrorInvalidValue;
  if (scratch == nullptr || scratch_bytes < monarch_bwd_scratch_bytes(d)) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(scratch) % 16 != 0) return cudaErrorInvalidValue;
  void* kspec = scratch;
  char* rest = static_cast<char*>(scratch) + kspec_bytes(d);
  return d.dtype == DType::kBF16 ? monarch_bwd_launch_bf16(a, stream, kspec, rest)
                                 : monarch_bwd_launch_f16(a, stream, kspec, rest);
}
#endif  // JFF_MONARCH_BWD_TYPES & 1

}  // namespace jff
