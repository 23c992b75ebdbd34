// Short FFT convolutions (L <= 128, or 256 by a switch; N <= 32768) on tensor cores, forward and backward
// (short_conv.h).
//
// The math. With v = pre * u per (batch, h) row and k_eff = k with skip added to its tap 0, the op's
// z + skip * v at the L valid points is v W with W[s][t] = k_eff[(t - s) mod N] (s, t < L): the
// circular convolution of length N as one L x L matrix, since F^-1 diag(FFT k) F is circulant. Nothing
// is transformed: the tensor cores take W's fragments straight from k (k rounded once to the data's
// 16-bit type, after a power-of-two scale per filter that keeps float16 inside its range), with
// float32 accumulation. Per output that is L multiply-adds (128, or 256, at most), which an H100's tensor
// cores do many times faster than HBM delivers the row's bytes.
//   forward   y = post * (V W)                     V: 16 rows x LP of one filter, zero-padded
//   backward  g = dy * post, dpost = dy * (V W), dv = g W^T, du = dv * pre, dpre = dv * u,
//             dk[j] = sum over rows and (t, s) with (t - s) mod N = j of g[t] v[s],
//             dskip = sum over rows and t of (u pre)(dy post) (float32 products of the unrounded inputs; the
//             16-bit g and v of the tensor-core products would make it a cancelling sum of rounded terms)
// dk's double sum is a product too: split t and s into 16-blocks, t = 16 T + tau, s = 16 (T - D) + tau';
// then C_D[tau][tau'] = sum over rows b and blocks T of g[b][16 T + tau] v[b][16 (T - D) + tau'] is a
// 16 x 16 matrix product whose inner dimension runs over (b, T), and dk[(16 D + tau - tau') mod N]
// collects C_D's diagonals. Each warp keeps the C_D of its block lags D in registers across its CTA's
// row tiles; at the end the diagonals are summed in a fixed order (and the CTAs' partial sums, if the
// rows of one filter are split over several CTAs, by a second kernel in a fixed order): bitwise
// reproducible, no atomics.
//
// Operands. A warp owns a tile of 16 batch rows of one (group, h) filter, staged in shared memory as
// 16-bit values (row stride LP + 8 elements: ldmatrix's 8 rows of 16 bytes fall in distinct bank
// groups). A fragments come from the tile by ldmatrix (V W, g W^T) or ldmatrix.trans (C_D: both
// operands transposed). W's B fragment for rows (s, s + 1) of column t is the pair (k_r[e], k_r[e + 1])
// with e = s - t and k_r[i] = k_eff[(-i) mod N] (for W^T the same with k_eff[i]); e's parity is the
// lane's (t's) parity, so each filter is staged twice per direction, as pairs starting at even and at
// odd indices: one 32-bit shared load per fragment register, conflict-free.
//
// Grid: one CTA per (filter, chunk of its row tiles), for BLH per (group, 8 heads, chunk); a tile holds up to
// 16 consecutive rows of one filter group run. The launchers pick the chunks from the shapes alone (so dk's
// summation order, and with it every bit of it, does not depend on the GPU).
#include "fftconv/short_conv.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#ifdef JFF_LONG_EMU
#include "common/emu_runtime.h"  // CPU emulation (short_selftest.cu's emulated build): fibers, mma, ldmatrix
#define JFF_SHORT_DYN_SMEM(type, name) JFF_DYN_SMEM(type, name)
#define JFF_SHORT_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::jff_emu::launch_cfg(kernel, ::jff_emu::LaunchCfg(grid, block, smem, stream), __VA_ARGS__)
#else
#include "fftconv/monarch_core.cuh"  // Ops<T>: pack, unpack, mma, mul2
#define JFF_SHORT_DYN_SMEM(type, name) extern __shared__ __align__(16) type name[]
#define JFF_SHORT_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#endif

