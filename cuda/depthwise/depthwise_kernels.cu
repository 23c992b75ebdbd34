// CUDA kernels of the depthwise conv (contract: cuda/README.md; overview: depthwise_kernels.h).
//
// Notation used throughout. A forward pass is
//     out[t] = bias + sum_{j<K} w[j] * in[t + j - lo],   in[] = 0 outside [0, Li), t in [0, Lo).
// The input gradient is the same operation on dy with the taps reversed and offset K-1-lo
// (dx[s] = sum_j w[j] * dy[s - j + lo]), so one "correlation" machinery serves both.
// dw[j] = sum_{b,t} dy[t] * x[t + j - lo] and dbias = sum_{b,t} dy[t], accumulated in float32.
#include "depthwise/depthwise_kernels.h"

#include "common/pdl.cuh"
#include "common/store16.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>

namespace jff {
namespace {

constexpr int32_t kLayoutBHL = 0, kLayoutBLH = 1;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr unsigned kFull = 0xffffffffu;

// Work is cut so that roughly this many warps exist (a few waves on an H100/H200). It is a
// constant rather than a function of the device so that dw's summation order, and therefore
// its bits, depend on the shapes only.
constexpr int64_t kTargetWarps = 4096;
// BLH cuts its rows into stretches for about one wave (132 SMs x 2 blocks x 8 warps = 2112 on an H200):
// against 4096, forward 2-7% and backward 5-12% faster at B16 L 1K/2K D 768/1024, K 3/5/7 (dw_selftest
// --tune-split, logs/nvidia-h200-depthwise-tune-split-session13.log); fewer, longer stretches also re-read
// fewer halo rows.
constexpr int64_t kBlhTargetWarps = 2048;

__host__ __device__ constexpr int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// a / b for a >= 0, b > 0, in 32-bit arithmetic when both fit: 64-bit division is a long
// software sequence, and it runs once per warp in kernels whose warps live a few microseconds.
__device__ __forceinline__ int64_t Div(int64_t a, int64_t b) {
  if (((a | b) >> 32) == 0) return int64_t(unsigned(a) / unsigned(b));
  return a / b;
}
__device__ __forceinline__ int64_t Min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t Max64(int64_t a, int64_t b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------
// Element conversions. 16-bit types travel as 32-bit words holding two elements, the lower
// half being the element at the lower address.
// ---------------------------------------------------------------------------------------

template <typename T>
struct Cvt;

template <>
struct Cvt<float> {
  static constexpr int kPerWord = 1;
  using Bits = unsigned;
  __device__ static float ToF(float v) { return v; }
  __device__ static float FromF(float v) { return v; }
  __device__ static void Unpack(unsigned w, float* o) { o[0] = __uint_as_float(w); }
  __device__ static unsigned Pack(const float* i) { return __float_as_uint(i[0]); }
};

template <>
struct Cvt<__half> {
  static constexpr int kPerWord = 2;
  using Bits = unsigned short;
  __device__ static float ToF(__half v) { return __half2float(v); }
  __device__ static __half FromF(float v) { return __float2half_rn(v); }
  __device__ static void Unpack(unsigned w, float* o) {
    __half2 h;
    memcpy(&h, &w, 4);
    const float2 f = __half22float2(h);
    o[0] = f.x;
    o[1] = f.y;
  }
  __device__ static unsigned Pack(const float* i) {
    const __half2 h = __floats2half2_rn(i[0], i[1]);
    unsigned w;
    memcpy(&w, &h, 4);
    return w;
  }
};

template <>
struct Cvt<__nv_bfloat16> {
  static constexpr int kPerWord = 2;
  using Bits = unsigned short;
  __device__ static float ToF(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 FromF(float v) { return __float2bfloat16_rn(v); }
  __device__ static void Unpack(unsigned w, float* o) {
    __nv_bfloat162 h;
    memcpy(&h, &w, 4);
    const float2 f = __bfloat1622float2(h);
    o[0] = f.x;
    o[1] = f.y;
  }
  __device__ static unsigned Pack(const float* i) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(i[0], i[1]);
    unsigned w;
    memcpy(&w, &h, 4);
    return w;
  }
};

template <typename T>
__device__ __forceinline__ float LoadOne(const T* p) {
  return Cvt<T>::ToF(*p);
}

// N consecutive elements at p (aligned to min(16, N * sizeof(T)) bytes), widened to float.
template <typename T, int N>
__device__ __forceinline__ void LoadF(const T* p, float* out) {
  constexpr int kBytes = N * int(sizeof(T));
  if constexpr (kBytes == 2) {
    out[0] = Cvt<T>::ToF(p[0]);
  } else if constexpr (kBytes == 4) {
    Cvt<T>::Unpack(__ldg(reinterpret_cast<const unsigned*>(p)), out);
  } else if constexpr (kBytes == 8) {
    const uint2 r = __ldg(reinterpret_cast<const uint2*>(p));
    constexpr int k = Cvt<T>::kPerWord;
    Cvt<T>::Unpack(r.x, out);
    Cvt<T>::Unpack(r.y, out + k);
  } else {
    static_assert(kBytes % 16 == 0, "vector of 2, 4, 8 or a multiple of 16 bytes");
    constexpr int k = Cvt<T>::kPerWord;
#pragma unroll
    for (int c = 0; c < kBytes / 16; ++c) {
      const uint4 r = __ldg(reinterpret_cast<const uint4*>(p) + c);
      Cvt<T>::Unpack(r.x, out + c * 4 * k);
      Cvt<T>::Unpack(r.y, out + c * 4 * k + k);
      Cvt<T>::Unpack(r.z, out + c * 4 * k + 2 * k);
      Cvt<T>::Unpack(r.w, out + c * 4 * k + 3 * k);
    }
  }
}

// kWhole16: 16-byte pieces through StoreGlobal16 (kept one store instruction; see there). Used where it
// measured no register cost (the BHL forward); in the register-capped backward it raised spills.
template <typename T, int N, bool kWhole16 = false>
__device__ __forceinline__ void StoreF(T* p, const float* in) {
  constexpr int kBytes = N * int(sizeof(T));
  if constexpr (kBytes == 2) {
    p[0] = Cvt<T>::FromF(in[0]);
  } else if constexpr (kBytes == 4) {
    *reinterpret_cast<unsigned*>(p) = Cvt<T>::Pack(in);
  } else if constexpr (kBytes == 8) {
    constexpr int k = Cvt<T>::kPerWord;
    *reinterpret_cast<uint2*>(p) = make_uint2(Cvt<T>::Pack(in), Cvt<T>::Pack(in + k));
  } else {
    static_assert(kBytes % 16 == 0, "vector of 2, 4, 8 or a multiple of 16 bytes");
    constexpr int k = Cvt<T>::kPerWord;
#pragma unroll
    for (int c = 0; c < kBytes / 16; ++c) {
      const float* q = in + c * 4 * k;
      if constexpr (kWhole16) {
        StoreGlobal16(reinterpret_cast<uint4*>(p) + c, Cvt<T>::Pack(q), Cvt<T>::Pack(q + k),
                      Cvt<T>::Pack(q + 2 * k), Cvt<T>::Pack(q + 3 * k));
      } else {
        reinterpret_cast<uint4*>(p)[c] =
            make_uint4(Cvt<T>::Pack(q), Cvt<T>::Pack(q + k), Cvt<T>::Pack(q + 2 * k),
                       Cvt<T>::Pack(q + 3 * k));
      }
    }
  }
}

// Rows as they come from memory: N elements of T packed in one register-sized word (up to
// 16 bytes). Prefetched rows wait in this form, which costs N*sizeof(T)/4 registers instead
// of N floats, and are widened when they are used.
template <int kBytes>
struct RawOf;
template <>
struct RawOf<2> {
  using type = unsigned short;
};
template <>
struct RawOf<4> {
  using type = unsigned;
};
template <>
struct RawOf<8> {
  using type = uint2;
};
template <>
struct RawOf<16> {
  using type = uint4;
};
template <typename T, int N>
using Raw = typename RawOf<N * int(sizeof(T))>::type;

template <typename T, int N>
__device__ __forceinline__ Raw<T, N> LoadRaw(const T* p) {
  return __ldg(reinterpret_cast<const Raw<T, N>*>(p));
}

template <typename T, int N>
__device__ __forceinline__ void RawToF(const Raw<T, N>& r, float* out) {
  constexpr int kBytes = N * int(sizeof(T));
  constexpr int k = Cvt<T>::kPerWord;
  if constexpr (kBytes == 2) {
    T t;
    memcpy(&t, &r, 2);
    out[0] = Cvt<T>::ToF(t);
  } else if constexpr (kBytes == 4) {
    Cvt<T>::Unpack(r, out);
  } else if constexpr (kBytes == 8) {
    Cvt<T>::Unpack(r.x, out);
    Cvt<T>::Unpack(r.y, out + k);
  } else {
    Cvt<T>::Unpack(r.x, out);
    Cvt<T>::Unpack(r.y, out + k);
    Cvt<T>::Unpack(r.z, out + 2 * k);
    Cvt<T>::Unpack(r.w, out + 3 * k);
  }
}

// ---------------------------------------------------------------------------------------
// BLH fast path: x is (B, L, D). A thread owns V consecutive channels of one batch element
// and streams down a stretch of rows, R rows per step, keeping the last K-1 input rows in
// registers so every element is loaded once (plus a K-1 row halo per stretch). A warp's
// lanes cover 32*V consecutive channels, so each row is one contiguous 32*V*sizeof(T) load.
// The rows of step n+1 are requested before step n is computed: a thread alone then keeps
// R (forward) or 2R (backward) loads in flight all the time, which is what a kernel with
// this little arithmetic per byte needs to approach the copy bandwidth.
// ---------------------------------------------------------------------------------------

struct BlhArgs {
  int64_t B, L, D, L_out, lo;
  int64_t S, SL;  // stretches per batch element, rows per stretch (a multiple of R)
  int64_t T;      // rows iterated: L_out (forward), max(L_out, L + lo) (backward)
};

template <typename T, typename WT, int K, int V, int R>
__global__ void __launch_bounds__(kThreads, 2)
    BlhFwdFast(const T* __restrict__ x, const WT* __restrict__ w, const WT* __restrict__ bias,
               T* __restrict__ y, BlhArgs p) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  using RawT = Raw<T, V>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = (int64_t(blockIdx.y) * 32 + lane) * V;
  const int64_t g = int64_t(blockIdx.x) * kWarps + warp;
  if (c >= p.D || g >= p.B * p.S) return;
  const int64_t b = Div(g, p.S);
  // Rows in 32 bits (below kMaxFastRow on this path); addresses as 64-bit products.
  const int D = int(p.D), L = int(p.L), lo = int(p.lo);
  const int t0 = int((g - b * p.S) * p.SL);
  const int t1 = int(Min64(p.T, t0 + p.SL));
  const T* xb = x + b * p.L * p.D + c;
  T* yb = y + b * p.L_out * p.D + c;

  // Input rows (tc - lo + K - 1 + i) of the step starting at output row tc; zero outside x
  // and past the stretch.
  RawT next[R];
  auto fetch = [&](int tc) {
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int row = tc - lo + K - 1 + i;
      next[i] = (tc + i < t1 && row >= 0 && row < L) ? LoadRaw<T, V>(xb + int64_t(row) * D) : RawT{};
    }
  };
  fetch(t0);

