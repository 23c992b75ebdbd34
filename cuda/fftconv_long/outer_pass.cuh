// Outer passes of the long fftconv (N = N1 * N2 > 32K; the math and layout are in
// benchmarks/notes_long.md, the index maps in long_plan.h):
//
//   outer_forward: v = pre * u (BHL rows, implicit zero padding: only t < L is read) ->
//     N1-point DFTs over the strided axis n1 for a tile of contiguous columns n2 (coalesced
//     loads) -> twiddle w_N^(k1 n2) -> the workspace: per signal row, N1/2 packed complex rows
//     of N2 (row 0 = C[0] + i C[N1/2], both real), two planes each, in u's dtype.
//   outer_inverse: workspace rows (after the inner step) -> conjugate twiddle -> N1-point
//     complex-to-real inverse DFT -> y = post * (z + skip * v) for t < L, rounded once to u's
//     dtype. `skip` is normally folded into the inner step's spectrum (khat + skip, as the fused
//     kernels do: then pass skip = nullptr and the pass reads only the workspace and post); an
//     explicit skip makes this pass re-read u and pre instead.
//
// Two implementations:
//   * tensor cores (outer_tc.cuh): bf16/fp16, N1 in {16, 32, 256, 512}, mma.sync (sm_80+);
//   * CUDA cores (below): every N1 in 2..512, every dtype, fp32 arithmetic (the fp32 path,
//     whose accuracy target 1e-5 rules out 16-bit tensor-core operands; the default at N1 = 512,
//     where it is the faster one; and the fallback).
//
// Everything is checked before a launch (check_fwd / check_inv); launch errors are returned.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "common/env_switch.h"
#include "fftconv_long/long_plan.h"
#include "fftconv_long/outer_tc.cuh"
#include "fftconv_long/reg_dft.cuh"