namespace jff {
namespace shortconv {
namespace {

// L up to 256 where the convolution is linear (N >= L + Lk - 1: what fft_size=None picks, e.g. the causal N = 512
// row with L = 256), up to 128 elsewhere (JFF_SHORT_CONV_MAX_L=128: 128 everywhere, =256: 256 everywhere; A/B
// switches, =256 measured slower than the fused kernels at N = L = 256); N any power of two from L to 32768 (from
// 65536 on jff.fftconv prepares k's spectrum for the long-N kernels, which then take the call).
constexpr int kMaxL = 256, kDefaultMaxL = 128, kMaxN = 32768;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// CTAs the backward and the BLH forward aim for (about 8 per SM on an H100); more rows per CTA beyond that.
constexpr int64_t kTargetCtas = 1056;

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
__host__ __device__ constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
// LP: L rounded up to a multiple of 16 (the MMA's k step), at least 16.
constexpr int padded_length(int64_t L) {
  return L <= 16 ? 16 : (L <= 32 ? 32 : (L <= 64 ? 64 : (L <= 128 ? 128 : 256)));
}
// Words of one staged pair array (indices -LP .. LP + 1 as LP + 1 pairs), padded so that the odd-start
// array lies 16 banks away from the even-start one (a warp reads 7 consecutive words of each).
constexpr int pair_words(int LP) { return (LP + 1 + 31) / 32 * 32 + 16; }
constexpr int row_stride(int LP) { return LP + 8; }
constexpr int tile_elems(int LP) { return 16 * row_stride(LP); }

struct Params {
  const uint16_t *u, *pre, *post, *dy;  // pre / post: nullptr when absent; dy: backward only
  const float *k, *skip;                // k (G*H, Lk); skip (G*H) or nullptr
  uint16_t* y;                          // forward output
  uint16_t *du, *dpre, *dpost;          // backward outputs (dpre / dpost nullptr when that gate is absent)
  float *dk, *dskip, *part;             // part: (G*H, chunks, Lk) partial dk, then (G*H, chunks) partial dskip,
                                        // when chunks > 1
  int64_t B, H, G, R;                   // R: rows per group run (B when G == 1)
  int L, Lk, N;
  int tiles_per_run;        // ceil(min(R, B) / 16)
  int64_t tiles_per_group;  // ceil(runs / G) * tiles_per_run
  int64_t chunks;           // CTAs per filter (BLH: per group and kBlhHeads heads)
  int64_t tiles_per_cta;    // BHL: a multiple of kWarps (one tile per warp and round)
  uint32_t lag_mask;        // backward: bit D + KT - 1 set where dk needs C_D
  int vec;                  // every row 16-byte aligned: 16-byte loads and stores
};

struct RowTile {
  int64_t b0;
  int rows;  // 0: no such tile
};

// Tile j of filter group g: run g + G (j / tiles_per_run) of R consecutive batch rows, 16 of them.
__device__ __forceinline__ RowTile row_tile(const Params& p, int64_t g, int64_t j) {
  const int64_t run = g + p.G * (j / p.tiles_per_run);
  const int64_t b0 = run * p.R + 16 * (j % p.tiles_per_run);
  const int64_t end = min64(run * p.R + p.R, p.B);
  RowTile t{b0, 0};
  if (j < p.tiles_per_group && b0 < end) t.rows = static_cast<int>(min64(16, end - b0));
  return t;
}

template <bool TRANS>
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const uint16_t* p) {
#ifdef JFF_LONG_EMU
  ::jff_emu::ldmatrix_x4(r, p, TRANS);
#else
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(p));
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
#endif
}

// L2 hints on the BHL kernels' 16-byte accesses, JFF_SHORT_L2_HINTS (an A/B switch, 0 until measured):
//   1: reads that are a stream's last (the forward's u, pre and post; the backward's post, and its epilogues'
//      second reads of dy, pre and u) evict-first, and the outputs stored evict-first (streaming), so that they
//      do not push out of L2 what is read again;
//   2: as 1, and the backward's first reads of dy, pre and u, which its epilogues read again, evict-last.
// The backward reads dy, pre and u twice because a warp's shared memory holds only v = u pre, g = dy post and one
// product (ncu, H100, session 39: about 2x the floor's bytes from DRAM, L2 hit rate 47%).
#ifndef JFF_SHORT_L2_HINTS
#define JFF_SHORT_L2_HINTS 0
#endif
enum class Reuse { kLast, kAgain };  // read for the last time / read again later
template <Reuse R>
__device__ __forceinline__ uint4 load16(const uint16_t* p) {
  const uint4* v = reinterpret_cast<const uint4*>(p);
#ifndef JFF_LONG_EMU
  if constexpr (JFF_SHORT_L2_HINTS >= 1 && R == Reuse::kLast) {
    return __ldcs(v);
  } else if constexpr (JFF_SHORT_L2_HINTS >= 2 && R == Reuse::kAgain) {
    uint64_t policy;
    asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
    uint4 r;
    asm("ld.global.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(v), "l"(policy));
    return r;
  }
#endif
  return *v;
}
__device__ __forceinline__ uint4 load16_read_again(const uint16_t* p, bool again) {
  return again ? load16<Reuse::kAgain>(p) : load16<Reuse::kLast>(p);
}
__device__ __forceinline__ void store16(uint16_t* p, uint4 x) {
  uint4* v = reinterpret_cast<uint4*>(p);
#ifndef JFF_LONG_EMU
  if constexpr (JFF_SHORT_L2_HINTS >= 1) {
    __stcs(v, x);
    return;
  }
#endif
  *v = x;
}

// The product of two 16-bit values rounded once to 16 bits (exact in float32 first): packed pairs.
template <typename T>
__device__ __forceinline__ uint4 mul8(uint4 a, uint4 b) {
  return make_uint4(Ops<T>::mul2(a.x, b.x), Ops<T>::mul2(a.y, b.y), Ops<T>::mul2(a.z, b.z), Ops<T>::mul2(a.w, b.w));
}
template <typename T>
__device__ __forceinline__ uint16_t mul1(uint16_t a, uint16_t b) {
  return static_cast<uint16_t>(Ops<T>::mul2(a, b) & 0xffffu);
}

__device__ __forceinline__ int64_t row_offset(const Params& p, int64_t b, int64_t h) { return (b * p.H + h) * p.L; }

// A tile of x (* gate, where given) into shared memory: rows b0 .. b0 + rows - 1 of head h, columns
// 0 .. LP - 1, zero outside the rows and beyond L.
template <typename T, int LP>
__device__ __forceinline__ void load_tile(const Params& p, const uint16_t* x, const uint16_t* gate, RowTile rt,
                                          int64_t h, uint16_t* tile, int lane) {
  constexpr int SP = row_stride(LP), CPR = LP / 8;
  if (p.vec) {
#pragma unroll 2
    for (int i = lane; i < 16 * CPR; i += 32) {
      const int row = i / CPR, col = (i % CPR) * 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (row < rt.rows && col < p.L) {
        const int64_t off = row_offset(p, rt.b0 + row, h) + col;
        v = load16<Reuse::kLast>(x + off);
        if (gate != nullptr) v = mul8<T>(v, load16<Reuse::kLast>(gate + off));
      }
      *reinterpret_cast<uint4*>(tile + row * SP + col) = v;
    }
  } else {
    for (int i = lane; i < 16 * LP; i += 32) {
      const int row = i / LP, col = i % LP;
      uint16_t v = 0;
      if (row < rt.rows && col < p.L) {
        const int64_t off = row_offset(p, rt.b0 + row, h) + col;
        v = x[off];
        if (gate != nullptr) v = mul1<T>(v, gate[off]);
      }
      tile[row * SP + col] = v;
    }
  }
}

// (u pre)(dy post) summed over 8 elements in float32: each product of two 16-bit values is exact; an
// absent gate is 1.
template <typename T>
__device__ __forceinline__ float skip_terms(uint4 u, uint4 pre, uint4 dy, uint4 post, bool has_pre, bool has_post) {
  const uint32_t uw[4] = {u.x, u.y, u.z, u.w}, pw[4] = {pre.x, pre.y, pre.z, pre.w}, dw[4] = {dy.x, dy.y, dy.z, dy.w},
                 qw[4] = {post.x, post.y, post.z, post.w};
  float acc = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 v = Ops<T>::unpack(uw[i]), g = Ops<T>::unpack(dw[i]);
    if (has_pre) {
      const float2 x = Ops<T>::unpack(pw[i]);
      v.x *= x.x, v.y *= x.y;
    }
    if (has_post) {
      const float2 x = Ops<T>::unpack(qw[i]);
      g.x *= x.x, g.y *= x.y;
    }
    acc += v.x * g.x + v.y * g.y;
  }
  return acc;
}

// The backward's two operand tiles at once: v = u * pre into vt, g = dy * post into gt (as load_tile), and,
// with SKIP, this lane's float32 partial sum of dskip's terms over the elements it loaded.
template <typename T, int LP, bool SKIP>
__device__ __forceinline__ float load_operands(const Params& p, RowTile rt, int64_t h, uint16_t* vt, uint16_t* gt,
                                               int lane) {
  constexpr int SP = row_stride(LP), CPR = LP / 8;
  const bool has_pre = p.pre != nullptr, has_post = p.post != nullptr;
  const bool reread_u = p.dpre != nullptr, reread_pre = p.du != nullptr, reread_dy = p.dpost != nullptr;
  float acc = 0.f;
  if (p.vec) {
#pragma unroll 2
    for (int i = lane; i < 16 * CPR; i += 32) {
      const int row = i / CPR, col = (i % CPR) * 8;
      uint4 v = make_uint4(0, 0, 0, 0), g = v;
      if (row < rt.rows && col < p.L) {
        const int64_t off = row_offset(p, rt.b0 + row, h) + col;
        // u, pre and dy come back in the epilogues (dpre's, du's and dpost's gates) when those are computed.
        const uint4 xu = load16_read_again(p.u + off, reread_u), xd = load16_read_again(p.dy + off, reread_dy);
        const uint4 xp = has_pre ? load16_read_again(p.pre + off, reread_pre) : xu;
        const uint4 xq = has_post ? load16<Reuse::kLast>(p.post + off) : xd;
        v = has_pre ? mul8<T>(xu, xp) : xu;
        g = has_post ? mul8<T>(xd, xq) : xd;
        if constexpr (SKIP) acc += skip_terms<T>(xu, xp, xd, xq, has_pre, has_post);
      }
      *reinterpret_cast<uint4*>(vt + row * SP + col) = v;
      *reinterpret_cast<uint4*>(gt + row * SP + col) = g;
    }
  } else {
    for (int i = lane; i < 16 * LP; i += 32) {
      const int row = i / LP, col = i % LP;
      uint16_t v = 0, g = 0;
      if (row < rt.rows && col < p.L) {
        const int64_t off = row_offset(p, rt.b0 + row, h) + col;
        const uint16_t xu = p.u[off], xd = p.dy[off], xp = has_pre ? p.pre[off] : 0, xq = has_post ? p.post[off] : 0;
        v = has_pre ? mul1<T>(xu, xp) : xu;
        g = has_post ? mul1<T>(xd, xq) : xd;
        if constexpr (SKIP) {
          const float fv = Ops<T>::unpack(xu).x * (has_pre ? Ops<T>::unpack(xp).x : 1.f);
          const float fg = Ops<T>::unpack(xd).x * (has_post ? Ops<T>::unpack(xq).x : 1.f);
          acc += fv * fg;
        }
      }
      vt[row * SP + col] = v;
      gt[row * SP + col] = g;
    }
  }
  return acc;
}

// out = tile (* gate, where given) for the tile's valid rows and columns.
template <typename T, int LP>
__device__ __forceinline__ void store_tile(const Params& p, uint16_t* out, const uint16_t* gate, RowTile rt,
                                           int64_t h, const uint16_t* tile, int lane) {
  constexpr int SP = row_stride(LP), CPR = LP / 8;
  if (p.vec) {
#pragma unroll 2
    for (int i = lane; i < 16 * CPR; i += 32) {
      const int row = i / CPR, col = (i % CPR) * 8;
      if (row < rt.rows && col < p.L) {
        const int64_t off = row_offset(p, rt.b0 + row, h) + col;
        uint4 v = *reinterpret_cast<const uint4*>(tile + row * SP + col);
        if (gate != nullptr) v = mul8<T>(v, load16<Reuse::kLast>(gate + off));
        store16(out + off, v);
      }
    }
  } else {
    for (int i = lane; i < 16 * LP; i += 32) {
      const int row = i / LP, col = i % LP;
      if (row < rt.rows && col < p.L) {
        const int64_t off = row_offset(p, rt.b0 + row, h) + col;
        uint16_t v = tile[row * SP + col];
        if (gate != nullptr) v = mul1<T>(v, gate[off]);
        out[off] = v;
      }
    }
  }
}

// Filter gh's taps as W holds them: k_eff(d mod N) / 2^e for -L < d < L (N a power of two), where 2^e is the
// scale (max |k_eff| / 2^e in [0.5, 1); e = 0 for an all-zero filter), and 0 elsewhere. W[s][t] with |t - s| >= L
// meets only padding (s >= L, whose v is 0, or t >= L, never stored); a 0 there rather than the tap keeps a tap
// that reaches no output out of the products (a float16 inf there would make 0 * inf = NaN).
struct FilterTaps {
  const float* k;
  float skip, inv;
  int L, Lk, nmask;
  __device__ __forceinline__ float operator()(int d) const {
    if (d <= -L || d >= L) return 0.f;
    const int j = d & nmask;
    return ((j < Lk ? k[j] : 0.f) + (j == 0 ? skip : 0.f)) * inv;
  }
};
// max |k_eff| over this thread's share (first, first + stride, ...) of the taps that reach an output: j = (t - s)
// mod N for s, t < L, i.e. j < L or j > N - L (every tap where N < 2 L). The others never touch y.
__device__ __forceinline__ float filter_max_part(const Params& p, int64_t gh, int first, int stride) {
  const float* k = p.k + gh * p.Lk;
  const float sk = p.skip != nullptr ? p.skip[gh] : 0.f;
  const int low = p.Lk < p.L ? p.Lk : p.L, high = p.N - p.L + 1 > p.L ? p.N - p.L + 1 : p.L;
  const int count = low + (p.Lk > high ? p.Lk - high : 0);
  float m = 0.f;
  for (int i = first; i < count; i += stride) {
    const int j = i < low ? i : high + (i - low);
    m = fmaxf(m, fabsf(k[j] + (j == 0 ? sk : 0.f)));
  }
  return m;
}
__device__ __forceinline__ float warp_max(float m) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  return m;
}
// The taps of filter gh for the largest |k_eff| m; its scale 2^e into *scale.
__device__ __forceinline__ FilterTaps filter_taps(const Params& p, int64_t gh, float m, float* scale) {
  int e = 0;
  if (m > 0.f) frexpf(m, &e);
  *scale = ldexpf(1.f, e);
  return FilterTaps{p.k + gh * p.Lk, p.skip != nullptr ? p.skip[gh] : 0.f, ldexpf(1.f, -e), p.L, p.Lk, p.N - 1};
}
// The pair arrays of k_r (and, with BOTH, of k_eff itself) at `arrays`: per array pair_words(LP) words of pairs
// starting at even indices, then as many starting at odd ones; this thread writes pairs first, first + stride, ...
template <typename T, int LP, bool BOTH>
__device__ __forceinline__ void write_pairs(const FilterTaps& tap, uint32_t* arrays, int first, int stride) {
  constexpr int PW = pair_words(LP), kArrays = BOTH ? 2 : 1;
  for (int i = first; i < kArrays * 2 * (LP + 1); i += stride) {
    const int a = i / (2 * (LP + 1)), rest = i % (2 * (LP + 1)), odd = rest / (LP + 1), w = rest % (LP + 1);
    const int i0 = 2 * w - odd - LP;  // the pair (A[i0], A[i0 + 1]); A = k_r (a = 0) or k_eff (a = 1)
    const float lo = a == 0 ? tap(-i0) : tap(i0), hi = a == 0 ? tap(-i0 - 1) : tap(i0 + 1);
    arrays[(2 * a + odd) * PW + w] = Ops<T>::pack(lo, hi);
  }
}
// Filter gh staged by the whole CTA (write_pairs' arrays, the scale into *scale); ends synchronised.
template <typename T, int LP, bool BOTH>
__device__ __forceinline__ void stage_filter(const Params& p, int64_t gh, uint32_t* arrays, float* red, float* scale) {
  const int tid = threadIdx.x;
  const float m = warp_max(filter_max_part(p, gh, tid, kThreads));
  if ((tid & 31) == 0) red[tid >> 5] = m;
  __syncthreads();
  float all = red[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) all = fmaxf(all, red[w]);
  write_pairs<T, LP, BOTH>(filter_taps(p, gh, all, scale), arrays, tid, kThreads);
  __syncthreads();
}