  float wf[K][V], bv[V];
#pragma unroll
  for (int j = 0; j < K; ++j) LoadF<WT, V>(w + j * p.D + c, wf[j]);
  if (bias != nullptr) {
    LoadF<WT, V>(bias + c, bv);
  } else {
#pragma unroll
    for (int e = 0; e < V; ++e) bv[e] = 0.f;
  }
  // win[m] holds input row (tc - lo + m) for the step starting at output row tc.
  float win[K - 1 + R][V];
#pragma unroll
  for (int m = 0; m < K - 1; ++m) {
    const int row = t0 - lo + m;
    if (row >= 0 && row < L) {
      LoadF<T, V>(xb + int64_t(row) * D, win[m]);
    } else {
#pragma unroll
      for (int e = 0; e < V; ++e) win[m][e] = 0.f;
    }
  }
#pragma unroll 1
  for (int tc = t0; tc < t1; tc += R) {
#pragma unroll
    for (int i = 0; i < R; ++i) RawToF<T, V>(next[i], win[K - 1 + i]);
    if (tc + R < t1) fetch(tc + R);
#pragma unroll
    for (int i = 0; i < R; ++i) {
      if (tc + i < t1) {
        float acc[V];
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] = bv[e];
#pragma unroll
        for (int j = 0; j < K; ++j) {
#pragma unroll
          for (int e = 0; e < V; ++e) acc[e] = fmaf(wf[j][e], win[i + j][e], acc[e]);
        }
        StoreF<T, V>(yb + int64_t(tc + i) * D, acc);
      }
    }
#pragma unroll
    for (int m = 0; m < K - 1; ++m) {
#pragma unroll
      for (int e = 0; e < V; ++e) win[m][e] = win[m + R][e];
    }
  }
}

// Fused backward. The thread iterates over dy rows t (owned rows, counted once for dbias);
// x/dx row s = t - lo pairs with them: dx[s] = sum_j w[j] dy[t - j], dw[j] += x[s] dy[t - j].
// The t range [0, max(L_out, L + lo)) covers every dy row and every x row exactly once.
// Per-block partial sums of dw (K rows) and dbias (row K) go to partial[blockIdx.x].
template <typename T, typename WT, int K, int V, int R>
__global__ void __launch_bounds__(kThreads, 2)
    BlhBwdFast(const T* __restrict__ dy, const T* __restrict__ x, const WT* __restrict__ w,
               T* __restrict__ dx, float* __restrict__ partial, BlhArgs p) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  using RawT = Raw<T, V>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t c = (int64_t(blockIdx.y) * 32 + lane) * V;
  const int64_t g = int64_t(blockIdx.x) * kWarps + warp;
  const bool active = c < p.D && g < p.B * p.S;

  float dw[K][V], db[V];
#pragma unroll
  for (int e = 0; e < V; ++e) {
    db[e] = 0.f;
#pragma unroll
    for (int j = 0; j < K; ++j) dw[j][e] = 0.f;
  }

  if (active) {
    const int64_t b = Div(g, p.S);
    const int64_t t0 = (g - b * p.S) * p.SL;
    const int64_t t1 = Min64(p.T, t0 + p.SL);
    const T* dyb = dy + b * p.L_out * p.D + c;
    const T* xb = x + b * p.L * p.D + c;
    T* dxb = dx + b * p.L * p.D + c;

    // dy rows t and x rows t - lo of the step starting at tc; zero outside and past t1.
    RawT next_dy[R], next_x[R];
    auto fetch = [&](int64_t tc) {
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const int64_t t = tc + i, s = t - p.lo;
        next_dy[i] = (t < t1 && t < p.L_out) ? LoadRaw<T, V>(dyb + t * p.D) : RawT{};
        next_x[i] = (t < t1 && s >= 0 && s < p.L) ? LoadRaw<T, V>(xb + s * p.D) : RawT{};
      }
    };
    fetch(t0);

    float wf[K][V];
#pragma unroll
    for (int j = 0; j < K; ++j) LoadF<WT, V>(w + j * p.D + c, wf[j]);
    // win[m] holds dy row (tc - (K-1) + m) for the step starting at row tc.
    float win[K - 1 + R][V];
#pragma unroll
    for (int m = 0; m < K - 1; ++m) {
      const int64_t row = t0 - (K - 1) + m;
      if (row >= 0 && row < p.L_out) {
        LoadF<T, V>(dyb + row * p.D, win[m]);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) win[m][e] = 0.f;
      }
    }
#pragma unroll 1
    for (int64_t tc = t0; tc < t1; tc += R) {
      RawT cur_x[R];
#pragma unroll
      for (int i = 0; i < R; ++i) {
        RawToF<T, V>(next_dy[i], win[K - 1 + i]);
        cur_x[i] = next_x[i];
      }
      if (tc + R < t1) fetch(tc + R);
#pragma unroll
      for (int i = 0; i < R; ++i) {
        const int64_t t = tc + i, s = t - p.lo;
        float acc[V], xv[V];
        RawToF<T, V>(cur_x[i], xv);
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] = 0.f;
#pragma unroll
        for (int j = 0; j < K; ++j) {
#pragma unroll
          for (int e = 0; e < V; ++e) {
            acc[e] = fmaf(wf[j][e], win[i - j + K - 1][e], acc[e]);
            dw[j][e] = fmaf(xv[e], win[i - j + K - 1][e], dw[j][e]);
          }
        }
#pragma unroll
        for (int e = 0; e < V; ++e) db[e] += win[K - 1 + i][e];
        if (t < t1 && s >= 0 && s < p.L) StoreF<T, V>(dxb + s * p.D, acc);
      }
#pragma unroll
      for (int m = 0; m < K - 1; ++m) {
#pragma unroll
        for (int e = 0; e < V; ++e) win[m][e] = win[m + R][e];
      }
    }
  }

  // Block reduction over the kWarps warps (same channels, different stretches), one tap
  // at a time through shared memory, summed in warp order.
  __shared__ float red[kWarps][32 * V];
  const int64_t col0 = int64_t(blockIdx.y) * 32 * V;