namespace jff {
namespace longconv {

// Element type of u, the gates, y and the workspace (same values as jff::DType).
enum class Elem : int { kF16 = 0, kBF16 = 1, kF32 = 2 };
enum class OuterPath : int { kAuto = 0, kCudaCore = 1, kTensorCore = 2 };

inline size_t elem_bytes(Elem e) { return e == Elem::kF32 ? 4 : 2; }

struct OuterFwdArgs {
  Elem dtype;
  const void* u;    // BHL: signal row g at u + g * L (g = row0 + r)
  const void* pre;  // u's shape, or nullptr
  void* ws;         // nrows * N1 * N2 elements, 16-byte aligned (workspace_bytes)
  int64_t row0, nrows, L;
  int N1;
  int64_t N2;
  // fp32 input (dtype kF32), bf16 workspace: the filter spectrum's first pass for bf16 data (inner_kspec), whose
  // slices are rounded to bf16 anyway. Without pre, the tensor-core pass takes it wherever it takes bf16 (the input
  // is then rounded to bf16 on load, before the DFT); with pre, or on the CUDA-core path, the DFT runs in fp32.
  bool ws_bf16 = false;
};

struct OuterInvArgs {
  Elem dtype;
  const void* ws;    // the inner step's output, same layout
  const void* post;  // or nullptr
  const void* u;     // needed only with skip
  const void* pre;   // optional, read only with skip
  const float* skip; // (G, H) explicit skip term, or nullptr when folded into the inner spectrum
  void* y;
  int64_t row0, nrows, L;
  int64_t H, G, R;   // row g = b * H + h uses skip[((b / R) % G) * H + h]
  int N1;
  int64_t N2;
  // Optional second output of the same transform, y2 = post2 * (z + skip * v) (both or neither given):
  // the backward's du = pre * dv and dpre = u * dv from one pass over dv's workspace.
  const void* post2 = nullptr;
  void* y2 = nullptr;
  // fp32 output (dtype kF32), bf16 workspace, no gate, skip or second output: dk's inverse for 16-bit data, whose
  // workspace is rounded to bf16 (half the bytes written and read). The tensor-core pass takes it wherever it takes
  // bf16; the CUDA-core pass computes in fp32 from the bf16 values.
  bool ws_bf16 = false;
  // Optional with y2 and post, tensor-core pass only: dskip's partial sums, sum over t < L of
  // (dy * post_dy) * (post2 * post) in double (the backward's du / dpre pass has post = pre, post2 = u), one per
  // (row, column tile, warp): dskip_parts(N1, N2) per row, at skip_part[(row0 + r) * dskip_parts(N1, N2) + ...].
  // post_dy may be nullptr.
  const void* dy = nullptr;
  const void* post_dy = nullptr;
  double* skip_part = nullptr;
};

inline size_t workspace_bytes(Elem e, int64_t nrows, int N1, int64_t N2) {
  return static_cast<size_t>(nrows) * static_cast<size_t>(N1) * static_cast<size_t>(N2) * elem_bytes(e);
}

// The tensor-core kernels' tile width (columns per CTA) for N1, 0 when it has none. (Session 19 timed 32-column
// tiles and 8 warps per CTA at N1 >= 256: both slower, see notes_long.md.)
constexpr int tc_tile(int N1) { return N1 <= 32 ? 64 : 16; }
constexpr int kTcOuterWarps = 4;
// OuterInvArgs::skip_part's partial sums per row.
inline int64_t dskip_parts(int N1, int64_t N2) { return N2 / tc_tile(N1) * kTcOuterWarps; }
// The CUDA-core kernel's tile (columns per CTA, a power of two <= N2): 256 / M1 (M1 = ColShape's
// first factor), so that both column-FFT stages have 256 work items for the CTA's 256 threads and
// the two M x TW complex buffers take 64 KB; at least 16 columns (whole 32-byte sectors).
inline int cc_tile(int N1, int64_t N2) {
  const int M = N1 / 2, M1 = M > 16 ? M / 16 : 1;
  int tw = 256 / M1;
  if (tw < 16) tw = 16;
  if (tw > N2) tw = static_cast<int>(N2);
  return tw;
}

inline bool tc_available(Elem e, int N1, int64_t N2, int device_major) {
  return e != Elem::kF32 && tc_supported_n1(N1) && device_major >= 8 && N2 % tc_tile(N1) == 0;
}
// The same for a forward pass's arguments: fp32 input qualifies with a bf16 workspace and no pre-gate.
inline bool tc_available(const OuterFwdArgs& a, int device_major) {
  const bool f32_in = a.dtype == Elem::kF32 && a.ws_bf16 && a.pre == nullptr;
  return tc_available(f32_in ? Elem::kBF16 : a.dtype, a.N1, a.N2, device_major);
}
inline bool tc_available(const OuterInvArgs& a, int device_major) {
  return tc_available(a.dtype == Elem::kF32 && a.ws_bf16 ? Elem::kBF16 : a.dtype, a.N1, a.N2, device_major);
}

namespace detail {

inline const char* check_common(Elem e, int N1, int64_t N2, int64_t L, int64_t row0, int64_t nrows) {
  if (e != Elem::kF16 && e != Elem::kBF16 && e != Elem::kF32) return "dtype must be f16, bf16 or f32";
  if (!is_pow2(N1) || N1 < kMinN1 || N1 > kMaxN1) return "N1 must be a power of two in [2, 512]";
  if (!is_pow2(N2) || N2 < 16 || N2 > kMaxN2) return "N2 must be a power of two in [16, 32768]";
  if (static_cast<int64_t>(N1) * N2 > (int64_t{1} << 24)) return "N = N1 * N2 must be <= 2^24";
  if (L < 1 || L > static_cast<int64_t>(N1) * N2) return "L must be in [1, N]";
  if (row0 < 0 || nrows < 1 || nrows > (int64_t{1} << 40)) return "rows out of range";
  return nullptr;
}

inline bool aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

}  // namespace detail

// nullptr when the arguments are valid, else what is wrong.
inline const char* check_fwd(const OuterFwdArgs& a) {
  if (const char* m = detail::check_common(a.dtype, a.N1, a.N2, a.L, a.row0, a.nrows)) return m;
  if (a.u == nullptr || a.ws == nullptr) return "u and ws are required";
  const size_t es = elem_bytes(a.dtype);
  if (!detail::aligned(a.u, es) || (a.pre != nullptr && !detail::aligned(a.pre, es))) return "u/pre misaligned";
  if (!detail::aligned(a.ws, 16)) return "ws must be 16-byte aligned";
  if (a.ws_bf16 && a.dtype != Elem::kF32) return "a bf16 workspace needs fp32 input";
  return nullptr;
}

inline const char* check_inv(const OuterInvArgs& a) {
  if (const char* m = detail::check_common(a.dtype, a.N1, a.N2, a.L, a.row0, a.nrows)) return m;
  if (a.ws == nullptr || a.y == nullptr) return "ws and y are required";
  const size_t es = elem_bytes(a.dtype);
  if (!detail::aligned(a.ws, 16)) return "ws must be 16-byte aligned";
  if (!detail::aligned(a.y, es) || (a.post != nullptr && !detail::aligned(a.post, es))) return "y/post misaligned";
  if ((a.post2 == nullptr) != (a.y2 == nullptr)) return "post2 and y2 go together";
  if ((a.y2 != nullptr && !detail::aligned(a.y2, es)) || (a.post2 != nullptr && !detail::aligned(a.post2, es)))
    return "y2/post2 misaligned";
  if (a.skip != nullptr) {
    if (a.u == nullptr) return "an explicit skip needs u";
    if (!detail::aligned(a.u, es) || (a.pre != nullptr && !detail::aligned(a.pre, es))) return "u/pre misaligned";
    if (a.H < 1 || a.G < 1 || a.R < 1) return "H, G, R must be >= 1 with skip";
  }
  if (a.ws_bf16 && (a.dtype != Elem::kF32 || a.post != nullptr || a.skip != nullptr || a.y2 != nullptr))
    return "a bf16 workspace needs fp32 output and no post, skip or second output";
  if (a.skip_part != nullptr) {
    if (a.y2 == nullptr || a.post == nullptr || a.dy == nullptr || a.dtype == Elem::kF32)
      return "dskip's partials need y2, post, dy and 16-bit data";
    if (!detail::aligned(a.dy, es) || (a.post_dy != nullptr && !detail::aligned(a.post_dy, es)))
      return "dy/post_dy misaligned";
    if (!detail::aligned(a.skip_part, 8)) return "skip_part misaligned";
  }
  return nullptr;
}

namespace cc {

template <typename T>
struct Elt;
template <>
struct Elt<float> {
  static __device__ __forceinline__ float ld(const float* p) { return __ldg(p); }
  static __device__ __forceinline__ float st(float x) { return x; }
};
template <>
struct Elt<__half> {
  static __device__ __forceinline__ float ld(const __half* p) { return __half2float(__ldg(p)); }
  static __device__ __forceinline__ __half st(float x) { return __float2half_rn(x); }
};
template <>
struct Elt<__nv_bfloat16> {
  static __device__ __forceinline__ float ld(const __nv_bfloat16* p) { return __bfloat162float(__ldg(p)); }
  static __device__ __forceinline__ __nv_bfloat16 st(float x) { return __float2bfloat16_rn(x); }
};

struct FwdParams {
  const void* u;
  const void* pre;
  void* ws;
  int64_t row0, nrows, L, N2;
  int lgTW;
};

struct InvParams {
  const void* ws;
  const void* post;
  const void* u;
  const void* pre;
  const float* skip;
  void* y;
  const void* post2;
  void* y2;
  int64_t row0, nrows, L, N2, H, G, R;
  int lgTW;
};

__device__ __forceinline__ float2 c_mul(float2 a, float2 b) { return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }
__device__ __forceinline__ float2 c_mulconj(float2 a, float2 b) { return make_float2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y); }
using tc::wpow;  // w_D^e (outer_tc.cuh)

// A column's M = N1/2 complex points (the half-length transform of its N1 real values) as M1 x M2,
// M2 = min(M, 16) points per thread in registers first, then M1 <= 16 (four-step, m = m1 + M1 m2,
// k = k2 + M2 k1):
//   X[k2 + M2 k1] = sum_m1 w_M1^(m1 k1) w_M^(m1 k2) sum_m2 x[m1 + M1 m2] w_M2^(m2 k2).
// Every index is a compile-time constant or a shift: the radix-2 shared-memory version this
// replaces spent ~200 instructions per element on run-time divisions and 7-8 barriered stages.
template <int LGM>
struct ColShape {
  static constexpr int M = 1 << LGM, M2 = M < 16 ? M : 16, M1 = M / M2;
  static_assert(M1 <= 16, "N1 <= 512");
};

// The four-step's middle, shared by both directions: a stage-1 thread (row m1 of the M1 x M2 split,
// column c) stores its M2-point DFT times w_M^(+-m1 k2) (conjugate for the inverse) at row
// k2 M1 + m1 of ys (M x TW, k2-major); a stage-2 thread (k2, c) loads those M1 values and takes
// their M1-point DFT.
template <int M1, int M2>
__device__ __forceinline__ void put_twiddled(float2* ys, const float2 (&v)[M2], int m1, int c, int TW, const float2* wM,
                                             bool inverse) {
#pragma unroll
  for (int k2 = 0; k2 < M2; ++k2) {
    const float2 w = wM[m1 * k2];
    ys[(k2 * M1 + m1) * TW + c] = k2 == 0 ? v[0] : (inverse ? c_mulconj(v[k2], w) : c_mul(v[k2], w));
  }
}

template <int M1>
__device__ __forceinline__ void take_dft(const float2* ys, float2 (&v)[M1], int k2, int c, int TW, bool inverse) {
#pragma unroll
  for (int m1 = 0; m1 < M1; ++m1) v[m1] = ys[(k2 * M1 + m1) * TW + c];
  inner::dft_reg<M1>(v, inverse);
}

// Shared tables of both directions: the tile's outer twiddles (tc::TileTw, M + 64 + M*TW/64
// entries), wM[e] = w_M^e (e < M; the four-step twiddles, m1 k2 < M), wN1[k] = w_N1^k (k <= M).
// Returns the first free float2.
__device__ __forceinline__ float2* build_tables(float2* sm, int M, int TW, int64_t N, int64_t n2_0, int tid,
                                                int nth, tc::TileTw* tw, float2** wM, float2** wN1) {
  tw->build(sm, M, TW, N, n2_0, tid, nth);
  *wM = sm + M + 64 + (M * TW + 63) / 64;
  *wN1 = *wM + M;
  for (int i = tid; i < M; i += nth) (*wM)[i] = wpow(i, M);
  for (int i = tid; i <= M; i += nth) (*wN1)[i] = wpow(i, 2 * M);
  return *wN1 + M + 1;
}

inline size_t tables_bytes(int N1, int TW) {
  const size_t M = N1 / 2;
  return sizeof(float2) * (M + 64 + (M * TW + 63) / 64 + M + M + 1);
}

// W: the workspace's element type (T, or bf16 for fp32 input: OuterFwdArgs::ws_bf16).
template <typename T, int LGM, typename W = T>
__global__ void __launch_bounds__(256, 2) outer_fwd_cc_kernel(const FwdParams p) {
  using E = Elt<T>;
  using S = ColShape<LGM>;
  constexpr int M = S::M, M1 = S::M1, M2 = S::M2, N1 = 2 * M;
  JFF_DYN_SMEM(float2, sm);
  const int lgTW = p.lgTW, TW = 1 << lgTW, tid = threadIdx.x, nth = blockDim.x;
  const int64_t N2 = p.N2, n2_0 = static_cast<int64_t>(blockIdx.x) * TW;
  tc::TileTw tw;
  float2 *wM, *wN1;
  float2* ys = build_tables(sm, M, TW, N1 * N2, n2_0, tid, nth, &tw, &wM, &wN1);  // M x TW, stage 1 -> 2
  float2* zs = ys + M * TW;  // M x TW: the columns' spectra Z[k] (k-major)
  const float scale = rsqrtf(static_cast<float>(N1));
  const T* pre = static_cast<const T*>(p.pre);
  // In-row positions as int32: t = N2 n1 + n2 < N <= 2^24.
  const int n2 = static_cast<int>(N2), n2_2 = 2 * n2, col0 = static_cast<int>(n2_0), last = static_cast<int>(p.L) - 1;
  __syncthreads();
  for (int64_t r = blockIdx.y; r < p.nrows; r += gridDim.y) {
    const int64_t base = (p.row0 + r) * p.L;
    const T* ur = static_cast<const T*>(p.u) + base;
    const T* pr = pre != nullptr ? pre + base : nullptr;
    // Stage 1, thread (m1, c): x[m] = v[2m] + i v[2m+1] for m = m1 + M1 m2 (zero at t >= L), its
    // M2-point DFT, times w_M^(m1 k2). Offsets in a row fit int32 (N <= 2^24); every load is
    // issued (a position past L reads element L - 1 and is then zeroed), so there is no branch
    // around a load.
    for (int q = tid; q < M1 * TW; q += nth) {
      const int c = q & (TW - 1), m1 = q >> lgTW;
      float2 v[M2];
#pragma unroll
      for (int m2 = 0; m2 < M2; ++m2) {
        const int t0 = n2_2 * (m1 + M1 * m2) + col0 + c, t1 = t0 + n2;
        const int s0 = t0 < last ? t0 : last, s1 = t1 < last ? t1 : last;
        float a = E::ld(ur + s0), b = E::ld(ur + s1);
        if (pr != nullptr) {
          a *= E::ld(pr + s0);
          b *= E::ld(pr + s1);
        }
        v[m2] = make_float2(t0 <= last ? a : 0.f, t1 <= last ? b : 0.f);
      }
      inner::dft_reg<M2>(v, false);
      if constexpr (M1 == 1) {
#pragma unroll
        for (int k2 = 0; k2 < M2; ++k2) zs[k2 * TW + c] = v[k2];
      } else {
        put_twiddled<M1, M2>(ys, v, m1, c, TW, wM, false);
      }
    }
    __syncthreads();
    if constexpr (M1 > 1) {
      // Stage 2, thread (k2, c): the M1-point DFT over m1, Z[k2 + M2 k1].
      for (int q = tid; q < M2 * TW; q += nth) {
        const int c = q & (TW - 1), k2 = q >> lgTW;
        float2 v[M1];
        take_dft<M1>(ys, v, k2, c, TW, false);
#pragma unroll
        for (int k1 = 0; k1 < M1; ++k1) zs[(k2 + M2 * k1) * TW + c] = v[k1];
      }
      __syncthreads();
    }
    // Real spectrum k <= M (r2c_split), unitary scale, twiddle, packed row 0; coalesced stores.
    W* wsr = static_cast<W*>(p.ws) + ws_offset(r, 0, 0, n2_0, N1, N2);
    for (int q = tid; q < M * TW; q += nth) {
      const int c = q & (TW - 1), k = q >> lgTW;
      const float2 Z = zs[k * TW + c];
      float xr, xi;
      if (k == 0) {
        xr = scale * (Z.x + Z.y);  // C[0]   = sum of all
        xi = scale * (Z.x - Z.y);  // C[N1/2] = alternating sum
      } else {
        const float2 Zc = zs[(M - k) * TW + c];
        r2c_split(Z.x, Z.y, Zc.x, Zc.y, wN1[k].x, wN1[k].y, &xr, &xi);
        const float2 o = c_mul(make_float2(scale * xr, scale * xi), tw(k, c));
        xr = o.x;
        xi = o.y;
      }
      wsr[n2_2 * k + c] = Elt<W>::st(xr);
      wsr[n2_2 * k + n2 + c] = Elt<W>::st(xi);
    }
    // With M1 = 1 the next row's stage 1 writes zs, which this loop reads (with M1 > 1 the barriers
    // after its stages 1 and 2 order every reuse).
    if constexpr (M1 == 1) __syncthreads();
  }
}

// W: the workspace's element type (T, or bf16 for fp32 output: OuterInvArgs::ws_bf16).
template <typename T, int LGM, typename W = T>
__global__ void __launch_bounds__(256, 3) outer_inv_cc_kernel(const InvParams p) {
  using E = Elt<T>;
  using S = ColShape<LGM>;
  constexpr int M = S::M, M1 = S::M1, M2 = S::M2, N1 = 2 * M;
  JFF_DYN_SMEM(float2, sm);
  const int lgTW = p.lgTW, TW = 1 << lgTW, tid = threadIdx.x, nth = blockDim.x;
  const int64_t N2 = p.N2, n2_0 = static_cast<int64_t>(blockIdx.x) * TW;
  tc::TileTw tw;
  float2 *wM, *wN1;
  float2* xs = build_tables(sm, M, TW, N1 * N2, n2_0, tid, nth, &tw, &wM, &wN1);  // (M+1) x TW: X[k]
  float2* ys = xs + (M + 1) * TW;                                                 // M x TW, stage B -> C
  // Unitary inverse: x = N1^-1/2 sum E w^-kn; through the half-length trick that is
  // (2 / sqrt(N1)) times the unnormalised M-point inverse of c2r_merge's output.
  const float scale = 2.f * rsqrtf(static_cast<float>(N1));
  const T* post = static_cast<const T*>(p.post);
  const T* u = static_cast<const T*>(p.u);
  const T* pre = static_cast<const T*>(p.pre);
  T* y = static_cast<T*>(p.y);
  const T* post2 = static_cast<const T*>(p.post2);
  T* y2 = static_cast<T*>(p.y2);
  const int n2 = static_cast<int>(N2), n2_2 = 2 * n2, col0 = static_cast<int>(n2_0), last = static_cast<int>(p.L) - 1;
  __syncthreads();
  for (int64_t r = blockIdx.y; r < p.nrows; r += gridDim.y) {
    const int64_t grow = p.row0 + r, base = grow * p.L;
    float sk = 0.f;
    if (p.skip != nullptr) {
      const int64_t b = grow / p.H, h = grow - b * p.H;
      sk = p.skip[group_of(b, p.R, p.G) * p.H + h];
    }
    // The thread's outputs z[first + stride b] (b < NB, z[m] = v[2m] + i v[2m+1]) of column c:
    // y = post * (v + skip * pre * u) and y2 = post2 * (...) for t < L. The gates of 4 outputs at a
    // time are loaded before any store: a store to y may alias post as far as the compiler knows,
    // so a gate load after it would wait for the previous one (the pass ran at a third of the
    // forward's speed). In-row offsets as int32 (t < N <= 2^24).
    T* yr = y + base;
    auto emit_all = [&](const auto& v, int c, int first, int stride) {
      constexpr int NB = sizeof(v) / sizeof(v[0]), CH = NB < 4 ? NB : 4;
#pragma unroll
      for (int b0 = 0; b0 < NB; b0 += CH) {
        int tt[CH][2];
        float g[CH][2], g2[CH][2];
#pragma unroll
        for (int i = 0; i < CH; ++i) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int t = n2_2 * (first + stride * (b0 + i)) + col0 + c + h * n2, tc = t < last ? t : last;
            tt[i][h] = t;
            g[i][h] = post != nullptr ? E::ld(post + base + tc) : 1.f;
            g2[i][h] = y2 != nullptr ? E::ld(post2 + base + tc) : 0.f;
          }
        }
#pragma unroll
        for (int i = 0; i < CH; ++i) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int t = tt[i][h];
            if (t > last) continue;
            float val = h == 0 ? v[b0 + i].x : v[b0 + i].y;
            if (p.skip != nullptr) {  // explicit skip (tests; production folds it into K')
              float vin = E::ld(u + base + t);
              if (pre != nullptr) vin *= E::ld(pre + base + t);
              val += sk * vin;
            }
            if (y2 != nullptr) y2[base + t] = E::st(val * g2[i][h]);
            yr[t] = E::st(val * g[i][h]);
          }
        }
      }
    };
    // Stage A: the workspace rows, conjugate outer twiddle; E[0] and E[N1/2] from packed row 0.
    // Eight elements' loads in flight per thread before the first is used.
    const W* wsr = static_cast<const W*>(p.ws) + ws_offset(r, 0, 0, n2_0, N1, N2);
    constexpr int kA = 8;
    for (int q0 = tid; q0 < M * TW; q0 += kA * nth) {
      float qr[kA], qi[kA];
#pragma unroll
      for (int i = 0; i < kA; ++i) {
        const int q = q0 + i * nth < M * TW ? q0 + i * nth : q0;
        const int c = q & (TW - 1), k = q >> lgTW;
        qr[i] = Elt<W>::ld(wsr + n2_2 * k + c);
        qi[i] = Elt<W>::ld(wsr + n2_2 * k + n2 + c);
      }
#pragma unroll
      for (int i = 0; i < kA; ++i) {
        const int q = q0 + i * nth;
        if (q >= M * TW) continue;
        const int c = q & (TW - 1), k = q >> lgTW;
        if (k == 0) {
          xs[c] = make_float2(qr[i], 0.f);           // E[0]
          xs[M * TW + c] = make_float2(qi[i], 0.f);  // E[N1/2]
        } else {
          xs[k * TW + c] = c_mulconj(make_float2(qr[i], qi[i]), tw(k, c));
        }
      }
    }
    __syncthreads();
    // Stage B, thread (a1, c): Z[k] = c2r_merge(X[k], X[M-k]) for k = a1 + M1 a2, the M2-point
    // inverse DFT over a2, times w_M^-(a1 b2) (the inverse four-step: m = b2 + M2 b1).
    for (int q = tid; q < M1 * TW; q += nth) {
      const int c = q & (TW - 1), a1 = q >> lgTW;
      float2 v[M2];
#pragma unroll
      for (int a2 = 0; a2 < M2; ++a2) {
        const int k = a1 + M1 * a2;
        const float2 X = xs[k * TW + c], Xc = xs[(M - k) * TW + c];
        float zr, zi;
        c2r_merge(X.x, X.y, Xc.x, Xc.y, wN1[k].x, -wN1[k].y, &zr, &zi);
        v[a2] = make_float2(scale * zr, scale * zi);
      }
      inner::dft_reg<M2>(v, true);
      if constexpr (M1 == 1) {
        emit_all(v, c, 0, 1);
      } else {
        put_twiddled<M1, M2>(ys, v, a1, c, TW, wM, true);
      }
    }
    __syncthreads();
    if constexpr (M1 > 1) {
      // Stage C, thread (b2, c): the M1-point inverse DFT over a1, z[b2 + M2 b1], out.
      for (int q = tid; q < M2 * TW; q += nth) {
        const int c = q & (TW - 1), b2 = q >> lgTW;
        float2 v[M1];
        take_dft<M1>(ys, v, b2, c, TW, true);
        emit_all(v, c, b2, M2);
      }
      // The next row's stage A writes xs, last read before the barrier above; its stage B writes
      // ys after the barrier that follows its stage A.
    }
  }
}