// This lane's view of one staged array: lane_pairs(...)[8 kt - 4 nt] and [8 kt - 4 nt + 4] are its B
// fragment registers for k-step kt and n-tile nt (the pair at e = 16 kt + 2 q - 8 nt - r, and e + 8).
template <int LP>
__device__ __forceinline__ const uint32_t* lane_pairs(const uint32_t* even, int lane) {
  constexpr int PW = pair_words(LP);
  const int q = lane & 3, r = lane >> 2;
  return (r & 1) ? even + PW + ((2 * q - r + 1 + LP) >> 1) : even + ((2 * q - r + LP) >> 1);
}

// dst (16 x LP, 16-bit) = src (16 x LP) * B * scale, B's fragments from the lane's pair view. dst may be
// src: the A fragments are all in registers before the first store.
template <typename T, int LP>
__device__ __forceinline__ void tile_product(const uint16_t* src, const uint32_t* pairs, uint16_t* dst, float scale,
                                             int lane) {
  constexpr int KT = LP / 16, NT = LP / 8, SP = row_stride(LP);
  uint32_t a[KT][4];
  const uint16_t* arow = src + (((lane >> 3) & 1) * 8 + (lane & 7)) * SP + (lane >> 4) * 8;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) ldsm_x4<false>(a[kt], arow + 16 * kt);
  __syncwarp();
  const int q = lane & 3, r = lane >> 2;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int kt = 0; kt < KT; ++kt) Ops<T>::mma(acc, a[kt], pairs[8 * kt - 4 * nt], pairs[8 * kt - 4 * nt + 4]);
    uint16_t* out = dst + r * SP + 8 * nt + 2 * q;
    *reinterpret_cast<uint32_t*>(out) = Ops<T>::pack(acc[0] * scale, acc[1] * scale);
    *reinterpret_cast<uint32_t*>(out + 8 * SP) = Ops<T>::pack(acc[2] * scale, acc[3] * scale);
  }
}