#pragma unroll
  for (int j = 0; j <= K; ++j) {
#pragma unroll
    for (int e = 0; e < V; ++e) red[warp][lane * V + e] = j < K ? dw[j < K ? j : 0][e] : db[e];
    __syncthreads();
    for (int n = threadIdx.x; n < 32 * V; n += kThreads) {
      float sum = 0.f;
#pragma unroll
      for (int k = 0; k < kWarps; ++k) sum += red[k][n];
      if (col0 + n < p.D) partial[(int64_t(blockIdx.x) * (K + 1) + j) * p.D + col0 + n] = sum;
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------------------
// BHL fast path: x is (B, D, L), each (b, d) row a contiguous signal. A warp streams along
// one row (or one stretch of it), 32 lanes x one 16-byte vector per segment. Vectors are
// aligned in memory, not to the row start, so any L works: a row's first and last vectors
// may be partial and are loaded/stored element by element. The K-1 halo comes from the
// next lanes (and the next segment) by shuffles; the window then starts s elements into
// the lane's own vector, s being fixed per row, and is extracted with a branch-free
// 3-stage shifter.
// ---------------------------------------------------------------------------------------

struct BhlArgs {
  int64_t B, D, Li, Lo;  // input / output row lengths
  int64_t lo;            // correlation offset: out[t] uses in[t + j - lo]
  int64_t S;             // stretches per row
};

template <typename T>
struct Bhl {
  static constexpr int V = 16 / int(sizeof(T));         // elements per lane vector
  static constexpr int kPerWord = 4 / int(sizeof(T));   // elements per 32-bit word
  using Bits = typename std::conditional<sizeof(T) == 2, unsigned short, unsigned>::type;
};

// Positions and vector indices within one row (the kernels offset their base pointers to the row, so
// these stay below the row's length): 32-bit, which saves the 64-bit compares and carries of the bounds
// checks and a register per index (the BLH forward's rows likewise; K = 7 BHL forward 5% faster through
// JAX at L = 1K, session 14). The planner sends rows of kMaxFastRow elements or more to the generic kernels.
using RowIdx = int;
constexpr int64_t kMaxFastRow = int64_t(1) << 30;

// Vector p of a row whose aligned base is `base` (row position 0 sits `off` elements past
// it): elements at row positions [p*V - off, p*V - off + V), zero outside [0, len).
template <typename T>
__device__ __forceinline__ uint4 LoadRowVec(const T* base, RowIdx p, RowIdx off, RowIdx len) {
  constexpr int V = Bhl<T>::V;
  const RowIdx pos0 = p * V - off;
  if (pos0 >= 0 && pos0 + V <= len) return __ldg(reinterpret_cast<const uint4*>(base + p * V));
  using Bits = typename Bhl<T>::Bits;
  Bits t[V];
  const Bits* src = reinterpret_cast<const Bits*>(base) + p * V;
#pragma unroll
  for (int e = 0; e < V; ++e) {
    const RowIdx pos = pos0 + e;
    t[e] = (pos >= 0 && pos < len) ? src[e] : Bits(0);
  }
  uint4 r;
  memcpy(&r, t, 16);
  return r;
}

template <typename T, bool kWhole16 = false>
__device__ __forceinline__ void StoreRowVec(T* base, RowIdx q, RowIdx off, RowIdx len, const float* v) {
  constexpr int V = Bhl<T>::V;
  const RowIdx pos0 = q * V - off;
  if (pos0 >= 0 && pos0 + V <= len) {
    StoreF<T, V, kWhole16>(base + q * V, v);
    return;
  }
#pragma unroll
  for (int e = 0; e < V; ++e) {
    const RowIdx pos = pos0 + e;
    if (pos >= 0 && pos < len) base[q * V + e] = Cvt<T>::FromF(v[e]);
  }
}

template <typename T>
__device__ __forceinline__ void UnpackVec(const uint4& r, float* out) {
  constexpr int k = Cvt<T>::kPerWord;
  Cvt<T>::Unpack(r.x, out);
  Cvt<T>::Unpack(r.y, out + k);
  Cvt<T>::Unpack(r.z, out + 2 * k);
  Cvt<T>::Unpack(r.w, out + 3 * k);
}

__device__ __forceinline__ unsigned Word(const uint4& r, int i) {
  return i == 0 ? r.x : i == 1 ? r.y : i == 2 ? r.z : r.w;
}

// The halo exchanges are rotations across the warp (every lane reads exactly one other lane), so each
// lane offers the word its reader wants, from its own vector or the neighbouring segment's: one shuffle
// per word instead of one for each of the two vectors and a select.

template <typename T, int K>
struct Window {
  static constexpr int V = Bhl<T>::V;
  static constexpr int EPW = Bhl<T>::kPerWord;
  static constexpr int NW = V + K - 1;  // window elements: V outputs need V + K - 1 inputs
  // Vectors that hold elements [s, s + NW) for any s < V.
  static constexpr int NV = K <= 2 ? 2 : 2 + (K - 2 + V - 1) / V;
  static constexpr int NI = NV * 4;                           // input words
  static constexpr int NP = (NW + EPW - 1) / EPW + (EPW - 1);  // words kept after the word shift
  static constexpr int N0 = NP + 3;                            // words read by the shifter
};

// win[e] = element s + e of the concatenation of the lane's vector `cur` and the vectors
// of the next NV-1 lanes (wrapping into `nxt`, the same lanes' vectors one segment later).
template <typename T, int K>
__device__ __forceinline__ void BuildWindow(const uint4& cur, const uint4& nxt, int lane, int s,
                                            float (&win)[Window<T, K>::NW]) {
  using W = Window<T, K>;
  unsigned w0[W::N0];
#pragma unroll
  for (int k = 0; k < W::N0; ++k) {
    const int v = k / 4, i = k % 4;
    if (k >= W::NI) {
      w0[k] = 0u;
    } else if (v == 0) {
      w0[k] = Word(cur, i);
    } else {
      // Lane L wants word i of lane L + v's vector: `cur` below 32, `nxt` (one segment on) past it.
      // Each lane is read by exactly one other, so it offers the one it will be asked for.
      w0[k] = __shfl_sync(kFull, lane < v ? Word(nxt, i) : Word(cur, i), (lane + v) & 31);
    }
  }
  const int qs = s / W::EPW;  // word shift, 0..3
  unsigned w1[W::NP + 1], w2[W::NP];
#pragma unroll
  for (int k = 0; k < W::NP + 1; ++k) w1[k] = (qs & 2) ? w0[k + 2] : w0[k];
#pragma unroll
  for (int k = 0; k < W::NP; ++k) w2[k] = (qs & 1) ? w1[k + 1] : w1[k];
  if constexpr (W::EPW == 2) {
    const bool odd = s & 1;
#pragma unroll
    for (int k = 0; k < W::NP - 1; ++k) {
      const unsigned wk = odd ? __byte_perm(w2[k], w2[k + 1], 0x5432) : w2[k];
      float f[2];
      Cvt<T>::Unpack(wk, f);
      if (2 * k < W::NW) win[2 * k] = f[0];
      if (2 * k + 1 < W::NW) win[2 * k + 1] = f[1];
    }
  } else {
#pragma unroll
    for (int k = 0; k < W::NW; ++k) win[k] = __uint_as_float(w2[k]);
  }
}

// Per-row geometry of a correlation out[t] = sum_j w[j] in[t + j - lo] in vector units:
// output vector q's window starts s elements into input vector q + dq.
struct RowGeom {
  int64_t in_off, out_off;  // offset of row position 0 from the aligned row base
  int s;
  int64_t dq;
};

template <typename T>
__device__ __forceinline__ RowGeom MakeGeom(int64_t r, int64_t Li, int64_t Lo, int64_t lo) {
  constexpr int V = Bhl<T>::V;
  RowGeom g;
  static_assert((V & (V - 1)) == 0, "V is a power of two");
  g.in_off = (r * Li) & (V - 1);
  g.out_off = (r * Lo) & (V - 1);
  const int64_t delta = g.in_off - g.out_off - lo;
  g.s = int(delta & (V - 1));  // delta mod V, also for negative delta (two's complement)
  g.dq = (delta - g.s) / V;    // exact
  return g;
}

// The output-vector range [*qs, *qe) of stretch st out of S, segments of 32 vectors.
__device__ __forceinline__ void Stretch(int64_t qmin, int64_t qmax, int64_t S, int64_t st,
                                        int64_t* qs, int64_t* qe) {
  const int64_t per = S == 1 ? qmax - qmin : Div(qmax - qmin + S - 1, S);
  const int64_t Q = CeilDiv(per, 32) * 32;
  *qs = qmin + st * Q;
  *qe = Min64(qmax, *qs + Q);
}

// ---------------------------------------------------------------------------------------
// BHL aligned windows: rows whose output vectors line up with the input vectors (L_out == L,
// as with "same" and "causal" padding) and an offset LO known at compile time. Lane q's window
// in[qV - LO, qV + V + K - 1 - LO) is its own vector plus LO elements of the previous lane's
// and K-1-LO of the next lane's: one shuffle pair per halo word (1 or 2 words for K <= 7 in
// 16-bit types) instead of the general window's three vectors and run-time shifter. Measured
// on an H200 (B16, L 1K/2K): backward 20-25% faster, forward 5-13% at K <= 5, even at K = 7.
// ---------------------------------------------------------------------------------------

// prv: the previous segment's vectors (only lane 31's is read), cur: the lane's own, nxt: the
// next segment's (only lane 0's is read).
template <typename T, int K, int LO>
__device__ __forceinline__ void BuildWindowAligned(const uint4& prv, const uint4& cur,
                                                   const uint4& nxt, int lane,
                                                   float (&win)[Bhl<T>::V + K - 1]) {
  constexpr int V = Bhl<T>::V, EPW = Bhl<T>::kPerWord;
  constexpr int HI = K - 1 - LO;
  static_assert(LO >= 0 && HI >= 0 && LO <= V && HI <= V, "halo within one vector on each side");
  float own[V];
  UnpackVec<T>(cur, own);
#pragma unroll
  for (int i = 0; i < V; ++i) win[LO + i] = own[i];
  // Elements V-LO .. V-1 of the previous lane's vector: words (V-LO)/EPW .. 3.
#pragma unroll
  for (int wd = (V - LO) / EPW; wd < 4; ++wd) {
    // From lane - 1; lane 0 from lane 31 of the previous segment (offered by lane 31 in place of its own).
    float f[EPW];
    Cvt<T>::Unpack(__shfl_sync(kFull, lane == 31 ? Word(prv, wd) : Word(cur, wd), (lane + 31) & 31), f);
#pragma unroll
    for (int k = 0; k < EPW; ++k) {
      const int e = wd * EPW + k - (V - LO);
      if (e >= 0) win[e] = f[k];
    }
  }
  // Elements 0 .. HI-1 of the next lane's vector.
#pragma unroll
  for (int wd = 0; wd < (HI + EPW - 1) / EPW; ++wd) {
    // From lane + 1; lane 31 from lane 0 of the next segment (offered by lane 0 in place of its own).
    float f[EPW];
    Cvt<T>::Unpack(__shfl_sync(kFull, lane == 0 ? Word(nxt, wd) : Word(cur, wd), (lane + 1) & 31), f);
#pragma unroll
    for (int k = 0; k < EPW; ++k) {
      const int e = wd * EPW + k;
      if (e < HI) win[LO + V + e] = f[k];
    }
  }
}

// The window of segment u of a step. kLo < 0: the general window (any offset, lane vectors at
// q + dq, run-time shift geo.s); kLo >= 0: the aligned one (lane vectors at q).
template <typename T, int K, int kLo, int U>
__device__ __forceinline__ void StepWindow(const uint4& prv, const uint4 (&buf)[U + 1], int u,
                                           int lane, int s, float (&win)[Bhl<T>::V + K - 1]) {
  if constexpr (kLo >= 0) {
    BuildWindowAligned<T, K, kLo>(u == 0 ? prv : buf[u - 1], buf[u], buf[u + 1], lane, win);
  } else {
    BuildWindow<T, K>(buf[u], buf[u + 1], lane, s, win);
  }
}

// Forward. kLo >= 0 requires p.Li == p.Lo and p.lo == kLo (the aligned window). kMinBlocks per SM:
// 3 (85 registers) by default, since the aligned K = 7 kernels took 86-88 and fell to 2; 4 for the
// 16-bit K = 7 shape (see BhlFwdUnroll).
template <typename T, typename WT, int K, int U, int kMinBlocks, int kLo>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    BhlFwdFast(const T* __restrict__ in, const WT* __restrict__ w, const WT* __restrict__ bias,
               T* __restrict__ out, BhlArgs p) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  constexpr int V = Bhl<T>::V;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t gw = int64_t(blockIdx.x) * kWarps + warp;
  const int64_t r = p.S == 1 ? gw : Div(gw, p.S), st = gw - r * p.S;
  if (r >= p.B * p.D) return;
  const int64_t d = r - Div(r, p.D) * p.D;
  float wf[K];
#pragma unroll
  for (int j = 0; j < K; ++j) wf[j] = LoadOne(w + j * p.D + d);
  const float bv = bias != nullptr ? LoadOne(bias + d) : 0.f;

  const RowGeom geo = MakeGeom<T>(r, p.Li, p.Lo, p.lo);
  const RowIdx dq = kLo >= 0 ? 0 : RowIdx(geo.dq);
  const RowIdx in_off = RowIdx(geo.in_off), out_off = RowIdx(geo.out_off), Li = RowIdx(p.Li), Lo = RowIdx(p.Lo);
  int64_t qs64, qe64;
  Stretch(0, CeilDiv(p.Lo + geo.out_off, V), p.S, st, &qs64, &qe64);
  const RowIdx qs = RowIdx(qs64), qe = RowIdx(qe64);
  if (qs >= qe) return;
  const T* ib = in + r * p.Li - geo.in_off;
  T* ob = out + r * p.Lo - geo.out_off;

  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  // buf[u] holds the lane's input vector of segment q0 + 32u; pre[] the next group's; prv the
  // segment before (aligned window: lane 31's vector is lane 0's left halo).
  uint4 prv = kLo > 0 && qs > 0 && lane == 31 ? LoadRowVec(ib, qs - 1, in_off, Li) : zero;
  uint4 buf[U + 1], pre[U];
#pragma unroll
  for (int u = 0; u <= U; ++u) {
    buf[u] = u == 0 || qs + 32 * (u - 1) < qe
                 ? LoadRowVec(ib, qs + 32 * u + dq + lane, in_off, Li)
                 : zero;
  }
#pragma unroll 1
  for (RowIdx q0 = qs; q0 < qe; q0 += 32 * U) {
    const RowIdx n0 = q0 + 32 * U;
#pragma unroll
    for (int u = 1; u <= U; ++u) {
      pre[u - 1] = n0 + 32 * (u - 1) < qe
                       ? LoadRowVec(ib, n0 + 32 * u + dq + lane, in_off, Li)
                       : zero;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (q0 + 32 * u < qe) {  // warp-uniform, so the shuffles inside see every lane
        float win[V + K - 1];
        StepWindow<T, K, kLo, U>(prv, buf, u, lane, geo.s, win);
        float acc[V];
#pragma unroll
        for (int i = 0; i < V; ++i) {
          acc[i] = bv;
#pragma unroll
          for (int j = 0; j < K; ++j) acc[i] = fmaf(wf[j], win[i + j], acc[i]);
        }
        const RowIdx q = q0 + 32 * u + lane;
        if (q < qe) StoreRowVec<T, true>(ob, q, out_off, Lo, acc);
      }
    }
    prv = buf[U - 1];
    buf[0] = buf[U];
#pragma unroll
    for (int u = 1; u <= U; ++u) buf[u] = pre[u - 1];
  }
}

// Fused backward for BHL. dx is the correlation of dy with the reversed taps and offset
// K-1-lo, computed per output vector q as in the forward (kLo >= 0: that offset is kLo and
// L_out == L); the same window times x's vector q gives dw, and the lane's own (unshifted)
// dy vector gives dbias. The q range is widened so that every dy vector is some lane's own
// vector exactly once. Each warp writes its (row, stretch) sums to partial[b * S + stretch][j][d].
template <typename T, typename WT, int K, int U, int kMinBlocks, int kLo>
__global__ void __launch_bounds__(kThreads, kMinBlocks)
    BhlBwdFast(const T* __restrict__ dy, const T* __restrict__ x, const WT* __restrict__ w,
               T* __restrict__ dx, float* __restrict__ partial, BhlArgs p) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  constexpr int V = Bhl<T>::V;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t gw = int64_t(blockIdx.x) * kWarps + warp;
  const int64_t r = p.S == 1 ? gw : Div(gw, p.S), st = gw - r * p.S;
  if (r >= p.B * p.D) return;
  const int64_t b = Div(r, p.D), d = r - b * p.D;
  // Here Li = L_out (dy) and Lo = L (x, dx); p.lo is the forward's pad_lo.
  float wf[K];  // reversed taps
#pragma unroll
  for (int j = 0; j < K; ++j) wf[j] = LoadOne(w + (K - 1 - j) * p.D + d);

  const RowGeom geo = MakeGeom<T>(r, p.Li, p.Lo, K - 1 - p.lo);
  const RowIdx dq = kLo >= 0 ? 0 : RowIdx(geo.dq);
  const RowIdx in_off = RowIdx(geo.in_off), out_off = RowIdx(geo.out_off), Li = RowIdx(p.Li), Lo = RowIdx(p.Lo);
  const int64_t qmin = Min64(0, -dq);
  const int64_t qmax = Max64(CeilDiv(p.Lo + geo.out_off, V), CeilDiv(p.Li + geo.in_off, V) - dq);
  int64_t qs64, qe64;
  Stretch(qmin, qmax, p.S, st, &qs64, &qe64);
  const RowIdx qs = RowIdx(qs64), qe = RowIdx(qe64);

  float dwa[K], dba = 0.f;
#pragma unroll
  for (int j = 0; j < K; ++j) dwa[j] = 0.f;

  if (qs < qe) {
    const T* dyb = dy + r * p.Li - geo.in_off;
    const T* xb = x + r * p.Lo - geo.out_off;
    T* dxb = dx + r * p.Lo - geo.out_off;
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    // buf[u]: the lane's dy vector of segment q0 + 32u; xv[u]: its x vector; pre*: the
    // next group's, requested before this group is computed; prv as in the forward.
    uint4 prv = kLo > 0 && qs > 0 && lane == 31 ? LoadRowVec(dyb, qs - 1, in_off, Li) : zero;
    uint4 buf[U + 1], pre[U], xv[U], xpre[U];
#pragma unroll
    for (int u = 0; u <= U; ++u) {
      buf[u] = u == 0 || qs + 32 * (u - 1) < qe
                   ? LoadRowVec(dyb, qs + 32 * u + dq + lane, in_off, Li)
                   : zero;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      xv[u] = qs + 32 * u < qe ? LoadRowVec(xb, qs + 32 * u + lane, out_off, Lo) : zero;
    }
#pragma unroll 1
    for (RowIdx q0 = qs; q0 < qe; q0 += 32 * U) {
      const RowIdx n0 = q0 + 32 * U;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        pre[u] = n0 + 32 * u < qe
                     ? LoadRowVec(dyb, n0 + 32 * (u + 1) + dq + lane, in_off, Li)
                     : zero;
        xpre[u] = n0 + 32 * u < qe ? LoadRowVec(xb, n0 + 32 * u + lane, out_off, Lo) : zero;
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        if (q0 + 32 * u < qe) {  // warp-uniform
          float win[V + K - 1];
          StepWindow<T, K, kLo, U>(prv, buf, u, lane, geo.s, win);
          const RowIdx q = q0 + 32 * u + lane;
          if (q < qe) {
            float acc[V], xf[V], own[V];
#pragma unroll
            for (int i = 0; i < V; ++i) {
              acc[i] = 0.f;
#pragma unroll
              for (int j = 0; j < K; ++j) acc[i] = fmaf(wf[j], win[i + j], acc[i]);
            }
            StoreRowVec(dxb, q, out_off, Lo, acc);
            UnpackVec<T>(xv[u], xf);
            UnpackVec<T>(buf[u], own);
#pragma unroll
            for (int j = 0; j < K; ++j) {
#pragma unroll
              for (int i = 0; i < V; ++i) dwa[j] = fmaf(xf[i], win[i + K - 1 - j], dwa[j]);
            }
#pragma unroll
            for (int i = 0; i < V; ++i) dba += own[i];
          }
        }
      }
      prv = buf[U - 1];
      buf[0] = buf[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        buf[u + 1] = pre[u];
        xv[u] = xpre[u];
      }
    }
  }
  // Butterfly sums: a + b == b + a in IEEE arithmetic, so every lane ends with the same bits.
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
#pragma unroll
    for (int j = 0; j < K; ++j) dwa[j] += __shfl_xor_sync(kFull, dwa[j], off);
    dba += __shfl_xor_sync(kFull, dba, off);
  }
  float* slot = partial + (b * p.S + st) * (K + 1) * p.D + d;