inline size_t fwd_smem(int N1, int TW) { return tables_bytes(N1, TW) + sizeof(float2) * 2 * (N1 / 2) * TW; }
inline size_t inv_smem(int N1, int TW) {
  return tables_bytes(N1, TW) + sizeof(float2) * (static_cast<size_t>(N1 / 2 + 1) + N1 / 2) * TW;
}

}  // namespace cc

namespace detail {

// Rows (work items) a CTA of the tensor-core passes loops over, at most (grid_for). With two waves of
// CTAs each looping over all its rows (50-170 rows per CTA at 1M), the CTAs of neighbouring column tiles,
// whose strided 32-byte row pieces lie in the same DRAM pages, drift apart and fetch those pages at
// different times; short loops keep the CTAs that run together on the same rows (the hardware starts
// the next CTA rows in order as CTAs finish), but each CTA builds its tables and fills its TMA stages
// again. H100, session 43, bf16 gated forward through JAX (profile_kernels.py), ms per pass, two waves
// (no cap) -> at most 4 rows -> at most 16 (every pass capped alike, JFF_LONG_CTA_ROWS):
//   1M B=2 (N1 = 256):   inverse 6.90 -> 3.82 -> 6.41, forward 6.40 -> 5.83 -> 5.95 (with the pass over k)
//   2M B=1 (N1 = 512):   forward passes (u and pre, then k) 9.37 -> 8.52 -> 7.98, inverse 4.71 -> 4.57 -> 4.55
//   4M B=1 H=384 (512):  forward passes 8.93 -> 8.58 -> 7.98, inverse 4.63 -> 4.61 -> 4.56
//   256K B=4 (N1 = 32):  forward passes 2.26 -> 2.04 -> 2.14, inverse 1.86 -> 1.76 -> 1.72
//   64K B=16 (N1 = 16):  forward 1.78 -> 1.80 -> 1.86, inverse 1.86 -> 1.92 -> 1.72;
//     causal (L = N/2):  forward 1.22 -> 1.57 -> 1.29, inverse 1.30 -> 1.86 -> 1.21 (half rows: the
//                        per-CTA start costs weigh more)
//   inner step (launch_items): 64K 1.98 -> 1.80 -> 1.98 (causal 1.98 -> 1.80 -> 1.96), 256K 2.40 -> 2.01 ->
//     2.14, 1M 3.87 -> 3.82 -> 3.97, 2M 3.88 -> 3.81 -> 3.98, 4M 4.03 -> 4.00 -> 4.24
// whole forward (caps of 4): 1M 18.3 -> 14.6, 2M 20.3 -> 19.1 (16: 18.9), 4M 19.9 -> 19.5 (16: 19.1),
// 256K 6.83 -> 6.11, 64K 5.85 -> 5.74 (calls differ by ~5%: the first call of that session read 17.5 at 1M).
// So 4 at N1 = 256 and for the inner steps, 16 elsewhere. The backward's inner step (causal 64K: 4.69 ms
// without a cap, 4.77 with 4, 4.68 with 16) takes the inner steps' 4.
constexpr int64_t kItemCtaRows = 4;
constexpr int64_t outer_cta_rows(int N1) { return N1 == 256 ? 4 : 16; }

// JFF_LONG_CTA_ROWS=<n> replaces every pass's cap (A/B runs, benchmarks/device_profile_jax.sh ENV_AB).
inline int64_t forced_cta_rows() {
  static const int64_t rows = env_int("JFF_LONG_CTA_ROWS", 0);
  return rows;
}

// CTA rows of the grid: enough CTAs per column tile for about two full waves of the
// device, each CTA looping over the rest of the rows (its tables are built once), but over at
// most `cta_rows` rows where that is > 0 (then more CTA rows, which the hardware starts as others
// finish: outer_cta_rows says why).
template <typename K>
cudaError_t grid_for(K kernel, int threads, size_t smem, int64_t tiles, int64_t nrows, int64_t cta_rows, dim3* grid) {
  int64_t resident = 264;  // emulation: any small number
#ifndef JFF_LONG_EMU
  int dev = 0, nsm = 0, per_sm = 0;
  cudaError_t err;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem)) != cudaSuccess)
    return err;
  if (per_sm < 1) return cudaErrorInvalidConfiguration;
  resident = int64_t(nsm) * per_sm;