// ---- forward ----
template <int LP>
constexpr size_t fwd_smem_bytes() {
  return (2 * pair_words(LP) + 32) * 4 + size_t(kWarps) * tile_elems(LP) * 2;
}

template <typename T, int LP>
__global__ void __launch_bounds__(kThreads) short_fwd_kernel(const Params p) {
  JFF_SHORT_DYN_SMEM(uint32_t, smem);
  uint32_t* arrays = smem;
  float* red = reinterpret_cast<float*>(smem + 2 * pair_words(LP));
  uint16_t* tiles = reinterpret_cast<uint16_t*>(smem + 2 * pair_words(LP) + 32);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t gh = blockIdx.x / p.chunks, chunk = blockIdx.x % p.chunks, g = gh / p.H, h = gh % p.H;
  float scale;
  stage_filter<T, LP, false>(p, gh, arrays, red, &scale);
  const uint32_t* pairs = lane_pairs<LP>(arrays, lane);
  uint16_t* tile = tiles + warp * tile_elems(LP);
  for (int64_t j = warp; j < p.tiles_per_cta; j += kWarps) {
    const RowTile rt = row_tile(p, g, chunk * p.tiles_per_cta + j);
    if (rt.rows == 0) break;  // tiles come in order: none after an empty one
    load_tile<T, LP>(p, p.u, p.pre, rt, h, tile, lane);
    __syncwarp();
    tile_product<T, LP>(tile, pairs, tile, scale, lane);
    __syncwarp();
    store_tile<T, LP>(p, p.y, p.post, rt, h, tile, lane);
    __syncwarp();  // the next tile's loads overwrite what this store reads
  }
}

// ---- forward, BLH ----
// A CTA takes kBlhHeads consecutive heads (16 bytes of every (b, t) row of u) and batch tiles of one filter
// group: their rows go through shared memory as one tile per head (transposed on the way in and out, so that the
// global accesses stay 16-byte vectors), and each head's product is the BHL kernel's (warp w: heads w and
// w + kWarps, whose filters it stages itself).
constexpr int kBlhHeads = 8;
template <int LP>
constexpr size_t blh_fwd_smem_bytes() {
  return size_t(kBlhHeads) * 2 * pair_words(LP) * 4 + size_t(kBlhHeads) * tile_elems(LP) * 2;
}
__device__ __forceinline__ int64_t blh_offset(const Params& p, int64_t b, int t, int64_t h) {
  return (b * p.L + t) * p.H + h;
}

// The head tiles of rows rt (columns 0 .. LP - 1, zero outside the rows and beyond L and for heads >= H):
// x * gate (where given) for heads h0 .. h0 + kBlhHeads - 1.
template <typename T, int LP>
__device__ __forceinline__ void blh_load(const Params& p, const uint16_t* x, const uint16_t* gate, RowTile rt,
                                         int64_t h0, uint16_t* tiles) {
  constexpr int SP = row_stride(LP), TE = tile_elems(LP);
  const bool vec = p.vec && h0 + kBlhHeads <= p.H;
  for (int i = threadIdx.x; i < 16 * LP; i += kThreads) {
    const int row = i / LP, t = i % LP;
    uint16_t e[kBlhHeads];
#pragma unroll
    for (int hh = 0; hh < kBlhHeads; ++hh) e[hh] = 0;
    if (row < rt.rows && t < p.L) {
      const int64_t off = blh_offset(p, rt.b0 + row, t, h0);
      if (vec) {
        uint4 v = *reinterpret_cast<const uint4*>(x + off);
        if (gate != nullptr) v = mul8<T>(v, *reinterpret_cast<const uint4*>(gate + off));
        const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int hh = 0; hh < kBlhHeads; ++hh) e[hh] = static_cast<uint16_t>(w[hh / 2] >> (16 * (hh % 2)));
      } else {
#pragma unroll
        for (int hh = 0; hh < kBlhHeads; ++hh)
          if (h0 + hh < p.H) e[hh] = gate != nullptr ? mul1<T>(x[off + hh], gate[off + hh]) : x[off + hh];
      }
    }
#pragma unroll
    for (int hh = 0; hh < kBlhHeads; ++hh) tiles[hh * TE + row * SP + t] = e[hh];
  }
}