#pragma unroll
  for (int j = 0; j <= K; ++j) {
    if (lane == j) slot[j * p.D] = j < K ? dwa[j < K ? j : 0] : dba;
  }
}

// ---------------------------------------------------------------------------------------
// Generic paths: any K, any alignment. One thread per output element for the correlation,
// loads served mostly by L1; dw by direct sums per (slot, tap, channel).
// ---------------------------------------------------------------------------------------

template <typename T, typename WT, bool kBlh, bool kReverse>
__global__ void __launch_bounds__(kThreads)
    GenericCorr(const T* __restrict__ in, const WT* __restrict__ w, const WT* __restrict__ bias,
                T* __restrict__ out, int64_t B, int64_t D, int64_t Li, int64_t Lo, int64_t K,
                int64_t lo) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  const int64_t total = B * Lo * D;
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < total;
       n += int64_t(gridDim.x) * blockDim.x) {
    int64_t t, d, in_row, stride;
    if constexpr (kBlh) {
      d = n % D;
      const int64_t bt = n / D;
      t = bt % Lo;
      in_row = (bt / Lo) * Li * D + d;  // element (b, 0, d)
      stride = D;
    } else {
      t = n % Lo;
      const int64_t bd = n / Lo;
      d = bd % D;
      in_row = bd * Li;
      stride = 1;
    }
    float acc = bias != nullptr ? LoadOne(bias + d) : 0.f;
    const int64_t j0 = Max64(0, lo - t), j1 = Min64(K, Li + lo - t);
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t tap = kReverse ? K - 1 - j : j;
      acc = fmaf(LoadOne(w + tap * D + d), LoadOne(in + in_row + (t + j - lo) * stride), acc);
    }
    out[n] = Cvt<T>::FromF(acc);
  }
}