#else
  (void)kernel;
  (void)threads;
  (void)smem;
  resident = 4;
#endif
  int64_t gy = (2 * resident + tiles - 1) / tiles;
  if (forced_cta_rows() > 0) cta_rows = forced_cta_rows();
  if (cta_rows > 0) gy = std::max(gy, (nrows + cta_rows - 1) / cta_rows);
  if (gy > nrows) gy = nrows;
  if (gy > 65535) gy = 65535;
  if (gy < 1) gy = 1;
  *grid = dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(gy), 1);
  return cudaSuccess;
}

template <typename K>
cudaError_t set_smem(K kernel, size_t smem) {
#ifndef JFF_LONG_EMU
  if (smem > 48 * 1024)
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
#else
  (void)kernel;
  (void)smem;
#endif
  return cudaSuccess;
}

inline cudaError_t last_error() {
#ifndef JFF_LONG_EMU
  return cudaGetLastError();
#else
  return cudaSuccess;
#endif
}

inline int device_major() {
#ifndef JFF_LONG_EMU
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return 0;
  return major;
#else
  return 9;
#endif
}

// Every launch of the long path's passes: the shared-memory limit, a grid of `tiles` x grid_for's
// CTA rows (the kernel loops over the rest of `nrows`), the launch, its error.
template <typename K, typename... A>
cudaError_t launch_grid(K kern, int threads, size_t smem, int64_t tiles, int64_t nrows, int64_t cta_rows,
                        cudaStream_t stream, A... args) {
  cudaError_t err = set_smem(kern, smem);
  if (err != cudaSuccess) return err;
  dim3 grid;
  if ((err = grid_for(kern, threads, smem, tiles, nrows, cta_rows, &grid)) != cudaSuccess) return err;
  JFF_LAUNCH(kern, grid, dim3(threads), smem, stream, args...);
  return last_error();
}