// out = the head tiles (* gate, where given) at the valid rows, columns and heads.
template <typename T, int LP>
__device__ __forceinline__ void blh_store(const Params& p, uint16_t* out, const uint16_t* gate, RowTile rt,
                                          int64_t h0, const uint16_t* tiles) {
  constexpr int SP = row_stride(LP), TE = tile_elems(LP);
  const bool vec = p.vec && h0 + kBlhHeads <= p.H;
  for (int i = threadIdx.x; i < 16 * LP; i += kThreads) {
    const int row = i / LP, t = i % LP;
    if (row >= rt.rows || t >= p.L) continue;
    const int64_t off = blh_offset(p, rt.b0 + row, t, h0);
    uint16_t e[kBlhHeads];
#pragma unroll
    for (int hh = 0; hh < kBlhHeads; ++hh) e[hh] = tiles[hh * TE + row * SP + t];
    if (vec) {
      uint4 v = make_uint4(e[0] | (uint32_t(e[1]) << 16), e[2] | (uint32_t(e[3]) << 16), e[4] | (uint32_t(e[5]) << 16),
                           e[6] | (uint32_t(e[7]) << 16));
      if (gate != nullptr) v = mul8<T>(v, *reinterpret_cast<const uint4*>(gate + off));
      *reinterpret_cast<uint4*>(out + off) = v;
    } else {
#pragma unroll
      for (int hh = 0; hh < kBlhHeads; ++hh)
        if (h0 + hh < p.H) out[off + hh] = gate != nullptr ? mul1<T>(e[hh], gate[off + hh]) : e[hh];
    }
  }
}

template <typename T, int LP>
__global__ void __launch_bounds__(kThreads) short_fwd_blh_kernel(const Params p) {
  constexpr int TE = tile_elems(LP), PW2 = 2 * pair_words(LP), HPW = kBlhHeads / kWarps;
  JFF_SHORT_DYN_SMEM(uint32_t, smem);
  uint32_t* arrays = smem;  // PW2 words per head
  uint16_t* tiles = reinterpret_cast<uint16_t*>(smem + kBlhHeads * PW2);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t head_groups = ceil_div(p.H, kBlhHeads);
  const int64_t chunk = blockIdx.x % p.chunks, rest = blockIdx.x / p.chunks;
  const int64_t h0 = (rest % head_groups) * kBlhHeads, g = rest / head_groups;
  float scale[HPW];
#pragma unroll
  for (int i = 0; i < HPW; ++i) {
    const int hh = warp + kWarps * i;
    scale[i] = 1.f;
    if (h0 + hh < p.H) {
      const int64_t gh = g * p.H + h0 + hh;
      write_pairs<T, LP, false>(filter_taps(p, gh, warp_max(filter_max_part(p, gh, lane, 32)), &scale[i]),
                                arrays + hh * PW2, lane, 32);
    }
  }
  __syncwarp();  // a warp reads only the filters it staged
  for (int64_t j = 0; j < p.tiles_per_cta; ++j) {
    const RowTile rt = row_tile(p, g, chunk * p.tiles_per_cta + j);
    if (rt.rows == 0) break;  // tiles come in order: none after an empty one
    __syncthreads();          // the previous tile's store has read the tiles
    blh_load<T, LP>(p, p.u, p.pre, rt, h0, tiles);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < HPW; ++i) {
      const int hh = warp + kWarps * i;
      if (h0 + hh < p.H)
        tile_product<T, LP>(tiles + hh * TE, lane_pairs<LP>(arrays + hh * PW2, lane), tiles + hh * TE, scale[i], lane);
    }
    __syncthreads();
    blh_store<T, LP>(p, p.y, p.post, rt, h0, tiles);
  }
}

// ---- backward ----
// Block lags D a warp holds C_D for: the set ones among D + KT - 1 = 0 .. 2 KT - 2, dealt round-robin.
template <int LP>
constexpr int lags_per_warp() {
  return (2 * (LP / 16) - 1 + kWarps - 1) / kWarps;
}
// C_D in shared memory at the end: rows of 17 floats, so that the threads summing consecutive diagonals
// (one lag j each) read distinct banks.
constexpr int kSumsRow = 17, kSumsPerLag = 16 * kSumsRow;
// The backward's occupancy. With each warp holding three tiles (v, g and a product) the LP = 128 backward takes 106
// registers and 55 KB of shared memory: 4 CTAs per SM, so B = 64, H = 768 runs in 1.45 waves on an H100.
// JFF_SHORT_BWD_IN_PLACE=1: the dk products first, then each warp's two products in place of v and g (two tiles:
// 38 KB at LP = 128; the same operations on the same operands, in the same order). JFF_SHORT_BWD_MIN_CTAS=n:
// registers capped for n CTAs per SM (6: 80 registers at LP = 128, a few spilled; with IN_PLACE, B = 64, H = 768 in
// one wave). JFF_SHORT_BWD_TUNED_LP=m: both apply at LP = m only (0: at every LP, the cap at LP <= 128).
// H100, session 39 (benchmarks/notes_monarch.md): IN_PLACE with 6 CTAs at every LP made the backward 6-9% faster at
// LP = 128 and 3-4% slower at LP = 64; with 5 CTAs slower everywhere. Hence the default: both at LP = 128 only.
#ifndef JFF_SHORT_BWD_IN_PLACE
#define JFF_SHORT_BWD_IN_PLACE 1
#endif
#ifndef JFF_SHORT_BWD_MIN_CTAS
#define JFF_SHORT_BWD_MIN_CTAS 6
#endif
#ifndef JFF_SHORT_BWD_TUNED_LP
#define JFF_SHORT_BWD_TUNED_LP 128
#endif
template <int LP>
constexpr bool bwd_tuned() {
  return JFF_SHORT_BWD_TUNED_LP == 0 || LP == JFF_SHORT_BWD_TUNED_LP;  // every LP is <= 256
}
template <int LP>
constexpr bool bwd_in_place() {
  return JFF_SHORT_BWD_IN_PLACE && bwd_tuned<LP>();
}
template <int LP>
constexpr int bwd_tiles_per_warp() {
  return bwd_in_place<LP>() ? 2 : 3;
}
// 0 leaves ptxas' allocation as without a minimum (a minimum of 1 changes it: 106 -> 111 registers at LP = 128).
// Hopper only: an A100-class SM's shared memory (164 KB) holds 4 of the 38 KB CTAs, which 110 registers allow
// anyway, so there the cap would only spill (sm_80: 248 bytes at LP = 128).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
constexpr int kBwdMinCtas = 1;
#else
constexpr int kBwdMinCtas = JFF_SHORT_BWD_MIN_CTAS;
#endif
template <int LP>
constexpr int bwd_min_ctas() {
  return LP <= 128 && bwd_tuned<LP>() && kBwdMinCtas > 1 ? kBwdMinCtas : 0;
}
template <int LP>
constexpr size_t bwd_smem_bytes() {
  const size_t tiles = size_t(kWarps) * bwd_tiles_per_warp<LP>() * tile_elems(LP) * 2;
  const size_t sums = size_t(2 * (LP / 16) - 1) * kSumsPerLag * 4;  // the C_D at the end, over the tiles
  return (4 * pair_words(LP) + 32) * 4 + (tiles > sums ? tiles : sums);
}