// partial[p][j][d] = sum over dy rows u in [p*chunk, (p+1)*chunk) of the flattened (b, t)
// index of dy[b,t,d] * (j < K ? x[b, t + j - lo, d] : 1). BLH: a thread per entry, walking
// the rows in order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    GenericDwBlh(const T* __restrict__ dy, const T* __restrict__ x, float* __restrict__ partial,
                 int64_t B, int64_t D, int64_t L, int64_t Lo, int64_t K, int64_t lo, int64_t P,
                 int64_t chunk) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  const int64_t total = P * (K + 1) * D;
  for (int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; n < total;
       n += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = n % D, j = (n / D) % (K + 1), slot = n / (D * (K + 1));
    const int64_t u0 = slot * chunk, u1 = Min64(B * Lo, u0 + chunk);
    int64_t b = u0 / Lo, t = u0 - b * Lo;
    float sum = 0.f;
    for (int64_t u = u0; u < u1; ++u) {
      const float g = LoadOne(dy + (b * Lo + t) * D + d);
      if (j == K) {
        sum += g;
      } else {
        const int64_t s = t + j - lo;
        if (s >= 0 && s < L) sum = fmaf(g, LoadOne(x + (b * L + s) * D + d), sum);
      }
      if (++t == Lo) {
        t = 0;
        ++b;
      }
    }
    partial[n] = sum;
  }
}

// BHL: a warp per entry, lanes striding along the (contiguous) rows, then a butterfly sum.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    GenericDwBhl(const T* __restrict__ dy, const T* __restrict__ x, float* __restrict__ partial,
                 int64_t B, int64_t D, int64_t L, int64_t Lo, int64_t K, int64_t lo, int64_t P,
                 int64_t chunk) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  const int lane = threadIdx.x & 31;
  const int64_t total = P * (K + 1) * D;
  for (int64_t n = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; n < total;
       n += int64_t(gridDim.x) * blockDim.x / 32) {
    const int64_t d = n % D, j = (n / D) % (K + 1), slot = n / (D * (K + 1));
    const int64_t u0 = slot * chunk, u1 = Min64(B * Lo, u0 + chunk);
    float sum = 0.f;
    for (int64_t u = u0 + lane; u < u1; u += 32) {
      const int64_t b = u / Lo, t = u - b * Lo;
      const float g = LoadOne(dy + (b * D + d) * Lo + t);
      if (j == K) {
        sum += g;
      } else {
        const int64_t s = t + j - lo;
        if (s >= 0 && s < L) sum = fmaf(g, LoadOne(x + (b * D + d) * L + s), sum);
      }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(kFull, sum, off);
    if (lane == 0) partial[n] = sum;
  }
}

// dw[j][d] = sum_p partial[p][j][d] for j < K, dbias[d] = sum_p partial[p][K][d]. A block
// takes 32 consecutive entries; warp w adds slots [w*C, (w+1)*C) in ascending order, then the
// eight warp sums are added in warp order: a fixed order, so the bits do not change between
// runs. Loads are issued four at a time so that the latency of the slot walk overlaps.
// Compensated (Kahan) summation: the float32 contract (rel-L2 <= 1e-6) leaves little room
// for a plain running sum's error growth over thousands of slots.
__device__ __forceinline__ void KahanAdd(float v, float& sum, float& comp) {
  const float y = __fsub_rn(v, comp);
  const float t = __fadd_rn(sum, y);
  comp = __fsub_rn(__fsub_rn(t, sum), y);
  sum = t;
}