template <typename T>
cudaError_t fwd_cc(const OuterFwdArgs& a, cudaStream_t stream) {
  cc::FwdParams p;
  p.u = a.u;
  p.pre = a.pre;
  p.ws = a.ws;
  p.row0 = a.row0;
  p.nrows = a.nrows;
  p.L = a.L;
  p.N2 = a.N2;
  const int TW = cc_tile(a.N1, a.N2);
  p.lgTW = ilog2(TW);
  return inner::dispatch_lg<0, 8>(ilog2(a.N1 / 2), [&](auto lgm) {  // N1 = 2 .. 512
    if constexpr (std::is_same_v<T, float>) {
      if (a.ws_bf16)
        return launch_grid(cc::outer_fwd_cc_kernel<T, lgm(), __nv_bfloat16>, 256, cc::fwd_smem(a.N1, TW), a.N2 / TW,
                           a.nrows, 0, stream, p);
    }
    return launch_grid(cc::outer_fwd_cc_kernel<T, lgm()>, 256, cc::fwd_smem(a.N1, TW), a.N2 / TW, a.nrows, 0, stream,
                       p);
  });
}

template <typename T>
cudaError_t inv_cc(const OuterInvArgs& a, cudaStream_t stream) {
  cc::InvParams p;
  p.ws = a.ws;
  p.post = a.post;
  p.u = a.u;
  p.pre = a.pre;
  p.skip = a.skip;
  p.y = a.y;
  p.post2 = a.post2;
  p.y2 = a.y2;
  p.row0 = a.row0;
  p.nrows = a.nrows;
  p.L = a.L;
  p.N2 = a.N2;
  p.H = a.H;
  p.G = a.G;
  p.R = a.R;
  const int TW = cc_tile(a.N1, a.N2);
  p.lgTW = ilog2(TW);
  return inner::dispatch_lg<0, 8>(ilog2(a.N1 / 2), [&](auto lgm) {  // N1 = 2 .. 512
    if constexpr (std::is_same_v<T, float>) {
      if (a.ws_bf16)
        return launch_grid(cc::outer_inv_cc_kernel<T, lgm(), __nv_bfloat16>, 256, cc::inv_smem(a.N1, TW), a.N2 / TW,
                           a.nrows, 0, stream, p);
    }
    return launch_grid(cc::outer_inv_cc_kernel<T, lgm()>, 256, cc::inv_smem(a.N1, TW), a.N2 / TW, a.nrows, 0, stream,
                       p);
  });
}