// The index of the n-th set bit (n = 0: the lowest) among the low `bits` of mask, `none` where fewer are set.
__device__ __forceinline__ int nth_set_bit_or(uint32_t mask, int n, int bits, int none) {
  for (int i = 0; i < bits; ++i)
    if ((mask >> i) & 1u) {
      if (n == 0) return i;
      --n;
    }
  return none;
}

// dpost = (v W) gated by dy into v_out; du, dpre = (g W^T) gated by pre, u into g_out (v_out and g_out may be v and
// g themselves: JFF_SHORT_BWD_IN_PLACE, once the dk products are done with them).
template <typename T, int LP>
__device__ __forceinline__ void bwd_products(const Params& p, RowTile rt, int64_t h, const uint16_t* vt,
                                             const uint16_t* gt, uint16_t* v_out, uint16_t* g_out,
                                             const uint32_t* pairs_r, const uint32_t* pairs_k, float scale, int lane) {
  if (p.dpost != nullptr) {
    tile_product<T, LP>(vt, pairs_r, v_out, scale, lane);
    __syncwarp();
    store_tile<T, LP>(p, p.dpost, p.dy, rt, h, v_out, lane);
    __syncwarp();
  }
  tile_product<T, LP>(gt, pairs_k, g_out, scale, lane);
  __syncwarp();
  if (p.du != nullptr) store_tile<T, LP>(p, p.du, p.pre, rt, h, g_out, lane);
  if (p.dpre != nullptr) store_tile<T, LP>(p, p.dpre, p.u, rt, h, g_out, lane);
}

template <typename T, int LP, bool SKIP>
__global__ void __launch_bounds__(kThreads, bwd_min_ctas<LP>()) short_bwd_kernel(const Params p) {
  constexpr bool kInPlace = bwd_in_place<LP>();
  constexpr int KT = LP / 16, SP = row_stride(LP), TE = tile_elems(LP), DPW = lags_per_warp<LP>();
  JFF_SHORT_DYN_SMEM(uint32_t, smem);
  uint32_t* arrays = smem;  // k_r's pairs, then k_eff's
  float* red = reinterpret_cast<float*>(smem + 4 * pair_words(LP));
  uint16_t* tiles = reinterpret_cast<uint16_t*>(smem + 4 * pair_words(LP) + 32);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, q = lane & 3, r = lane >> 2;
  const int64_t gh = blockIdx.x / p.chunks, chunk = blockIdx.x % p.chunks, g = gh / p.H, h = gh % p.H;
  float scale;
  stage_filter<T, LP, true>(p, gh, arrays, red, &scale);
  const uint32_t* pairs_r = lane_pairs<LP>(arrays, lane);
  const uint32_t* pairs_k = lane_pairs<LP>(arrays + 2 * pair_words(LP), lane);
  uint16_t* vt = tiles + warp * bwd_tiles_per_warp<LP>() * TE;  // v = u * pre
  uint16_t* gt = vt + TE;                                       // g = dy * post
  uint16_t* st = kInPlace ? nullptr : gt + TE;                  // V W, then g W^T (in place: in vt, then gt)
  int lag[DPW];  // -LP: none
#pragma unroll
  for (int s = 0; s < DPW; ++s)
    lag[s] = nth_set_bit_or(p.lag_mask, s * kWarps + warp, 2 * KT - 1, KT - 1 - LP) - (KT - 1);
  float c[DPW][2][4];
#pragma unroll
  for (int s = 0; s < DPW; ++s)
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[s][n][e] = 0.f;
  float skip_part = 0.f;  // this lane's dskip terms, in tile order

  for (int64_t base = 0; base < p.tiles_per_cta; base += kWarps) {
    const int64_t first = chunk * p.tiles_per_cta + base;
    const RowTile rt = row_tile(p, g, first + warp);
    if (rt.rows > 0) {
      skip_part += load_operands<T, LP, SKIP>(p, rt, h, vt, gt, lane);
      __syncwarp();
      if constexpr (!kInPlace)
        bwd_products<T, LP>(p, rt, h, vt, gt, st, st, pairs_r, pairs_k, scale, lane);
    }
    __syncthreads();  // every warp's v and g tiles are in place
    for (int w = 0; w < kWarps; ++w) {
      if (row_tile(p, g, first + w).rows == 0) continue;
      const uint16_t* V = tiles + w * bwd_tiles_per_warp<LP>() * TE;
      const uint16_t* G = V + TE;
      const uint16_t* grow = G + (((lane >> 4) & 1) * 8 + (lane & 7)) * SP + ((lane >> 3) & 1) * 8;
      const uint16_t* vrow = V + (((lane >> 3) & 1) * 8 + (lane & 7)) * SP + (lane >> 4) * 8;
#pragma unroll
      for (int s = 0; s < DPW; ++s) {
        const int D = lag[s];
        if (D == -LP) continue;
        const int t_lo = D > 0 ? D : 0, t_hi = D < 0 ? KT + D : KT;
        for (int tb = t_lo; tb < t_hi; ++tb) {  // t's 16-block; s's is tb - D
          uint32_t a[4], b[4];
          ldsm_x4<true>(a, grow + 16 * tb);
          ldsm_x4<true>(b, vrow + 16 * (tb - D));
          Ops<T>::mma(c[s][0], a, b[0], b[1]);
          Ops<T>::mma(c[s][1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the tiles are free: for the next round's loads, or (IN_PLACE) this round's products
    if constexpr (kInPlace) {
      if (rt.rows > 0) bwd_products<T, LP>(p, rt, h, vt, gt, vt, gt, pairs_r, pairs_k, scale, lane);
      __syncwarp();  // this warp's next loads overwrite what its stores read
    }
  }
  if constexpr (kInPlace) __syncthreads();  // C_D goes where the warps' tiles were

  // C_D to shared memory (over the tiles), then dk[j] from their diagonals in a fixed order.
  float* sums = reinterpret_cast<float*>(tiles);
#pragma unroll
  for (int s = 0; s < DPW; ++s) {
    if (lag[s] == -LP) continue;
    float* cd = sums + (lag[s] + KT - 1) * kSumsPerLag;
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) cd[(r + 8 * (e >> 1)) * kSumsRow + 8 * n + 2 * q + (e & 1)] = c[s][n][e];
  }
  if constexpr (SKIP) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) skip_part += __shfl_xor_sync(0xffffffffu, skip_part, o);
    if (lane == 0) red[warp] = skip_part;
  }
  __syncthreads();
  if (SKIP && threadIdx.x == 0) {
    float sum = red[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) sum += red[w];
    if (p.chunks == 1)
      p.dskip[gh] = sum;
    else
      p.part[p.chunks * p.G * p.H * p.Lk + gh * p.chunks + chunk] = sum;
  }
  for (int j = threadIdx.x; j < p.Lk; j += kThreads) {
    // The pairs with (t - s) mod N = j: t - s = j and (where N < 2 L) j - N. A difference d = 16 D + delta0 (delta0
    // in 0..15) lies on C_D's diagonal delta0 (tau' < 16 - delta0) and on C_(D+1)'s diagonal delta0 - 16 (the rest).
    float sum = 0.f;
    for (int wrap = 0; wrap < 2; ++wrap) {
      const int d = j - wrap * p.N;
      if (d <= -p.L || d >= p.L) continue;
      for (int next = 0; next < 2; ++next) {
        const int i = (d >> 4) + next + KT - 1, delta = (d & 15) - 16 * next;  // C_D's index D + KT - 1
        if (delta < -15 || i < 0 || i >= 2 * KT - 1 || !((p.lag_mask >> i) & 1u)) continue;
        const float* cd = sums + i * kSumsPerLag;
        const int lo = delta < 0 ? -delta : 0, hi = delta > 0 ? 16 - delta : 16;
        for (int tp = lo; tp < hi; ++tp) sum += cd[(tp + delta) * kSumsRow + tp];
      }
    }
    if (p.chunks == 1)
      p.dk[gh * p.Lk + j] = sum;
    else
      p.part[(gh * p.chunks + chunk) * p.Lk + j] = sum;
  }
}

// dk (and dskip) from the CTAs' partial sums (Params::part), chunk by chunk in order.
__global__ void short_dk_reduce_kernel(const float* part, int64_t filters, int64_t chunks, int Lk, float* dk,
                                       float* dskip) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= filters * Lk) return;
  const int64_t gh = i / Lk;
  const int j = static_cast<int>(i % Lk);
  const float* src = part + gh * chunks * Lk + j;
  float sum = 0.f;
  for (int64_t c = 0; c < chunks; ++c) sum += src[c * Lk];
  dk[i] = sum;
  if (j == 0 && dskip != nullptr) {
    const float* sk = part + filters * chunks * Lk + gh * chunks;
    float s = 0.f;
    for (int64_t c = 0; c < chunks; ++c) s += sk[c];
    dskip[gh] = s;
  }
}