__global__ void __launch_bounds__(kThreads)
    DwFinalize(const float* __restrict__ partial, int64_t P, int64_t K, int64_t D,
               float* __restrict__ dw, float* __restrict__ dbias) {
  pdl::BeginKernel();  // before any global access: see common/pdl.cuh
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t total = (K + 1) * D;
  const int64_t n = int64_t(blockIdx.x) * 32 + lane;
  const int64_t chunk = CeilDiv(P, kWarps);
  const int64_t p1 = Min64(P, (warp + 1) * chunk);
  float sum = 0.f, comp = 0.f;
  if (n < total) {
    const float* src = partial + n;
    int64_t p = warp * chunk;
    for (; p + 4 <= p1; p += 4) {
      float v[4];
#pragma unroll
      for (int k = 0; k < 4; ++k) v[k] = src[(p + k) * total];
#pragma unroll
      for (int k = 0; k < 4; ++k) KahanAdd(v[k], sum, comp);
    }
    for (; p < p1; ++p) KahanAdd(src[p * total], sum, comp);
  }
  __shared__ float part[kWarps][32];
  part[warp][lane] = sum;
  __syncthreads();
  if (warp == 0 && n < total) {
    float s = 0.f, c = 0.f;
#pragma unroll
    for (int k = 0; k < kWarps; ++k) KahanAdd(part[k][lane], s, c);
    if (n < K * D) {
      dw[n] = s;
    } else if (dbias != nullptr) {
      dbias[n - K * D] = s;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Host side: plans and dispatch.
// ---------------------------------------------------------------------------------------

// BLH variants: bytes per thread (V = bytes / sizeof(T)) and rows per step. The first entry is
// the default; when D is not a multiple of its V the 4-byte entry is used instead. Any width
// of 4 bytes or more keeps a warp's access to a row at whole 32-byte sectors; wider vectors
// only save load instructions, and cost registers (weights and sums are K*V floats): 16-byte
// vectors spilled or fell to one block per SM. Measured on an H200 (f16, B=16, L 1K..8K,
// D 768..8192) against {8B R4, 4B R8} forward and {4B R4, 8B R2} backward, these won everywhere
// except the backward at K = 7, where 8B R4 spills and 4B R8 is used.
struct BlhVariant {
  int bytes, rows;
};
constexpr BlhVariant kBlhFwdVariants[] = {{8, 8}, {4, 8}};
constexpr BlhVariant kBlhBwdVariants[] = {{8, 4}, {4, 8}};
constexpr int kNumBlhFwd = sizeof(kBlhFwdVariants) / sizeof(kBlhFwdVariants[0]);
constexpr int kNumBlhBwd = sizeof(kBlhBwdVariants) / sizeof(kBlhBwdVariants[0]);
constexpr int kBlhFallbackFwd = 1, kBlhFallbackBwd = 1;  // the 4-byte entries
// BHL: both directions stream 4 segments per step (2 was slower everywhere). The backward is
// held to 128 registers (2 blocks per SM): left alone it takes 146-156 at K >= 5 and one block
// per SM, which measured 1.4-1.6x slower than the few spills the cap costs.
constexpr int kBhlFwdUnroll = 4;
// K = 7 in 16-bit types, forward BHL (dw_selftest --pdl-bench, H200, B16 L 1K/2K D 768..2048, two interleaved
// rounds; logs/nvidia-h200-depthwise-k7-ab-session13.log): 2 segments per step at 4 blocks per SM (64 registers,
// 8 B of spill then, none since the one-shuffle halo) 1-4% faster than 4 segments at 3 (80 registers, 12 B of
// spill), and 4% through JAX at L = 1K,
// D = 768 (device-side); 1 segment at 4 blocks 30% slower. float32 keeps the K <= 5 shape (2 segments at 4
// blocks spill 128 B there). Not kept for BLH: 4 rows per step instead of 8 for bfloat16 (8% faster in the
// self-test with float32 weights, 11-15% slower than float16 through JAX with bfloat16 weights).
constexpr int BhlFwdUnroll(int64_t K, size_t elem_bytes) { return K == 7 && elem_bytes == 2 ? 2 : kBhlFwdUnroll; }
constexpr int BhlFwdMinBlocks(int64_t K, size_t elem_bytes) { return K == 7 && elem_bytes == 2 ? 4 : 3; }
struct BhlBwdVariant {
  int unroll, min_blocks;
};
constexpr BhlBwdVariant kBhlBwdVariants[] = {{4, 2}};
constexpr int kNumBhlBwd = sizeof(kBhlBwdVariants) / sizeof(kBhlBwdVariants[0]);
int DefaultBhlBwdVariant(int64_t) { return 0; }
constexpr int64_t kMinRowsPerStretch = 16;  // 16 vs 32: 10% faster fwd at B16 L1K D768 K<=5 (H200), same elsewhere

bool FastK(int64_t K) { return K == 2 || K == 3 || K == 4 || K == 5 || K == 7; }

// The correlation offsets the BHL aligned kernels are built for: forward pad_lo of "same"
// ((K-1)/2) and "causal" (K-1) padding; the backward's dx offset K-1-pad_lo of the same two.
constexpr int AlignedSameLo(int K, bool backward) { return backward ? K - 1 - (K - 1) / 2 : (K - 1) / 2; }
constexpr int AlignedCausalLo(int K, bool backward) { return backward ? 0 : K - 1; }
// Both halves of the halo (lo before, K-1-lo after) within one neighbouring vector of V elements.
constexpr bool AlignedHaloFits(int K, int lo, int V) { return lo <= V && K - 1 - lo <= V; }
bool IsAlignedLo(int64_t K, int64_t lo, bool backward, int64_t V) {
  return (lo == AlignedSameLo(int(K), backward) || lo == AlignedCausalLo(int(K), backward)) &&
         AlignedHaloFits(int(K), int(lo), int(V));
}

size_t DTypeSize(DwElem t) { return t == DwElem::kF32 ? 4 : 2; }

bool Aligned(const void* p, size_t bytes) {
  return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

enum class Path { kGeneric, kBlhFast, kBhlFast };

struct Plan {
  Path path = Path::kGeneric;
  int bytes = 0, rows = 0, unroll = 0, min_blocks = 1;  // fast-path template choices
  int64_t S = 1, SL = 0, T = 0;         // stretches and their lengths
  int aligned_lo = -1;                  // BHL: the aligned kernels' offset, -1 for the general ones
  dim3 grid;
  int64_t P = 0, chunk = 0;             // backward: partial slots, generic rows per slot
};

// The common part of forward and backward planning. `io` are the activation pointers that
// need vector alignment; `T_rows` the row range the BLH kernels iterate over.
Plan MakePlan(const DwDims& d, bool backward, std::initializer_list<const void*> io,
              std::initializer_list<const void*> weights, int64_t T_rows,
              const DepthwiseTuning* tuning) {
  Plan pl;
  const size_t xs = DTypeSize(d.x_dtype), ws = DTypeSize(d.w_dtype);
  // The fast kernels index rows in 32 bits (RowIdx).
  const bool want_fast = FastK(d.K) && !(tuning != nullptr && tuning->force_generic) &&
                         std::max(d.L, d.L_out) + d.K < kMaxFastRow;
  if (want_fast && d.layout == kLayoutBLH) {
    // K = 7 with 8-byte vectors needs more registers than the 2-blocks-per-SM budget.
    int v = backward && d.K >= 7 ? kBlhFallbackBwd : 0;
    if (tuning != nullptr) {
      const int tv = backward ? tuning->blh_bwd_variant : tuning->blh_fwd_variant;
      if (tv >= 0 && tv < (backward ? kNumBlhBwd : kNumBlhFwd)) v = tv;
    }
    const int64_t min_rows =
        tuning != nullptr && tuning->min_rows > 0 ? tuning->min_rows : kMinRowsPerStretch;
    const int64_t target =
        tuning != nullptr && tuning->target_warps > 0 ? tuning->target_warps : kBlhTargetWarps;
    const BlhVariant* table = backward ? kBlhBwdVariants : kBlhFwdVariants;
    const int fallback = backward ? kBlhFallbackBwd : kBlhFallbackFwd;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const int idx = attempt == 0 ? v : fallback;
      const BlhVariant var = table[idx];
      const int64_t V = var.bytes / int64_t(xs);
      bool ok = V >= 1 && d.D % V == 0;
      for (const void* q : io) ok = ok && Aligned(q, std::min<size_t>(16, V * xs));
      for (const void* q : weights) ok = ok && Aligned(q, std::min<size_t>(16, V * ws));
      const int64_t colblocks = CeilDiv(d.D, 32 * V);
      ok = ok && colblocks <= 65535;
      if (!ok) continue;
      pl.path = Path::kBlhFast;
      pl.bytes = var.bytes;
      pl.rows = var.rows;
      pl.T = T_rows;
      int64_t S = CeilDiv(target, d.B * colblocks);
      S = std::max<int64_t>(1, std::min(S, CeilDiv(T_rows, min_rows)));
      pl.SL = CeilDiv(CeilDiv(T_rows, S), var.rows) * var.rows;
      pl.S = CeilDiv(T_rows, pl.SL);
      const int64_t bx = CeilDiv(d.B * pl.S, kWarps);
      if (bx > 2147483647LL) {
        pl.path = Path::kGeneric;
        break;
      }
      pl.grid = dim3(unsigned(bx), unsigned(colblocks), 1);
      pl.P = bx;
      return pl;
    }
  }
  if (want_fast && d.layout == kLayoutBHL) {
    bool ok = true;
    for (const void* q : io) ok = ok && Aligned(q, 16);
    if (ok) {
      const int64_t V = 16 / int64_t(xs);
      int variant = backward ? DefaultBhlBwdVariant(d.K) : 0;
      int64_t target = kTargetWarps;
      if (tuning != nullptr) {
        if (backward && tuning->bhl_bwd_variant >= 0 && tuning->bhl_bwd_variant < kNumBhlBwd) {
          variant = tuning->bhl_bwd_variant;
        }
        if (tuning->target_warps > 0) target = tuning->target_warps;
      }
      const int unroll = backward ? kBhlBwdVariants[variant].unroll : BhlFwdUnroll(d.K, xs);
      pl.min_blocks = backward ? kBhlBwdVariants[variant].min_blocks : 1;
      const int64_t rows = d.B * d.D;
      const int64_t len = std::max(d.L, d.L_out) + d.K + 2 * V;  // vectors a row can span
      const int64_t segs = CeilDiv(CeilDiv(len, V), 32);
      int64_t S = CeilDiv(target, rows);
      S = std::max<int64_t>(1, std::min(S, CeilDiv(segs, 2)));
      const int64_t bx = CeilDiv(rows * S, kWarps);
      if (bx <= 2147483647LL) {
        pl.path = Path::kBhlFast;
        // Aligned kernels for the offsets of "same" and "causal" padding (see IsAlignedLo).
        const int64_t lo = backward ? d.K - 1 - d.pad_lo : d.pad_lo;
        if (d.L == d.L_out && IsAlignedLo(d.K, lo, backward, V) &&
            !(tuning != nullptr && tuning->bhl_general)) {
          pl.aligned_lo = int(lo);
        }
        pl.unroll = unroll;
        pl.S = S;
        pl.grid = dim3(unsigned(bx), 1, 1);
        pl.P = d.B * S;
        return pl;
      }
    }
  }
  pl.path = Path::kGeneric;
  if (backward) {
    // Enough independent sums to fill the GPU, few enough that the scratch stays small.
    const int64_t rows = d.B * d.L_out;
    const int64_t entries = (d.K + 1) * d.D;
    const int64_t want = d.layout == kLayoutBLH ? CeilDiv(int64_t(1) << 18, entries)
                                          : CeilDiv(int64_t(1) << 15, entries);
    const int64_t P = std::max<int64_t>(1, std::min<int64_t>({want, 4096, rows}));
    pl.chunk = CeilDiv(rows, P);
    pl.P = CeilDiv(rows, pl.chunk);
  }
  return pl;
}

unsigned GenericBlocks(int64_t items, int64_t per_block) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(CeilDiv(items, per_block), 8192)));
}