// Rows are 16-byte aligned (vector loads) when L % 8 == 0 and the base pointers are.
inline bool rows_vec(int64_t L, std::initializer_list<const void*> ptrs) {
  if (L % 8 != 0) return false;
  for (const void* q : ptrs)
    if (q != nullptr && !aligned(q, 16)) return false;
  return true;
}

// The outer passes' TMA views (outer_tc.cuh FwdMaps / InvMaps), boxes of (TW, box, 1): a signal tensor of rows of
// length L as (n2 < N2, n1 < L / N2, row < row0 + nrows), and the chunk's workspace as (n2, 2 k1 + plane, r).
template <typename Args>
cudaError_t signal_tile_map(TileMap* m, const void* base, int elem_bytes, const Args& a, int TW, int box,
                            int swizzle = 0) {
  const uint64_t dims[3] = {uint64_t(a.N2), uint64_t(a.L / a.N2), uint64_t(a.row0 + a.nrows)};
  const uint64_t strides[2] = {uint64_t(a.N2) * elem_bytes, uint64_t(a.L) * elem_bytes};
  const uint32_t b[3] = {uint32_t(TW), uint32_t(box), 1u};
  return make_tile_map(m, base, elem_bytes, dims, strides, b, swizzle);
}
// The register epilogue's view of a gate (outer_tc.cuh, inv_reg_epi): n1 = Q pp + q as (n2 < N2, pp < L / (Q N2),
// q' = (L / N2) row + q) with strides Q N2 and N2 elements (not increasing: outer_selftest checks that the driver
// takes it), so that the box (TW, P, Q) at (n2_0, 0, (L / N2) row) is a row's tile as [q][pp][TW], 32-byte swizzled
// (TW = 16: rows of 32 bytes). Needs L % (Q N2) == 0.
template <typename Args>
cudaError_t signal_qp_map(TileMap* m, const void* base, const Args& a, int TW, int P, int Q) {
  const uint64_t dims[3] = {uint64_t(a.N2), uint64_t(a.L / (Q * a.N2)), uint64_t((a.row0 + a.nrows) * (a.L / a.N2))};
  const uint64_t strides[2] = {uint64_t(Q) * uint64_t(a.N2) * 2, uint64_t(a.N2) * 2};
  const uint32_t b[3] = {uint32_t(TW), uint32_t(P), uint32_t(Q)};
  return make_tile_map(m, base, 2, dims, strides, b, /*swizzle=*/32);
}
template <typename Args>
cudaError_t ws_tile_map(TileMap* m, const void* ws, const Args& a, int TW, int box) {
  const uint64_t dims[3] = {uint64_t(a.N2), uint64_t(a.N1), uint64_t(a.nrows)};
  const uint64_t strides[2] = {uint64_t(a.N2) * 2, uint64_t(a.N1) * uint64_t(a.N2) * 2};
  const uint32_t b[3] = {uint32_t(TW), uint32_t(box), 1u};
  return make_tile_map(m, ws, 2, dims, strides, b);
}