// ---- host side ----
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The tiling of d's rows (pointers and vec are the caller's).
Params make_params(const FftconvDims& d, bool backward) {
  const bool blh = d.layout == kBLH;
  Params p{};
  p.B = d.B, p.H = d.H, p.G = d.G, p.R = d.G == 1 ? d.B : d.R;
  p.L = static_cast<int>(d.L), p.Lk = static_cast<int>(d.Lk), p.N = static_cast<int>(d.N);
  p.tiles_per_run = static_cast<int>(ceil_div(min64(p.R, p.B), 16));
  p.tiles_per_group = ceil_div(ceil_div(p.B, p.R), p.G) * p.tiles_per_run;
  const int64_t filters = d.G * d.H;
  if (blh) {
    // A CTA per (group, kBlhHeads heads, chunk of batch tiles): about kTargetCtas of them, each staging its filters
    // once for all of its tiles.
    const int64_t ctas = d.G * ceil_div(d.H, kBlhHeads), want_chunks = ceil_div(kTargetCtas, ctas);
    p.tiles_per_cta = ceil_div(p.tiles_per_group, want_chunks);
  } else {
    int64_t rounds = 1;
    if (backward) {
      // About kTargetCtas CTAs: more row tiles per CTA (fewer partial sums) once there are enough.
      const int64_t want_chunks = ceil_div(kTargetCtas, filters);
      rounds = ceil_div(ceil_div(p.tiles_per_group, kWarps), want_chunks);
      if (rounds < 1) rounds = 1;
    }
    p.tiles_per_cta = kWarps * rounds;
  }
  p.chunks = ceil_div(p.tiles_per_group, p.tiles_per_cta);
  if (backward) {
    const int KT = padded_length(d.L) / 16;
    for (int i = 0; i < 2 * KT - 1; ++i) {
      const int D = i - (KT - 1);
      for (int delta = -15; delta <= 15; ++delta) {
        const int64_t t_minus_s = 16 * D + delta;
        if (t_minus_s <= -d.L || t_minus_s >= d.L) continue;
        if (((t_minus_s % d.N) + d.N) % d.N < d.Lk) p.lag_mask |= 1u << i;
      }
    }
  }
  return p;
}

template <typename F>
bool dispatch_lp(int64_t L, F&& f) {
  switch (padded_length(L)) {
    case 16: f(std::integral_constant<int, 16>{}); return true;
    case 32: f(std::integral_constant<int, 32>{}); return true;
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    case 256: f(std::integral_constant<int, 256>{}); return true;
    default: return false;
  }
}

// The operands both directions read, from the handler's arguments.
template <typename Args>
void set_inputs(Params& p, const Args& a) {
  p.u = static_cast<const uint16_t*>(a.u);
  p.pre = static_cast<const uint16_t*>(a.pre);
  p.post = static_cast<const uint16_t*>(a.post);
  p.k = a.k;
  p.skip = a.skip;
}

// One CTA per filter (BHL) or per kBlhHeads heads of a group (BLH), times the chunks.
template <typename Kern>
cudaError_t launch(Kern kern, const Params& p, size_t smem, cudaStream_t stream, bool blh = false) {
  cudaError_t err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const int64_t grid = p.chunks * p.G * (blh ? ceil_div(p.H, kBlhHeads) : p.H);
  JFF_SHORT_LAUNCH(kern, static_cast<unsigned>(grid), kThreads, smem, stream, p);
  return cudaGetLastError();
}

bool shape_ok(const FftconvDims& d) {
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return false;
  if (d.layout != kBHL && d.layout != kBLH) return false;
  if (d.N < 1 || d.N > kMaxN || (d.N & (d.N - 1)) != 0 || d.L > kMaxL) return false;
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  if (d.G < 1 || d.R < 1) return false;
  // 1-D grids below 2^31: one CTA per filter and chunk of at least kWarps row tiles (BHL), per group, kBlhHeads
  // heads and tile at most (BLH), and dk's reduction over its G * H * Lk sums, 256 a block.
  const int64_t R = d.G == 1 ? d.B : d.R, grid_max = (int64_t(1) << 31) - 1;
  const int64_t tiles = ceil_div(ceil_div(d.B, R), d.G) * ceil_div(min64(R, d.B), 16);
  return d.G * d.H * ceil_div(tiles, kWarps) < grid_max && d.G * ceil_div(d.H, kBlhHeads) * tiles < grid_max &&
         ceil_div(d.G * d.H * d.Lk, 256) < grid_max;
}

}  // namespace
}  // namespace shortconv