std::string LastError(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return "";
  return std::string("jax_flashfft: CUDA depthwise ") + what + " failed: " +
         cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
}

// Launches one of this file's kernels (kThreads per block, no dynamic shared memory) on
// `stream`, with programmatic dependent launch unless the tuning turns it off, and reports
// the launch's error or an earlier one left on the thread.
template <typename... Params, typename... Args>
std::string Launch(const char* what, const DepthwiseTuning* tuning, void (*kernel)(Params...),
                   dim3 grid, cudaStream_t stream, Args&&... args) {
  const bool allow_pdl = !(tuning != nullptr && tuning->no_pdl);
  const cudaError_t e = pdl::Launch(allow_pdl, kernel, grid, dim3(kThreads), 0, stream,
                                    std::forward<Args>(args)...);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("jax_flashfft: CUDA depthwise ") + what + " failed: " +
           cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
  }
  return LastError(what);
}

template <typename T, typename W>
struct Types {
  using X = T;
  using Wt = W;
};

// Calls f(Types<X, W>{}) for the runtime dtypes.
template <typename F>
std::string DispatchTypes(DwElem x, DwElem w, F&& f) {
  switch (x) {
    case DwElem::kF16:
      return w == DwElem::kF32 ? f(Types<__half, float>{}) : f(Types<__half, __half>{});
    case DwElem::kBF16:
      return w == DwElem::kF32 ? f(Types<__nv_bfloat16, float>{})
                              : f(Types<__nv_bfloat16, __nv_bfloat16>{});
    case DwElem::kF32:
      return f(Types<float, float>{});
  }
  return "jax_flashfft: CUDA depthwise: unsupported dtype";
}

template <int K>
struct KTag {
  static constexpr int value = K;
};

template <int U, int MinBlocks>
struct BhlTag {
  static constexpr int unroll = U, min_blocks = MinBlocks;
};

template <typename F>
std::string DispatchBhlBwd(int unroll, int min_blocks, F&& f) {
  if (unroll == 4 && min_blocks == 2) return f(BhlTag<4, 2>{});
  return "jax_flashfft: CUDA depthwise: unknown BHL backward variant";
}

template <int LO>
struct LoTag {
  static constexpr int value = LO;
};

template <typename T, int K, bool kBackward, typename F>
std::string DispatchAlignedLo(int lo, F&& f) {
  constexpr int kSame = AlignedSameLo(K, kBackward), kCausal = AlignedCausalLo(K, kBackward);
  constexpr int V = Bhl<T>::V;
  if constexpr (AlignedHaloFits(K, kSame, V)) {
    if (lo == kSame) return f(LoTag<kSame>{});
  }
  if constexpr (AlignedHaloFits(K, kCausal, V)) {
    if (lo == kCausal) return f(LoTag<kCausal>{});
  }
  return "jax_flashfft: CUDA depthwise: no aligned BHL kernel for this offset";
}

template <typename F>
std::string DispatchK(int64_t K, F&& f) {
  switch (K) {
    case 2: return f(KTag<2>{});
    case 3: return f(KTag<3>{});
    case 4: return f(KTag<4>{});
    case 5: return f(KTag<5>{});
    case 7: return f(KTag<7>{});
  }
  return "jax_flashfft: CUDA depthwise: no fast path for K=" + std::to_string(K);
}

template <int Bytes, int Rows>
struct VarTag {
  static constexpr int bytes = Bytes, rows = Rows;
};

template <typename F>
std::string DispatchBlhFwdVariant(int bytes, int rows, F&& f) {
  if (bytes == 8 && rows == 8) return f(VarTag<8, 8>{});
  if (bytes == 4 && rows == 8) return f(VarTag<4, 8>{});
  return "jax_flashfft: CUDA depthwise: unknown BLH forward variant";
}

template <typename F>
std::string DispatchBlhBwdVariant(int bytes, int rows, F&& f) {
  if (bytes == 8 && rows == 4) return f(VarTag<8, 4>{});
  if (bytes == 4 && rows == 8) return f(VarTag<4, 8>{});
  return "jax_flashfft: CUDA depthwise: unknown BLH backward variant";
}

std::string PlanName(const Plan& pl) {
  std::ostringstream s;
  switch (pl.path) {
    case Path::kBlhFast:
      s << "blh-fast " << pl.bytes << "B R" << pl.rows << " S" << pl.S;
      break;
    case Path::kBhlFast:
      s << (pl.aligned_lo >= 0 ? "bhl-aligned LO" + std::to_string(pl.aligned_lo) + " U" : "bhl-fast U")
        << pl.unroll << (pl.min_blocks > 1 ? "b2" : "") << " S" << pl.S;
      break;
    case Path::kGeneric:
      s << "generic";
      if (pl.P > 0) s << " P" << pl.P;
      break;
  }
  return s.str();
}

Plan FwdPlan(const DwFwdArgs& a, const DepthwiseTuning* tuning) {
  return MakePlan(a.d, false, {a.x, a.y}, {a.w, a.bias}, a.d.L_out, tuning);
}

Plan BwdPlan(const DwBwdArgs& a, const DepthwiseTuning* tuning) {
  const DwDims& d = a.d;
  return MakePlan(d, true, {a.dy, a.x, a.dx}, {a.w}, std::max(d.L_out, d.L + d.pad_lo), tuning);
}

size_t PartialBytes(const Plan& pl, const DwDims& d) {
  return size_t(std::max<int64_t>(pl.P, 1)) * size_t(d.K + 1) * size_t(d.D) * sizeof(float);
}

}  // namespace