// F32IN: fp32 input (a.ws_bf16, no pre), T = bf16.
template <typename T, int P, int Q, bool F32IN = false>
cudaError_t fwd_tc(const OuterFwdArgs& a, cudaStream_t stream) {
  constexpr int TW = tc_tile(P * Q), WARPS = kTcOuterWarps;
  constexpr int64_t kCtaRows = outer_cta_rows(P * Q);
  using S = tc::Shape<P, Q, TW, WARPS>;
  tc::FwdParams p;
  p.u = F32IN ? nullptr : static_cast<const uint16_t*>(a.u);
  p.uf = F32IN ? static_cast<const float*>(a.u) : nullptr;
  p.pre = static_cast<const uint16_t*>(a.pre);
  p.ws = static_cast<uint16_t*>(a.ws);
  p.row0 = a.row0;
  p.nrows = a.nrows;
  p.N2 = a.N2;
  p.L = static_cast<int>(a.L);
  p.vec = rows_vec(a.L, {a.u, a.pre});
  tc::FwdMaps maps{};
  if constexpr (S::kFwdTma > 0) {
    // The 3-D view (n2, n1, row) of fwd_tma needs whole n1 rows of valid data (L % N2 == 0: L = N and the causal
    // L = N/2) and 16-byte row strides (p.vec); elsewhere, and before sm_90, the plain loads run.
    if (p.vec && a.L % a.N2 == 0 && device_major() >= 9 && tma_encode_available()) {
      constexpr int es = F32IN ? 4 : 2;  // fp32 k (the filter spectrum's pass) or 16-bit u and pre
      cudaError_t err = signal_tile_map(&maps.u, a.u, es, a, TW, S::kTmaBox);
      if (err == cudaSuccess && a.pre != nullptr) err = signal_tile_map(&maps.pre, a.pre, es, a, TW, S::kTmaBox);
      if (err == cudaSuccess && S::kFwdTmaStore)
        err = aligned(a.ws, 16) ? ws_tile_map(&maps.ws, a.ws, a, TW, S::kTmaBox) : cudaErrorInvalidValue;
      if (err != cudaSuccess) return err;
      maps.on = 1;
    }
  }
  auto kern = tc::outer_fwd_tc_kernel<T, P, Q, TW, WARPS, F32IN>;
  return launch_grid(kern, WARPS * 32, S::kFwdSmem, a.N2 / TW, a.nrows, kCtaRows, stream, p, maps);
}

// F32OUT: fp32 output from a bf16 workspace (a.ws_bf16), T = bf16.
template <typename T, int P, int Q, bool F32OUT = false>
cudaError_t inv_tc(const OuterInvArgs& a, cudaStream_t stream) {
  constexpr int TW = tc_tile(P * Q), WARPS = kTcOuterWarps;
  constexpr int64_t kCtaRows = outer_cta_rows(P * Q);
  using S = tc::Shape<P, Q, TW, WARPS>;
  tc::InvParams p;
  p.ws = static_cast<const uint16_t*>(a.ws);
  p.post = static_cast<const uint16_t*>(a.post);
  p.u = static_cast<const uint16_t*>(a.u);
  p.pre = static_cast<const uint16_t*>(a.pre);
  p.skip = a.skip;
  p.y = F32OUT ? nullptr : static_cast<uint16_t*>(a.y);
  p.yf = F32OUT ? static_cast<float*>(a.y) : nullptr;
  p.post2 = static_cast<const uint16_t*>(a.post2);
  p.y2 = static_cast<uint16_t*>(a.y2);
  p.row0 = a.row0;
  p.nrows = a.nrows;
  p.N2 = a.N2;
  p.H = a.H;
  p.G = a.G;
  p.R = a.R;
  p.L = static_cast<int>(a.L);
  const tc::SkipParts sk{static_cast<const uint16_t*>(a.dy), static_cast<const uint16_t*>(a.post_dy), a.skip_part};
  p.vec = rows_vec(a.L, {a.y, a.post, a.y2, a.post2, a.skip != nullptr ? a.u : nullptr,
                         a.skip != nullptr ? a.pre : nullptr, a.dy, a.post_dy});
  tc::InvMaps maps{};
  // TMA maps (inv_tma / inv2_tma): the workspace's view (n2, 2 k1 + plane, r) always qualifies; post's and post2's
  // (as fwd_tc's u) need whole n1 rows of valid data and 16-byte rows. Elsewhere, and before sm_90, the plain loads.
  auto make_maps = [&](bool two) {
    const bool post_ok = (a.post == nullptr && !two) || (p.vec && a.L % a.N2 == 0);
    if (!post_ok || !aligned(a.ws, 16) || device_major() < 9 || !tma_encode_available()) return cudaSuccess;
    cudaError_t err = ws_tile_map(&maps.ws, a.ws, a, TW, S::kTmaBox);
    if (err == cudaSuccess && a.post != nullptr) err = signal_tile_map(&maps.post, a.post, 2, a, TW, S::kTmaBox);
    if (err == cudaSuccess && two) err = signal_tile_map(&maps.post2, a.post2, 2, a, TW, S::kTmaBox);
    // inv_tma_store: the 16-bit outputs' views (as post's: whole n1 rows, 16-byte rows).
    if (err == cudaSuccess && tc::inv_tma_store(P * Q, two) && !F32OUT && p.vec && a.L % a.N2 == 0) {
      err = signal_tile_map(&maps.y, a.y, 2, a, TW, S::kTmaBox);
      if (err == cudaSuccess && two) err = signal_tile_map(&maps.y2, a.y2, 2, a, TW, S::kTmaBox);
      if (err == cudaSuccess) maps.on_store = 1;
    }
    if (err == cudaSuccess) maps.on = 1;
    return err;
  };
  // The register epilogue (inv_reg_epi; one output or two, with dskip's partials too; not with an explicit skip)
  // where its TMA views apply: whole rows of valid data (two levels: pp rows, L % (Q N2) == 0; one level: n1 rows,
  // L % N2 == 0; so the causal L = N / 2 too), 16-byte rows, int coordinates. Where the driver refuses a swizzled view
  // the instances below run (outer_selftest reports whether it takes them).
  if constexpr (!F32OUT) {
    const int64_t whole = S::kTwo ? int64_t{Q} * a.N2 : a.N2;
    const bool reg = tc::inv_reg_epi(P * Q, a.y2 != nullptr) && a.skip == nullptr && p.vec && a.L % whole == 0 &&
                     aligned(a.ws, 16) && device_major() >= 9 && tma_encode_available() &&
                     (a.row0 + a.nrows) * (a.L / a.N2) < (int64_t{1} << 31);
    auto gate_map = [&](TileMap* m, const void* gate) {
      return S::kTwo ? signal_qp_map(m, gate, a, TW, P, Q)
                     : signal_tile_map(m, gate, 2, a, TW, S::kTmaBox, S::kRegSwizzle);
    };
    const bool parts = a.skip_part != nullptr;  // (with y2 and post: check_inv)
    if (reg && ws_tile_map(&maps.ws, a.ws, a, TW, S::kTmaBox) == cudaSuccess &&
        (a.post == nullptr || gate_map(&maps.post, a.post) == cudaSuccess) &&
        (a.y2 == nullptr || gate_map(&maps.post2, a.post2) == cudaSuccess) &&
        (!parts || gate_map(&maps.dy, a.dy) == cudaSuccess) &&
        (!parts || a.post_dy == nullptr || gate_map(&maps.post_dy, a.post_dy) == cudaSuccess)) {
      maps.on = 1;
      if (parts)
        return launch_grid(tc::outer_inv_tc_kernel<T, P, Q, TW, WARPS, true, false, true, true>, WARPS * 32,
                           S::reg_smem(4) + S::kInvTwBytes, a.N2 / TW, a.nrows, kCtaRows, stream, p, sk, maps);
      if (a.y2 != nullptr)  // (JFF_LONG_REG2_MIN_SMEM: at least that much shared memory, fewer CTAs per SM; A/B)
        return launch_grid(tc::outer_inv_tc_kernel<T, P, Q, TW, WARPS, true, false, false, true>, WARPS * 32,
                           std::max<size_t>(S::reg_smem(2) + S::kInvTwBytes, JFF_LONG_REG2_MIN_SMEM), a.N2 / TW,
                           a.nrows, kCtaRows, stream, p, sk, maps);
      return launch_grid(tc::outer_inv_tc_kernel<T, P, Q, TW, WARPS, false, false, false, true>, WARPS * 32,
                         S::reg_smem(1) + S::kInvTwBytes, a.N2 / TW, a.nrows, kCtaRows, stream, p, sk, maps);
    }
    maps = tc::InvMaps{};
  }
  if (a.y2 != nullptr && S::kInv2Tma > 0) {
    const cudaError_t err = make_maps(true);
    if (err != cudaSuccess) return err;
  }
  if (a.skip_part != nullptr)
    return launch_grid(tc::outer_inv_tc_kernel<T, P, Q, TW, WARPS, true, false, true>, WARPS * 32,
                       S::kInvSmem + S::kInv2StageBytes + S::kInvTwBytes + S::kSkipBytes, a.N2 / TW, a.nrows, kCtaRows,
                       stream, p, sk, maps);
  if (a.y2 != nullptr)
    return launch_grid(tc::outer_inv_tc_kernel<T, P, Q, TW, WARPS, true>, WARPS * 32,
                       S::kInvSmem + S::kInv2StageBytes + S::kInvTwBytes, a.N2 / TW, a.nrows, kCtaRows, stream, p, sk,
                       maps);
  if (S::kInvTma > 0) {
    const cudaError_t err = make_maps(false);
    if (err != cudaSuccess) return err;
  }
  return launch_grid(tc::outer_inv_tc_kernel<T, P, Q, TW, WARPS, false, F32OUT>, WARPS * 32,
                     S::kInvSmem + S::kInvStageBytes + S::kInvTwBytes, a.N2 / TW, a.nrows, kCtaRows, stream, p, sk,
                     maps);
}