namespace shortconv {
namespace {
bool supported(const FftconvDims& d, int device_major, size_t max_smem_per_block, bool backward) {
  // JFF_SHORT_CONV=0: these sizes take the generic path instead (a measurement switch, for the A/B against the
  // kernels they replaced).
  static const bool off = [] {
    const char* v = std::getenv("JFF_SHORT_CONV");
    return v != nullptr && std::strcmp(v, "0") == 0;
  }();
  // L <= 256 where the convolution is linear (N >= L + Lk - 1; the cost here does not grow with N, the fused kernels'
  // does: causal N = 512, L = 256 measured 1.6x faster forward and 1.17x forward + backward through JAX on an H100,
  // session 39), L <= 128 elsewhere. A/B switches: JFF_SHORT_CONV_MAX_L=128 (L <= 128 everywhere, as before
  // session 40), =256 (every L <= 256).
  static const int mode = [] {
    const char* v = std::getenv("JFF_SHORT_CONV_MAX_L");
    if (v != nullptr && std::strcmp(v, "256") == 0) return 2;
    return v != nullptr && std::strcmp(v, "128") == 0 ? 0 : 1;
  }();
  const bool linear = d.N >= d.L + d.Lk - 1;
  const int64_t max_l = mode == 2 || (mode == 1 && linear) ? kMaxL : kDefaultMaxL;
  if (off || device_major < 8 || !shape_ok(d) || d.L > max_l) return false;
  if (backward && d.layout != kBHL) return false;
  size_t smem = 0;
  dispatch_lp(d.L, [&](auto lp) {
    smem = backward ? bwd_smem_bytes<lp()>() : (d.layout == kBLH ? blh_fwd_smem_bytes<lp()>() : fwd_smem_bytes<lp()>());
  });
  return smem <= max_smem_per_block;
}
}  // namespace
}  // namespace shortconv

bool short_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  return shortconv::supported(d, device_major, max_smem_per_block, false);
}
bool short_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  return shortconv::supported(d, device_major, max_smem_per_block, true);
}

size_t short_fwd_scratch_bytes(const FftconvDims&) { return 0; }

size_t short_bwd_scratch_bytes(const FftconvDims& d) {
  if (!shortconv::shape_ok(d)) return 0;
  const shortconv::Params p = shortconv::make_params(d, true);
  return p.chunks > 1 ? static_cast<size_t>(p.chunks * d.G * d.H * (d.Lk + 1)) * sizeof(float) : 0;
}

cudaError_t short_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void*, size_t) {
  using namespace shortconv;
  const FftconvDims& d = a.d;
  if (!shape_ok(d)) return cudaErrorInvalidValue;
  Params p = make_params(d, false);
  set_inputs(p, a);
  p.y = static_cast<uint16_t*>(a.y);
  // 16-byte vectors: along L in BHL rows, across 8 heads of a (b, t) row in BLH.
  p.vec = (d.layout == kBLH ? d.H % 8 == 0 : d.L % 8 == 0) && aligned16(a.u) && aligned16(a.y) &&
          (a.pre == nullptr || aligned16(a.pre)) && (a.post == nullptr || aligned16(a.post));
  const bool bf = d.dtype == DType::kBF16;
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_lp(d.L, [&](auto lp) {
    constexpr int LP = lp();
    if (d.layout == kBLH)
      err = bf ? launch(short_fwd_blh_kernel<__nv_bfloat16, LP>, p, blh_fwd_smem_bytes<LP>(), stream, true)
               : launch(short_fwd_blh_kernel<__half, LP>, p, blh_fwd_smem_bytes<LP>(), stream, true);
    else
      err = bf ? launch(short_fwd_kernel<__nv_bfloat16, LP>, p, fwd_smem_bytes<LP>(), stream)
               : launch(short_fwd_kernel<__half, LP>, p, fwd_smem_bytes<LP>(), stream);
  });
  return err;
}

cudaError_t short_bwd(const FftconvBwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes) {
  using namespace shortconv;
  const FftconvDims& d = a.d;
  if (!shape_ok(d) || d.layout != kBHL || a.dk == nullptr) return cudaErrorInvalidValue;
  // An output for an absent operand would be left unwritten: refuse rather than guess.
  if ((a.pre == nullptr) != (a.dpre == nullptr) || (a.post == nullptr) != (a.dpost == nullptr) ||
      (a.skip == nullptr) != (a.dskip == nullptr))
    return cudaErrorInvalidValue;
  Params p = make_params(d, true);
  if (scratch_bytes < short_bwd_scratch_bytes(d) || (p.chunks > 1 && scratch == nullptr)) return cudaErrorInvalidValue;
  set_inputs(p, a);
  p.dy = static_cast<const uint16_t*>(a.dy);
  p.du = static_cast<uint16_t*>(a.du);
  p.dpre = static_cast<uint16_t*>(a.dpre);
  p.dpost = static_cast<uint16_t*>(a.dpost);
  p.dk = a.dk;
  p.dskip = a.dskip;
  p.part = static_cast<float*>(scratch);
  p.vec = d.L % 8 == 0;
  for (const void* x : {a.u, a.pre, a.post, a.dy, static_cast<const void*>(a.du), static_cast<const void*>(a.dpre),
                        static_cast<const void*>(a.dpost)})
    p.vec = p.vec && (x == nullptr || aligned16(x));
  const bool bf = d.dtype == DType::kBF16;
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_lp(d.L, [&](auto lp) {
    constexpr int LP = lp();
    const size_t sm = bwd_smem_bytes<LP>();
    if (p.dskip != nullptr)
      err = bf ? launch(short_bwd_kernel<__nv_bfloat16, LP, true>, p, sm, stream)
               : launch(short_bwd_kernel<__half, LP, true>, p, sm, stream);
    else
      err = bf ? launch(short_bwd_kernel<__nv_bfloat16, LP, false>, p, sm, stream)
               : launch(short_bwd_kernel<__half, LP, false>, p, sm, stream);
  });
  if (err != cudaSuccess || p.chunks == 1) return err;
  const int64_t n = d.G * d.H * d.Lk;
  JFF_SHORT_LAUNCH(short_dk_reduce_kernel, static_cast<unsigned>(ceil_div(n, 256)), 256, 0, stream, p.part,
                   d.G * d.H, p.chunks, p.Lk, p.dk, p.dskip);
  return cudaGetLastError();
}

}  // namespace jff