int DepthwiseBlhFwdVariants() { return kNumBlhFwd; }
int DepthwiseBhlBwdVariants() { return kNumBhlBwd; }
int DepthwiseBlhBwdVariants() { return kNumBlhBwd; }
std::string DepthwiseBlhFwdVariantName(int v) {
  return std::to_string(kBlhFwdVariants[v].bytes) + "B R" + std::to_string(kBlhFwdVariants[v].rows);
}
std::string DepthwiseBlhBwdVariantName(int v) {
  return std::to_string(kBlhBwdVariants[v].bytes) + "B R" + std::to_string(kBlhBwdVariants[v].rows);
}

std::string DepthwiseFwdPlanName(const DwFwdArgs& a, const DepthwiseTuning* tuning) {
  return PlanName(FwdPlan(a, tuning));
}
std::string DepthwiseBwdPlanName(const DwBwdArgs& a, const DepthwiseTuning* tuning) {
  return PlanName(BwdPlan(a, tuning));
}

std::string LaunchDepthwiseFwd(const DwFwdArgs& a, cudaStream_t stream,
                               const DepthwiseTuning* tuning) {
  const DwDims& d = a.d;
  if (d.B == 0 || d.D == 0) return "";  // empty output
  const Plan pl = FwdPlan(a, tuning);
  return DispatchTypes(d.x_dtype, d.w_dtype, [&](auto types) -> std::string {
    using T = typename decltype(types)::X;
    using WT = typename decltype(types)::Wt;
    const T* x = static_cast<const T*>(a.x);
    const WT* w = static_cast<const WT*>(a.w);
    const WT* bias = static_cast<const WT*>(a.bias);
    T* y = static_cast<T*>(a.y);
    if (pl.path == Path::kBlhFast) {
      const BlhArgs p{d.B, d.L, d.D, d.L_out, d.pad_lo, pl.S, pl.SL, pl.T};
      return DispatchK(d.K, [&](auto k) {
        return DispatchBlhFwdVariant(pl.bytes, pl.rows, [&](auto var) {
          constexpr int K = decltype(k)::value;
          constexpr int V = decltype(var)::bytes / int(sizeof(T));
          return Launch("forward (BLH fast path)", tuning, BlhFwdFast<T, WT, K, V, decltype(var)::rows>, pl.grid, stream, x, w, bias, y, p);
        });
      });
    }
    if (pl.path == Path::kBhlFast) {
      const BhlArgs p{d.B, d.D, d.L, d.L_out, d.pad_lo, pl.S};
      return DispatchK(d.K, [&](auto k) {
        constexpr int K = decltype(k)::value;
        if (pl.aligned_lo >= 0) {
          return DispatchAlignedLo<T, K, false>(pl.aligned_lo, [&](auto lo) {
            return Launch("forward (BHL aligned path)", tuning, BhlFwdFast<T, WT, K, BhlFwdUnroll(K, sizeof(T)), BhlFwdMinBlocks(K, sizeof(T)), decltype(lo)::value>, pl.grid, stream, x, w, bias, y, p);
          });
        }
        return Launch("forward (BHL fast path)", tuning, BhlFwdFast<T, WT, K, BhlFwdUnroll(K, sizeof(T)), BhlFwdMinBlocks(K, sizeof(T)), -1>, pl.grid, stream, x, w, bias, y, p);
      });
    }
    const unsigned blocks = GenericBlocks(d.B * d.L_out * d.D, kThreads);
    return Launch("forward (generic path)", tuning,
                  d.layout == kLayoutBLH ? GenericCorr<T, WT, true, false> : GenericCorr<T, WT, false, false>,
                  dim3(blocks), stream, x, w, bias, y, d.B, d.D, d.L, d.L_out, d.K, d.pad_lo);
  });
}

size_t DepthwiseBwdScratchBytes(const DwBwdArgs& a, const DepthwiseTuning* tuning) {
  if (a.d.B == 0 || a.d.D == 0) return 256;
  return PartialBytes(BwdPlan(a, tuning), a.d);
}

std::string LaunchDepthwiseBwd(const DwBwdArgs& a, void* scratch, size_t scratch_bytes,
                               cudaStream_t stream, const DepthwiseTuning* tuning) {
  const DwDims& d = a.d;
  if (d.D == 0) return "";
  if (d.B == 0) {  // nothing to sum: dw and dbias are zero, dx is empty
    cudaError_t e = cudaMemsetAsync(a.dw, 0, size_t(d.K * d.D) * sizeof(float), stream);
    if (e == cudaSuccess && a.dbias != nullptr) {
      e = cudaMemsetAsync(a.dbias, 0, size_t(d.D) * sizeof(float), stream);
    }
    if (e != cudaSuccess) {
      return std::string("jax_flashfft: CUDA depthwise backward: zeroing dw/dbias failed: ") +
             cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
    }
    return "";
  }
  const Plan pl = BwdPlan(a, tuning);
  if (scratch == nullptr || scratch_bytes < PartialBytes(pl, d)) {
    return "jax_flashfft: CUDA depthwise backward: scratch buffer too small";
  }
  float* partial = static_cast<float*>(scratch);
  std::string err = DispatchTypes(d.x_dtype, d.w_dtype, [&](auto types) -> std::string {
    using T = typename decltype(types)::X;
    using WT = typename decltype(types)::Wt;
    const T* dy = static_cast<const T*>(a.dy);
    const T* x = static_cast<const T*>(a.x);
    const WT* w = static_cast<const WT*>(a.w);
    T* dx = static_cast<T*>(a.dx);
    if (pl.path == Path::kBlhFast) {
      const BlhArgs p{d.B, d.L, d.D, d.L_out, d.pad_lo, pl.S, pl.SL, pl.T};
      return DispatchK(d.K, [&](auto k) {
        return DispatchBlhBwdVariant(pl.bytes, pl.rows, [&](auto var) {
          constexpr int K = decltype(k)::value;
          constexpr int V = decltype(var)::bytes / int(sizeof(T));
          return Launch("backward (BLH fast path)", tuning, BlhBwdFast<T, WT, K, V, decltype(var)::rows>, pl.grid, stream, dy, x, w, dx, partial, p);
        });
      });
    }
    if (pl.path == Path::kBhlFast) {
      const BhlArgs p{d.B, d.D, d.L_out, d.L, d.pad_lo, pl.S};
      return DispatchK(d.K, [&](auto k) {
        return DispatchBhlBwd(pl.unroll, pl.min_blocks, [&](auto v) {
          constexpr int K = decltype(k)::value;
          constexpr int U = decltype(v)::unroll, MB = decltype(v)::min_blocks;
          if (pl.aligned_lo >= 0) {
            return DispatchAlignedLo<T, K, true>(pl.aligned_lo, [&](auto lo) {
              return Launch("backward (BHL aligned path)", tuning, BhlBwdFast<T, WT, K, U, MB, decltype(lo)::value>, pl.grid, stream, dy, x, w, dx, partial, p);
            });
          }
          return Launch("backward (BHL fast path)", tuning, BhlBwdFast<T, WT, K, U, MB, -1>, pl.grid, stream, dy, x, w, dx, partial, p);
        });
      });
    }
    // dx: the correlation of dy with reversed taps at offset K-1-pad_lo (may be negative).
    const unsigned blocks = GenericBlocks(d.B * d.L * d.D, kThreads);
    const int64_t lo_dx = d.K - 1 - d.pad_lo;
    if (d.L > 0) {
      std::string e = Launch(
          "backward dx (generic path)", tuning,
          d.layout == kLayoutBLH ? GenericCorr<T, WT, true, true> : GenericCorr<T, WT, false, true>,
          dim3(blocks), stream, dy, w, static_cast<const WT*>(nullptr), dx, d.B, d.D, d.L_out, d.L,
          d.K, lo_dx);
      if (!e.empty()) return e;
    }
    const int64_t entries = pl.P * (d.K + 1) * d.D;
    const bool blh = d.layout == kLayoutBLH;
    return Launch("backward dw (generic path)", tuning, blh ? GenericDwBlh<T> : GenericDwBhl<T>,
                  dim3(GenericBlocks(entries, blh ? kThreads : kWarps)), stream, dy, x, partial,
                  d.B, d.D, d.L, d.L_out, d.K, d.pad_lo, pl.P, pl.chunk);
  });
  if (!err.empty()) return err;
  if (tuning != nullptr && tuning->skip_finalize) return "";
  const int64_t fin_blocks = CeilDiv((d.K + 1) * d.D, 32);
  if (fin_blocks > 2147483647LL) return "jax_flashfft: CUDA depthwise backward: D too large";
  return Launch("backward dw/dbias reduction", tuning, DwFinalize, dim3(unsigned(fin_blocks)),
                stream, static_cast<const float*>(partial), pl.P, d.K, d.D, a.dw, a.dbias);
}

}  // namespace jff