// f(P-const, Q-const) for the tensor-core outer sizes.
template <typename F>
bool dispatch_tc(int N1, F&& f) {
  switch (N1) {
    case 16: f(std::integral_constant<int, 16>{}, std::integral_constant<int, 1>{}); return true;
    case 32: f(std::integral_constant<int, 32>{}, std::integral_constant<int, 1>{}); return true;
    case 256: f(std::integral_constant<int, 16>{}, std::integral_constant<int, 16>{}); return true;
    case 512: f(std::integral_constant<int, 16>{}, std::integral_constant<int, 32>{}); return true;
    default: return false;
  }
}

template <typename Args>
inline bool use_tc(const Args& a, OuterPath path, cudaError_t* err) {
  *err = cudaSuccess;
  if (path == OuterPath::kCudaCore) return false;
  const bool ok = tc_available(a, device_major());
  if (path == OuterPath::kTensorCore && !ok) *err = cudaErrorInvalidValue;
  // Automatic choice: the tensor-core passes wherever they run. Until session 19 the CUDA-core passes won at
  // N1 = 512 (H200 bf16, outer_selftest --bench, 4M H=192: forward 2.99 vs 3.73 ms, inverse 4.24 vs 4.91);
  // with the tensor-core passes' twiddles off shared-memory tables the same bench reads 2.52 vs 3.02 and
  // 3.05 vs 4.29.
  return ok;
}

}  // namespace detail

namespace detail {
// The path choice and dtype dispatch shared by both directions (kFwd: the forward pass).
template <bool kFwd, typename Args>
inline cudaError_t run_outer(const Args& a, cudaStream_t stream, OuterPath path) {
  const char* bad;
  if constexpr (kFwd) {
    bad = check_fwd(a);
  } else {
    bad = check_inv(a);
  }
  if (bad != nullptr) return cudaErrorInvalidValue;
  cudaError_t err;
  const bool tcp = use_tc(a, path, &err);
  if (err != cudaSuccess) return err;
  if constexpr (!kFwd) {
    if (a.skip_part != nullptr && !tcp) return cudaErrorInvalidValue;  // dskip's partials: the tensor-core pass only
  }
  if (tcp) {
    err = cudaErrorInvalidValue;
    dispatch_tc(a.N1, [&](auto P, auto Q) {
      auto launch = [&](auto elem) {
        using T = decltype(elem);
        if constexpr (kFwd) {
          // fp32 input here has a bf16 workspace (tc_available): the bf16 kernel, loading fp32.
          if constexpr (std::is_same_v<T, __nv_bfloat16>) {
            if (a.dtype == Elem::kF32) return fwd_tc<T, P(), Q(), true>(a, stream);
          }
          return fwd_tc<T, P(), Q()>(a, stream);
        } else {
          // fp32 output here has a bf16 workspace (tc_available): the bf16 kernel, storing fp32.
          if constexpr (std::is_same_v<T, __nv_bfloat16>) {
            if (a.dtype == Elem::kF32) return inv_tc<T, P(), Q(), true>(a, stream);
          }
          return inv_tc<T, P(), Q()>(a, stream);
        }
      };
      err = a.dtype == Elem::kF16 ? launch(__half{}) : launch(__nv_bfloat16{});
    });
    return err;
  }
  auto launch = [&](auto elem) {
    using T = decltype(elem);
    if constexpr (kFwd) {
      return fwd_cc<T>(a, stream);
    } else {
      return inv_cc<T>(a, stream);
    }
  };
  switch (a.dtype) {
    case Elem::kF32: return launch(float{});
    case Elem::kF16: return launch(__half{});
    case Elem::kBF16: return launch(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}
}  // namespace detail

// Enqueue the outer forward / inverse on `stream`. cudaErrorInvalidValue for invalid arguments
// (see check_fwd / check_inv) or a forced path that cannot take them; otherwise the first
// launch error.
inline cudaError_t outer_forward(const OuterFwdArgs& a, cudaStream_t stream, OuterPath path = OuterPath::kAuto) {
  return detail::run_outer<true>(a, stream, path);
}

inline cudaError_t outer_inverse(const OuterInvArgs& a, cudaStream_t stream, OuterPath path = OuterPath::kAuto) {
  return detail::run_outer<false>(a, stream, path);
}

}  // namespace longconv
}  // namespace jff
