// Generic CUDA fftconv kernels and their launch sequence. Design notes: generic_fft.h.
#include "fftconv/generic_fft.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace jff {
namespace generic {
namespace {

constexpr int kThreads = 256;
constexpr size_t kDefaultSmem = 48 * 1024;  // dynamic shared memory usable without opting in

enum Mode : int { kKspec = 0, kFwd = 1, kBwd = 2 };

// ---------------------------------------------------------------------------------------------
// Element access: 16-bit types are read as raw bits and widened in registers; all math is fp32.

template <DType D>
struct Io;

template <>
struct Io<DType::kF32> {
  static __device__ __forceinline__ float Load(const void* p, int64_t i) {
    return __ldg(static_cast<const float*>(p) + i);
  }
  static __device__ __forceinline__ void Store(void* p, int64_t i, float v) {
    static_cast<float*>(p)[i] = v;
  }
};

template <>
struct Io<DType::kF16> {
  static __device__ __forceinline__ float Load(const void* p, int64_t i) {
    return __half2float(__ushort_as_half(__ldg(static_cast<const unsigned short*>(p) + i)));
  }
  static __device__ __forceinline__ void Store(void* p, int64_t i, float v) {
    static_cast<unsigned short*>(p)[i] = __half_as_ushort(__float2half_rn(v));
  }
};

template <>
struct Io<DType::kBF16> {
  static __device__ __forceinline__ float Load(const void* p, int64_t i) {
    const unsigned int bits = __ldg(static_cast<const unsigned short*>(p) + i);
    return __uint_as_float(bits << 16);
  }
  static __device__ __forceinline__ void Store(void* p, int64_t i, float v) {
    static_cast<unsigned short*>(p)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
};

struct FwdIo {
  const void* u;
  const void* pre;
  const void* post;
  const float* skip;
  void* y;
};

struct BwdIo {
  const void* dy;
  const void* u;
  const void* pre;
  const void* post;
  const float* skip;
  void* du;
  void* dpre;
  void* dpost;
};

template <DType D>
__device__ __forceinline__ float LoadV(const void* u, const void* pre, int64_t i) {
  const float x = Io<D>::Load(u, i);
  return pre ? x * Io<D>::Load(pre, i) : x;
}

// y = post * (z + skip * v), rounded once.
template <DType D>
__device__ __forceinline__ void StoreFwd(const FwdIo& io, int64_t i, float z, float skip) {
  float out = z;
  if (io.skip) out += skip * LoadV<D>(io.u, io.pre, i);
  if (io.post) out *= Io<D>::Load(io.post, i);
  Io<D>::Store(io.y, i, out);
}

// From corr(dz, k) and z at one time step: du, dpre, dpost (cuda/README.md backward formulas).
template <DType D>
__device__ __forceinline__ void StoreBwd(const BwdIo& io, int64_t i, float corr_dz_k, float z,
                                         float skip) {
  const float dy = Io<D>::Load(io.dy, i);
  const float u = Io<D>::Load(io.u, i);
  const float pre = io.pre ? Io<D>::Load(io.pre, i) : 1.f;
  const float post = io.post ? Io<D>::Load(io.post, i) : 1.f;
  const float dz = dy * post;
  const float dv = corr_dz_k + skip * dz;
  Io<D>::Store(io.du, i, dv * pre);
  if (io.pre) Io<D>::Store(io.dpre, i, dv * u);
  if (io.post) Io<D>::Store(io.dpost, i, dy * (z + skip * u * pre));
}

// ---------------------------------------------------------------------------------------------
// Complex helpers.

__device__ __forceinline__ float2 operator+(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ float2 operator-(float2 a, float2 b) { return make_float2(a.x - b.x, a.y - b.y); }
__device__ __forceinline__ float2 CMul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}
// a * conj(b)
__device__ __forceinline__ float2 CMulConj(float2 a, float2 b) {
  return make_float2(a.x * b.x + a.y * b.y, a.y * b.x - a.x * b.y);
}

// exp(-2 pi i num / 2^log2den) for 0 <= num < 2^log2den <= 2^24. The argument of sincospif,
// num / 2^(log2den - 1), is exact in float, so twiddles stay accurate at every size (no
// accumulated recurrences and no large-argument reduction as with sincosf).
__device__ __forceinline__ float2 Twiddle(int num, int log2den) {
  float s, c;
  sincospif(-ldexpf(static_cast<float>(num), 1 - log2den), &s, &c);
  return make_float2(c, s);
}

__device__ __forceinline__ int BitReverse(int x, int bits) {
  return bits == 0 ? 0 : static_cast<int>(__brev(static_cast<unsigned>(x)) >> (32 - bits));
}

// ---------------------------------------------------------------------------------------------
// Batched FFT in shared memory: `count` transforms of size 2^log2m, element i of transform t at
// s[t * ts + i * es]. Forward = decimation in frequency, natural order in and bit-reversed order
// out, sign -1. Inverse = decimation in time, bit-reversed in and natural out, sign +1, unscaled
// (returns 2^log2m times the inverse DFT). Radix-4 stages, with one radix-2 stage (the trivial
// span-1 butterfly) when log2m is odd. With interleaved transforms (ts == 1) neighbouring threads
// take neighbouring transforms, otherwise neighbouring butterflies, so warps hit consecutive words.
// All threads of the block must call it; it ends with a barrier.
template <bool kInverse>
__device__ void FftShared(float2* s, int log2m, int count, int es, int ts) {
  if (log2m == 0) return;
  const bool interleaved = ts == 1 && count > 1;

  auto radix4 = [&](int lq) {
    const int q = 1 << lq;
    const int per = 1 << (log2m - 2);
    const int total = count * per;
    for (int w = threadIdx.x; w < total; w += blockDim.x) {
      int t, j;
      if (interleaved) {
        t = w % count;
        j = w / count;
      } else {
        t = w >> (log2m - 2);
        j = w & (per - 1);
      }
      const int i = j & (q - 1);
      const int base = ((j >> lq) << (lq + 2)) + i;
      float2* p = s + t * ts + base * es;
      const int st = q * es;
      const float2 x0 = p[0], x1 = p[st], x2 = p[2 * st], x3 = p[3 * st];
      const float2 w1 = Twiddle(i, lq + 2);
      const float2 w2 = CMul(w1, w1);
      const float2 w3 = CMul(w2, w1);
      if (!kInverse) {
        const float2 a = x0 + x2, b = x1 + x3, c = x0 - x2, d = x1 - x3;
        const float2 mid = make_float2(d.y, -d.x);  // -i * d
        p[0] = a + b;
        p[st] = CMul(a - b, w2);
        p[2 * st] = CMul(c + mid, w1);
        p[3 * st] = CMul(c - mid, w3);
      } else {
        const float2 y1 = CMulConj(x1, w2), y3 = CMulConj(x3, w2);
        const float2 a0 = x0 + y1, a1 = x0 - y1, a2 = x2 + y3, a3 = x2 - y3;
        const float2 b2 = CMulConj(a2, w1);
        const float2 c3 = CMulConj(a3, w1);
        const float2 b3 = make_float2(-c3.y, c3.x);  // i * conj(w1) * a3
        p[0] = a0 + b2;
        p[2 * st] = a0 - b2;
        p[st] = a1 + b3;
        p[3 * st] = a1 - b3;
      }
    }
    __syncthreads();
  };

  auto radix2 = [&]() {
    const int per = 1 << (log2m - 1);
    const int total = count * per;
    for (int w = threadIdx.x; w < total; w += blockDim.x) {
      int t, j;
      if (interleaved) {
        t = w % count;
        j = w / count;
      } else {
        t = w >> (log2m - 1);
        j = w & (per - 1);
      }
      float2* p = s + t * ts + 2 * j * es;
      const float2 a = p[0], b = p[es];
      p[0] = a + b;
      p[es] = a - b;
    }
    __syncthreads();
  };

  if (!kInverse) {
    for (int ls = log2m; ls >= 2; ls -= 2) radix4(ls - 2);
    if (log2m & 1) radix2();
  } else {
    if (log2m & 1) radix2();
    for (int ls = 2 + (log2m & 1); ls <= log2m; ls += 2) radix4(ls - 2);
  }
}

// ---------------------------------------------------------------------------------------------
// Pair step. A real length-N row x is transformed as z[m] = x[2m] + i x[2m+1] (length M = N/2).
// With Z = DFT_M(z), tw = exp(-2 pi i k / N):
//   E = (Z[k] + conj Z[M-k]) / 2,  O = (Z[k] - conj Z[M-k]) / 2i,  X[k] = E + tw O,  X[k+M] = E - tw O.
// Pack is the inverse for a real result: Z'[k] = (Y[k] + Y[k+M]) / 2 + i conj(tw) (Y[k] - Y[k+M]) / 2.

__device__ __forceinline__ void Unpack(float2 zk, float2 zmk, float2 tw, float2* x0, float2* x1) {
  const float2 e = make_float2(0.5f * (zk.x + zmk.x), 0.5f * (zk.y - zmk.y));
  const float2 o = make_float2(0.5f * (zk.y + zmk.y), -0.5f * (zk.x - zmk.x));
  const float2 to = CMul(tw, o);
  *x0 = e + to;
  *x1 = e - to;
}

__device__ __forceinline__ float2 Pack(float2 y0, float2 y1, float2 tw) {
  const float2 e = make_float2(0.5f * (y0.x + y1.x), 0.5f * (y0.y + y1.y));
  const float2 o = CMulConj(make_float2(0.5f * (y0.x - y1.x), 0.5f * (y0.y - y1.y)), tw);
  return make_float2(e.x - o.y, e.y + o.x);
}

__device__ __forceinline__ float2 FwdPoint(float2 zk, float2 zmk, float2 tw, float2 ka, float2 kb) {
  float2 x0, x1;
  Unpack(zk, zmk, tw, &x0, &x1);
  return Pack(CMul(x0, ka), CMul(x1, kb), tw);
}

// Backward at one frequency: from the packed spectra of v and dz, the packed spectra of
// corr(dz, k), corr(dz, v) and (when the post gate needs it) z = conv(v, k).
__device__ __forceinline__ void BwdPoint(float2 vk, float2 vm, float2 dk, float2 dm, float2 tw,
                                         float2 ka, float2 kb, bool want_z, float2* q_dv,
                                         float2* q_c, float2* q_z) {
  float2 v0, v1, d0, d1;
  Unpack(vk, vm, tw, &v0, &v1);
  Unpack(dk, dm, tw, &d0, &d1);
  *q_dv = Pack(CMulConj(d0, ka), CMulConj(d1, kb), tw);
  *q_c = Pack(CMulConj(d0, v0), CMulConj(d1, v1), tw);
  if (want_z) *q_z = Pack(CMul(v0, ka), CMul(v1, kb), tw);
}

// ---------------------------------------------------------------------------------------------
// Work items. Rows are enumerated per filter f = g * H + h: the rows of group g are the batch
// indices b_j = ((j / R) * G + g) * R + j % R, j = 0, 1, ... (ascending b). A chunk covers filters
// [f0, f0 + nf) and row numbers [j0, j0 + jc) of each. Within a launch, BHL takes rows of one filter
// consecutively; BLH takes consecutive channels first so neighbouring blocks read neighbouring h.

struct Rows {
  int64_t H, L, G, R, cyc, rem;
  int64_t f0, nf, j0, jc;
  int layout;
};

struct RowRef {
  int64_t base;  // index of the row's element 0; element t is at base + t * stride
  int64_t slot;  // fi * jc + jj: position of the row in the chunk's scratch
  int64_t fi;    // filter index within the chunk
  bool valid;    // false past the end of a group with fewer rows than the chunk
};

__device__ __forceinline__ int64_t GroupRows(const Rows& r, int64_t g) {
  const int64_t part = g > r.rem / r.R ? 0 : min(r.R, r.rem - g * r.R);
  return r.cyc * r.R + part;
}

__device__ __forceinline__ RowRef LocateFJ(const Rows& r, int64_t fi, int64_t jj) {
  RowRef out;
  out.fi = fi;
  out.slot = fi * r.jc + jj;
  const int64_t f = r.f0 + fi;
  const int64_t g = f / r.H, h = f - g * r.H;
  const int64_t j = r.j0 + jj;
  out.valid = j < GroupRows(r, g);
  const int64_t b = ((j / r.R) * r.G + g) * r.R + j % r.R;
  out.base = r.layout == kBHL ? (b * r.H + h) * r.L : b * r.L * r.H + h;
  return out;
}

__device__ __forceinline__ RowRef Locate(const Rows& r, int64_t item) {
  if (r.layout == kBLH) return LocateFJ(r, item % r.nf, item / r.nf);
  return LocateFJ(r, item / r.jc, item % r.jc);
}

// Staged BLH rows: the chunk's rows as contiguous float rows of length L at slot * L. Plane a holds
// v on the way in and z (forward) or corr(dz, k) (backward) on the way out; plane b holds dz and
// then z (backward with a post gate). The stage kernels below do the gating on both sides.
struct Stage {
  float* a;
  float* b;
};

// ---------------------------------------------------------------------------------------------
// Fused kernels (M <= 4096): T transforms per block, interleaved in shared memory (element i of
// transform t at s[i * es + t], es odd so strided accesses spread over banks), followed by the
// per-transform row data.

struct FusedSmem {
  float2* s;
  int64_t* base;
  int64_t* slot;
  int* fi;
  float* skip;
};

__device__ __forceinline__ FusedSmem CarveFused(void* raw, int m, int es, int T) {
  FusedSmem f;
  f.s = static_cast<float2*>(raw);
  f.base = reinterpret_cast<int64_t*>(f.s + static_cast<size_t>(m) * es);
  f.slot = f.base + T;
  f.fi = reinterpret_cast<int*>(f.slot + T);
  f.skip = reinterpret_cast<float*>(f.fi + T);
  return f;
}

__host__ __device__ constexpr size_t FusedSmemBytes(int m, int es, int T) {
  return static_cast<size_t>(m) * es * sizeof(float2) + static_cast<size_t>(T) * (8 + 8 + 4 + 4);
}

__device__ void StageFusedRows(const Rows& rows, const float* skip, int64_t nitems, int T,
                               bool staged, const FusedSmem& sm) {
  for (int t = threadIdx.x; t < T; t += blockDim.x) {
    const int64_t item = static_cast<int64_t>(blockIdx.x) * T + t;
    int fi = -1;
    int64_t base = 0, slot = 0;
    float sk = 0.f;
    if (item < nitems) {
      const RowRef r = Locate(rows, item);
      if (r.valid) {
        fi = static_cast<int>(r.fi);
        base = staged ? r.slot * rows.L : r.base;
        slot = r.slot;
        if (skip) sk = skip[rows.f0 + r.fi];
      }
    }
    sm.base[t] = base;
    sm.slot[t] = slot;
    sm.fi[t] = fi;
    sm.skip[t] = sk;
  }
  __syncthreads();
}

// Thread w -> (transform t, packed index i) for global loads/stores: BHL (and staged) rows are
// contiguous, so neighbouring threads take neighbouring i; in BLH neighbouring transforms are
// neighbouring channels, so neighbouring threads take neighbouring t.
__device__ __forceinline__ void FusedIndex(int w, int layout, int log2m, int T, int* t, int* i) {
  if (layout == kBHL) {
    *t = w >> log2m;
    *i = w & ((1 << log2m) - 1);
  } else {
    *t = w % T;
    *i = w / T;
  }
}

// k's spectrum in the fused kernels' order: plane A (X[k]) then plane B (X[k+M]) per filter, both at
// bit-reversed positions.
__global__ void __launch_bounds__(kThreads)
    FusedKspecKernel(const float* __restrict__ k, int64_t Lk, int64_t f0, int64_t nf,
                     float2* __restrict__ kspec, int log2m, int T, int es) {
  extern __shared__ __align__(16) unsigned char raw[];
  float2* s = reinterpret_cast<float2*>(raw);
  const int m = 1 << log2m;
  const int total = T << log2m;
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int t = w >> log2m, i = w & (m - 1);
    const int64_t fi = static_cast<int64_t>(blockIdx.x) * T + t;
    float2 z = make_float2(0.f, 0.f);
    if (fi < nf) {
      const float* row = k + (f0 + fi) * Lk;
      const int64_t t0 = 2 * static_cast<int64_t>(i);
      if (t0 < Lk) z.x = __ldg(row + t0);
      if (t0 + 1 < Lk) z.y = __ldg(row + t0 + 1);
    }
    s[i * es + t] = z;
  }
  __syncthreads();
  FftShared<false>(s, log2m, T, es, 1);
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int t = w % T, pos = w / T;
    const int64_t fi = static_cast<int64_t>(blockIdx.x) * T + t;
    if (fi >= nf) continue;
    const int kk = BitReverse(pos, log2m);
    const int mk = (m - kk) & (m - 1);
    const int pm = BitReverse(mk, log2m);
    if (pm < pos) continue;
    const float2 zk = s[pos * es + t], zm = s[pm * es + t];
    float2* ka = kspec + fi * 2 * m;
    float2* kb = ka + m;
    float2 x0, x1;
    Unpack(zk, zm, Twiddle(kk, log2m + 1), &x0, &x1);
    ka[pos] = x0;
    kb[pos] = x1;
    if (pm != pos) {
      Unpack(zm, zk, Twiddle(mk, log2m + 1), &x0, &x1);
      ka[pm] = x0;
      kb[pm] = x1;
    }
  }
}

template <DType D, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    FusedFwdKernel(FwdIo io, Stage st, Rows rows, const float2* __restrict__ kspec, int log2m,
                   int T, int es, int64_t nitems) {
  extern __shared__ __align__(16) unsigned char raw[];
  const int m = 1 << log2m;
  const FusedSmem sm = CarveFused(raw, m, es, T);
  float2* s = sm.s;
  StageFusedRows(rows, io.skip, nitems, T, kStaged, sm);
  const int64_t stride = kStaged || rows.layout == kBHL ? 1 : rows.H;
  const int total = T << log2m;

  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    int t, i;
    FusedIndex(w, kStaged ? kBHL : rows.layout, log2m, T, &t, &i);
    float2 z = make_float2(0.f, 0.f);
    if (sm.fi[t] >= 0) {
      const int64_t t0 = 2 * static_cast<int64_t>(i);
      if (kStaged) {
        if (t0 < rows.L) z.x = st.a[sm.base[t] + t0];
        if (t0 + 1 < rows.L) z.y = st.a[sm.base[t] + t0 + 1];
      } else {
        if (t0 < rows.L) z.x = LoadV<D>(io.u, io.pre, sm.base[t] + t0 * stride);
        if (t0 + 1 < rows.L) z.y = LoadV<D>(io.u, io.pre, sm.base[t] + (t0 + 1) * stride);
      }
    }
    s[i * es + t] = z;
  }
  __syncthreads();
  FftShared<false>(s, log2m, T, es, 1);

  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int t = w % T, pos = w / T;
    const int fi = sm.fi[t];
    if (fi < 0) continue;
    const int kk = BitReverse(pos, log2m);
    const int mk = (m - kk) & (m - 1);
    const int pm = BitReverse(mk, log2m);
    if (pm < pos) continue;
    const float2* ka = kspec + static_cast<int64_t>(fi) * 2 * m;
    const float2* kb = ka + m;
    const float2 zk = s[pos * es + t], zm = s[pm * es + t];
    s[pos * es + t] = FwdPoint(zk, zm, Twiddle(kk, log2m + 1), ka[pos], kb[pos]);
    if (pm != pos) s[pm * es + t] = FwdPoint(zm, zk, Twiddle(mk, log2m + 1), ka[pm], kb[pm]);
  }
  __syncthreads();
  FftShared<true>(s, log2m, T, es, 1);

  const float scale = 1.f / static_cast<float>(m);
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    int t, i;
    FusedIndex(w, kStaged ? kBHL : rows.layout, log2m, T, &t, &i);
    if (sm.fi[t] < 0) continue;
    const float2 z = s[i * es + t];
    const int64_t t0 = 2 * static_cast<int64_t>(i);
    if (kStaged) {
      if (t0 < rows.L) st.a[sm.base[t] + t0] = z.x * scale;
      if (t0 + 1 < rows.L) st.a[sm.base[t] + t0 + 1] = z.y * scale;
    } else {
      if (t0 < rows.L) StoreFwd<D>(io, sm.base[t] + t0 * stride, z.x * scale, sm.skip[t]);
      if (t0 + 1 < rows.L) StoreFwd<D>(io, sm.base[t] + (t0 + 1) * stride, z.y * scale, sm.skip[t]);
    }
  }
}

// Planes per transform: 0 = v -> corr(dz, k), 1 = dz -> corr(dz, v), 2 = z (only with a post gate).
// Transform (plane p, row t) is interleaved column p * T + t.
template <DType D, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    FusedBwdKernel(BwdIo io, Stage st, Rows rows, const float2* __restrict__ kspec,
                   float* __restrict__ cpart, int64_t Lk, int log2m, int T, int es,
                   int64_t nitems) {
  extern __shared__ __align__(16) unsigned char raw[];
  const int m = 1 << log2m;
  const FusedSmem sm = CarveFused(raw, m, es, T);
  float2* s = sm.s;
  StageFusedRows(rows, io.skip, nitems, T, kStaged, sm);
  const bool want_z = io.post != nullptr;
  const int64_t stride = kStaged || rows.layout == kBHL ? 1 : rows.H;
  const int total = T << log2m;

  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    int t, i;
    FusedIndex(w, kStaged ? kBHL : rows.layout, log2m, T, &t, &i);
    float2 v = make_float2(0.f, 0.f), dz = make_float2(0.f, 0.f);
    if (sm.fi[t] >= 0) {
      for (int e = 0; e < 2; ++e) {
        const int64_t tau = 2 * static_cast<int64_t>(i) + e;
        if (tau >= rows.L) break;
        const int64_t idx = sm.base[t] + tau * stride;
        float vv, dd;
        if (kStaged) {
          vv = st.a[idx];
          dd = st.b[idx];
        } else {
          vv = LoadV<D>(io.u, io.pre, idx);
          dd = Io<D>::Load(io.dy, idx);
          if (io.post) dd *= Io<D>::Load(io.post, idx);
        }
        if (e == 0) {
          v.x = vv;
          dz.x = dd;
        } else {
          v.y = vv;
          dz.y = dd;
        }
      }
    }
    s[i * es + t] = v;
    s[i * es + T + t] = dz;
  }
  __syncthreads();
  FftShared<false>(s, log2m, 2 * T, es, 1);

  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int t = w % T, pos = w / T;
    const int fi = sm.fi[t];
    if (fi < 0) continue;
    const int kk = BitReverse(pos, log2m);
    const int mk = (m - kk) & (m - 1);
    const int pm = BitReverse(mk, log2m);
    if (pm < pos) continue;
    const float2* ka = kspec + static_cast<int64_t>(fi) * 2 * m;
    const float2* kb = ka + m;
    float2* a = s + pos * es;
    float2* b = s + pm * es;
    const float2 vk = a[t], vm = b[t], dk = a[T + t], dm = b[T + t];
    float2 q_dv, q_c, q_z;
    BwdPoint(vk, vm, dk, dm, Twiddle(kk, log2m + 1), ka[pos], kb[pos], want_z, &q_dv, &q_c, &q_z);
    a[t] = q_dv;
    a[T + t] = q_c;
    if (want_z) a[2 * T + t] = q_z;
    if (pm != pos) {
      BwdPoint(vm, vk, dm, dk, Twiddle(mk, log2m + 1), ka[pm], kb[pm], want_z, &q_dv, &q_c, &q_z);
      b[t] = q_dv;
      b[T + t] = q_c;
      if (want_z) b[2 * T + t] = q_z;
    }
  }
  __syncthreads();
  FftShared<true>(s, log2m, (want_z ? 3 : 2) * T, es, 1);

  const float scale = 1.f / static_cast<float>(m);
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    int t, i;
    FusedIndex(w, kStaged ? kBHL : rows.layout, log2m, T, &t, &i);
    if (sm.fi[t] < 0) continue;
    const float2 dv = s[i * es + t];
    const float2 c = s[i * es + T + t];
    const float2 z = want_z ? s[i * es + 2 * T + t] : make_float2(0.f, 0.f);
    const int64_t t0 = 2 * static_cast<int64_t>(i);
    if (kStaged) {
      float* a = st.a + sm.base[t];
      float* b = st.b + sm.base[t];
      if (t0 < rows.L) {
        a[t0] = dv.x * scale;
        if (want_z) b[t0] = z.x * scale;
      }
      if (t0 + 1 < rows.L) {
        a[t0 + 1] = dv.y * scale;
        if (want_z) b[t0 + 1] = z.y * scale;
      }
    } else {
      if (t0 < rows.L) StoreBwd<D>(io, sm.base[t] + t0 * stride, dv.x * scale, z.x * scale, sm.skip[t]);
      if (t0 + 1 < rows.L) {
        StoreBwd<D>(io, sm.base[t] + (t0 + 1) * stride, dv.y * scale, z.y * scale, sm.skip[t]);
      }
    }
    float* cp = cpart + sm.slot[t] * Lk;
    if (t0 < Lk) cp[t0] = c.x * scale;
    if (t0 + 1 < Lk) cp[t0 + 1] = c.y * scale;
  }
}

// ---------------------------------------------------------------------------------------------
// Four-step kernels (M > 4096). The M-point transform of a row is viewed as Z[n1][n2] = z[n1*N2 + n2];
// the spectrum Z^[k1 + N1*k2] ends up at [brev(k1)][brev(k2)] of the row's scratch plane.

struct Four {
  int log2m, log2n1, log2n2, log2t;
};

// Column pass: T adjacent columns per block (contiguous in the row, so loads and stores coalesce),
// FFT over n1, twiddle exp(-2 pi i k1 n2 / M), store. kKspec reads k and writes plane A of the
// filter's spectrum slot; kFwd reads v; kBwd reads v and dz into planes 0 and 1.
template <DType D, int kMode, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    ColFwdKernel(FwdIo fio, BwdIo bio, Stage st, Rows rows, const float* __restrict__ k,
                 int64_t Lk, float2* __restrict__ buf, int64_t slot_stride, Four g) {
  extern __shared__ __align__(16) unsigned char raw[];
  float2* s = reinterpret_cast<float2*>(raw);
  constexpr int P = kMode == kBwd ? 2 : 1;
  const int n1 = 1 << g.log2n1, n2 = 1 << g.log2n2, T = 1 << g.log2t, m = 1 << g.log2m;
  const int c0 = blockIdx.y * T;
  const int es = P * T;
  int64_t slot, base, stride, len;
  if (kMode == kKspec) {
    slot = blockIdx.x;
    base = (rows.f0 + slot) * Lk;
    stride = 1;
    len = Lk;
  } else {
    const RowRef r = Locate(rows, blockIdx.x);
    if (!r.valid) return;
    slot = r.slot;
    base = kStaged ? r.slot * rows.L : r.base;
    stride = kStaged || rows.layout == kBHL ? 1 : rows.H;
    len = rows.L;
  }
  const int total = n1 * T;
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int tt = w & (T - 1), r1 = w >> g.log2t;
    const int64_t t0 = 2 * (static_cast<int64_t>(r1) * n2 + c0 + tt);
    float2 a = make_float2(0.f, 0.f), b = make_float2(0.f, 0.f);
    for (int e = 0; e < 2; ++e) {
      const int64_t tau = t0 + e;
      if (tau >= len) break;
      const int64_t idx = base + tau * stride;
      float x, y = 0.f;
      if (kMode == kKspec) {
        x = __ldg(k + idx);
      } else if (kStaged) {
        x = st.a[idx];
        if (kMode == kBwd) y = st.b[idx];
      } else if (kMode == kFwd) {
        x = LoadV<D>(fio.u, fio.pre, idx);
      } else {
        x = LoadV<D>(bio.u, bio.pre, idx);
        y = Io<D>::Load(bio.dy, idx);
        if (bio.post) y *= Io<D>::Load(bio.post, idx);
      }
      if (e == 0) {
        a.x = x;
        b.x = y;
      } else {
        a.y = x;
        b.y = y;
      }
    }
    s[r1 * es + tt] = a;
    if (P == 2) s[r1 * es + T + tt] = b;
  }
  __syncthreads();
  FftShared<false>(s, g.log2n1, P * T, es, 1);
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int tt = w & (T - 1), pos = w >> g.log2t;
    const int c = c0 + tt;
    const float2 tw = Twiddle(BitReverse(pos, g.log2n1) * c, g.log2m);
    float2* out = buf + slot * slot_stride + static_cast<int64_t>(pos) * n2 + c;
    for (int p = 0; p < P; ++p) out[static_cast<int64_t>(p) * m] = CMul(s[pos * es + p * T + tt], tw);
  }
}

// Row pass: block (item, p) owns the rows with k1 = p and N1 - p (p = 0: k1 = 0 and N1/2), which
// is every pair (k, M - k) the pair step couples. FFT over n2, pair step, inverse FFT over n2.
// kKspec writes planes A and B of the filter's spectrum instead of transforming back.
template <int kMode>
__global__ void __launch_bounds__(kThreads)
    RowKernel(float2* __restrict__ buf, int64_t slot_stride, const float2* __restrict__ kspec,
              Rows rows, Four g, bool want_z) {
  extern __shared__ __align__(16) unsigned char raw[];
  float2* s = reinterpret_cast<float2*>(raw);
  const int n1 = 1 << g.log2n1, n2 = 1 << g.log2n2, m = 1 << g.log2m;
  int64_t slot, fi;
  if (kMode == kKspec) {
    slot = fi = blockIdx.x;
  } else {
    const RowRef r = Locate(rows, blockIdx.x);
    if (!r.valid) return;
    slot = r.slot;
    fi = r.fi;
  }
  const int p = blockIdx.y;
  const int ka1 = p, kb1 = p == 0 ? n1 / 2 : n1 - p;
  const int rowpos[2] = {BitReverse(ka1, g.log2n1), BitReverse(kb1, g.log2n1)};
  const int pin = kMode == kBwd ? 2 : 1;
  const int pout = kMode == kBwd ? (want_z ? 3 : 2) : 1;
  float2* row_base = buf + slot * slot_stride;

  for (int w = threadIdx.x; w < pin * 2 * n2; w += blockDim.x) {
    const int i = w & (n2 - 1), tr = w >> g.log2n2;
    const int plane = tr >> 1, r = tr & 1;
    s[w] = row_base[static_cast<int64_t>(plane) * m + static_cast<int64_t>(rowpos[r]) * n2 + i];
  }
  __syncthreads();
  FftShared<false>(s, g.log2n2, pin * 2, 1, n2);

  const float2* ka = kspec + fi * 2 * m;
  const float2* kb = ka + m;
  for (int e = threadIdx.x; e < 2 * n2; e += blockDim.x) {
    const int r = e >> g.log2n2, c = e & (n2 - 1);
    const int k1 = r ? kb1 : ka1;
    const int k2 = BitReverse(c, g.log2n2);
    const int k1p = (n1 - k1) & (n1 - 1);
    const int k2p = k1 == 0 ? (n2 - k2) & (n2 - 1) : n2 - 1 - k2;
    const int rp = k1p == ka1 ? 0 : 1;
    const int cp = BitReverse(k2p, g.log2n2);
    const int ep = rp * n2 + cp;
    if (ep < e) continue;
    const int kk = k1 + n1 * k2, km = k1p + n1 * k2p;
    const int64_t gk = static_cast<int64_t>(rowpos[r]) * n2 + c;
    const int64_t gm = static_cast<int64_t>(rowpos[rp]) * n2 + cp;
    const float2 twk = Twiddle(kk, g.log2m + 1), twm = Twiddle(km, g.log2m + 1);
    if (kMode == kKspec) {
      const float2 zk = s[e], zm = s[ep];
      float2 x0, x1;
      Unpack(zk, zm, twk, &x0, &x1);
      row_base[gk] = x0;
      row_base[m + gk] = x1;
      if (ep != e) {
        Unpack(zm, zk, twm, &x0, &x1);
        row_base[gm] = x0;
        row_base[m + gm] = x1;
      }
    } else if (kMode == kFwd) {
      const float2 zk = s[e], zm = s[ep];
      s[e] = FwdPoint(zk, zm, twk, ka[gk], kb[gk]);
      if (ep != e) s[ep] = FwdPoint(zm, zk, twm, ka[gm], kb[gm]);
    } else {
      float2* pv = s;
      float2* pd = s + 2 * n2;
      float2* pz = s + 4 * n2;
      const float2 vk = pv[e], vm = pv[ep], dk = pd[e], dm = pd[ep];
      float2 q_dv, q_c, q_z;
      BwdPoint(vk, vm, dk, dm, twk, ka[gk], kb[gk], want_z, &q_dv, &q_c, &q_z);
      pv[e] = q_dv;
      pd[e] = q_c;
      if (want_z) pz[e] = q_z;
      if (ep != e) {
        BwdPoint(vm, vk, dm, dk, twm, ka[gm], kb[gm], want_z, &q_dv, &q_c, &q_z);
        pv[ep] = q_dv;
        pd[ep] = q_c;
        if (want_z) pz[ep] = q_z;
      }
    }
  }
  if (kMode == kKspec) return;
  __syncthreads();
  FftShared<true>(s, g.log2n2, pout * 2, 1, n2);
  for (int w = threadIdx.x; w < pout * 2 * n2; w += blockDim.x) {
    const int i = w & (n2 - 1), tr = w >> g.log2n2;
    const int plane = tr >> 1, r = tr & 1;
    row_base[static_cast<int64_t>(plane) * m + static_cast<int64_t>(rowpos[r]) * n2 + i] = s[w];
  }
}

// Inverse column pass with the epilogue: conjugate twiddle, inverse FFT over k1, then outputs at
// times 2m and 2m+1 of m = n1 * N2 + n2.
template <DType D, int kMode, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    ColInvKernel(FwdIo fio, BwdIo bio, Stage st, Rows rows, const float2* __restrict__ buf,
                 int64_t slot_stride, const float* __restrict__ skip, float* __restrict__ cpart,
                 int64_t Lk, Four g, bool want_z) {
  extern __shared__ __align__(16) unsigned char raw[];
  float2* s = reinterpret_cast<float2*>(raw);
  const int P = kMode == kBwd ? (want_z ? 3 : 2) : 1;
  const int n1 = 1 << g.log2n1, n2 = 1 << g.log2n2, T = 1 << g.log2t, m = 1 << g.log2m;
  const int c0 = blockIdx.y * T;
  const int es = P * T;
  const RowRef r = Locate(rows, blockIdx.x);
  if (!r.valid) return;
  const int64_t stride = rows.layout == kBHL ? 1 : rows.H;
  const int64_t staged_base = r.slot * rows.L;
  const float sk = skip ? skip[rows.f0 + r.fi] : 0.f;
  const float2* row_base = buf + r.slot * slot_stride;
  const int total = n1 * T;
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int tt = w & (T - 1), pos = w >> g.log2t;
    const int c = c0 + tt;
    const float2 tw = Twiddle(BitReverse(pos, g.log2n1) * c, g.log2m);
    const float2* in = row_base + static_cast<int64_t>(pos) * n2 + c;
    for (int p = 0; p < P; ++p) s[pos * es + p * T + tt] = CMulConj(in[static_cast<int64_t>(p) * m], tw);
  }
  __syncthreads();
  FftShared<true>(s, g.log2n1, P * T, es, 1);
  const float scale = 1.f / static_cast<float>(m);
  for (int w = threadIdx.x; w < total; w += blockDim.x) {
    const int tt = w & (T - 1), r1 = w >> g.log2t;
    const int64_t t0 = 2 * (static_cast<int64_t>(r1) * n2 + c0 + tt);
    const float2 a = s[r1 * es + tt];
    if (kMode == kFwd) {
      if (kStaged) {
        if (t0 < rows.L) st.a[staged_base + t0] = a.x * scale;
        if (t0 + 1 < rows.L) st.a[staged_base + t0 + 1] = a.y * scale;
      } else {
        if (t0 < rows.L) StoreFwd<D>(fio, r.base + t0 * stride, a.x * scale, sk);
        if (t0 + 1 < rows.L) StoreFwd<D>(fio, r.base + (t0 + 1) * stride, a.y * scale, sk);
      }
    } else {
      const float2 c = s[r1 * es + T + tt];
      const float2 z = want_z ? s[r1 * es + 2 * T + tt] : make_float2(0.f, 0.f);
      if (kStaged) {
        for (int e = 0; e < 2; ++e) {
          if (t0 + e >= rows.L) break;
          st.a[staged_base + t0 + e] = (e ? a.y : a.x) * scale;
          if (want_z) st.b[staged_base + t0 + e] = (e ? z.y : z.x) * scale;
        }
      } else {
        if (t0 < rows.L) StoreBwd<D>(bio, r.base + t0 * stride, a.x * scale, z.x * scale, sk);
        if (t0 + 1 < rows.L) StoreBwd<D>(bio, r.base + (t0 + 1) * stride, a.y * scale, z.y * scale, sk);
      }
      float* cp = cpart + r.slot * Lk;
      if (t0 < Lk) cp[t0] = c.x * scale;
      if (t0 + 1 < Lk) cp[t0 + 1] = c.y * scale;
    }
  }
}

// BLH staging. One block moves a tile of 32 times x 32 filters of one row number jj between the
// activations (neighbouring channels are neighbouring addresses) and the staged rows (neighbouring
// times are neighbouring addresses) through shared memory, so both sides coalesce.
// In: v = pre * u into plane a and (backward) dz = post * dy into plane b. Out: the epilogue
// (y, or du / dpre / dpost) from the kernels' raw results.
struct StageSmem {
  int64_t base[32], slot[32];
  float ta[32][33], tb[32][33];
  float sk[32];
  bool valid[32];
};

struct StageTile {
  int64_t t0, fi0, jj;
  int tx, ty;
};

__device__ __forceinline__ StageTile TileOf(int64_t t_tiles, int64_t f_tiles) {
  StageTile s;
  const int64_t bx = blockIdx.x;
  s.t0 = (bx % t_tiles) * 32;
  s.fi0 = (bx / t_tiles % f_tiles) * 32;
  s.jj = bx / t_tiles / f_tiles;
  s.tx = threadIdx.x & 31;
  s.ty = threadIdx.x >> 5;
  return s;
}

// Rows of the tile's 32 filters: activation base, staged slot, skip; valid = -1 marks absent rows.
__device__ __forceinline__ void TileRows(const Rows& rows, const StageTile& s, const float* skip,
                                         int64_t* base, int64_t* slot, float* sk, bool* valid) {
  if (threadIdx.x < 32) {
    const int64_t fi = s.fi0 + threadIdx.x;
    bool ok = fi < rows.nf;
    if (ok) {
      const RowRef r = LocateFJ(rows, fi, s.jj);
      ok = r.valid;
      base[threadIdx.x] = r.base;
      slot[threadIdx.x] = r.slot;
      sk[threadIdx.x] = skip ? skip[rows.f0 + fi] : 0.f;
    }
    valid[threadIdx.x] = ok;
  }
  __syncthreads();
}

template <DType D, bool kBwd>
__global__ void __launch_bounds__(kThreads)
    StageInKernel(FwdIo fio, BwdIo bio, Stage st, Rows rows, int64_t t_tiles, int64_t f_tiles) {
  extern __shared__ __align__(16) unsigned char raw[];
  StageSmem& sm = *reinterpret_cast<StageSmem*>(raw);
  auto& ta = sm.ta;
  auto& tb = sm.tb;
  int64_t* base = sm.base;
  int64_t* slot = sm.slot;
  float* sk = sm.sk;
  bool* valid = sm.valid;
  const StageTile s = TileOf(t_tiles, f_tiles);
  TileRows(rows, s, nullptr, base, slot, sk, valid);
  const int64_t H = rows.H;
  for (int r = s.ty; r < 32; r += kThreads / 32) {
    const int64_t t = s.t0 + r;
    if (!valid[s.tx] || t >= rows.L) continue;
    const int64_t idx = base[s.tx] + t * H;
    if (kBwd) {
      ta[r][s.tx] = LoadV<D>(bio.u, bio.pre, idx);
      float dz = Io<D>::Load(bio.dy, idx);
      if (bio.post) dz *= Io<D>::Load(bio.post, idx);
      tb[r][s.tx] = dz;
    } else {
      ta[r][s.tx] = LoadV<D>(fio.u, fio.pre, idx);
    }
  }
  __syncthreads();
  for (int r = s.ty; r < 32; r += kThreads / 32) {
    const int64_t t = s.t0 + s.tx;
    if (!valid[r] || t >= rows.L) continue;
    const int64_t o = slot[r] * rows.L + t;
    st.a[o] = ta[s.tx][r];
    if (kBwd) st.b[o] = tb[s.tx][r];
  }
}

template <DType D, bool kBwd>
__global__ void __launch_bounds__(kThreads)
    StageOutKernel(FwdIo fio, BwdIo bio, Stage st, Rows rows, int64_t t_tiles, int64_t f_tiles) {
  extern __shared__ __align__(16) unsigned char raw[];
  StageSmem& sm = *reinterpret_cast<StageSmem*>(raw);
  auto& ta = sm.ta;
  auto& tb = sm.tb;
  int64_t* base = sm.base;
  int64_t* slot = sm.slot;
  float* sk = sm.sk;
  bool* valid = sm.valid;
  const StageTile s = TileOf(t_tiles, f_tiles);
  TileRows(rows, s, kBwd ? bio.skip : fio.skip, base, slot, sk, valid);
  const bool want_z = kBwd && bio.post != nullptr;
  for (int r = s.ty; r < 32; r += kThreads / 32) {
    const int64_t t = s.t0 + s.tx;
    if (!valid[r] || t >= rows.L) continue;
    const int64_t o = slot[r] * rows.L + t;
    ta[s.tx][r] = st.a[o];
    tb[s.tx][r] = want_z ? st.b[o] : 0.f;
  }
  __syncthreads();
  const int64_t H = rows.H;
  for (int r = s.ty; r < 32; r += kThreads / 32) {
    const int64_t t = s.t0 + r;
    if (!valid[s.tx] || t >= rows.L) continue;
    const int64_t idx = base[s.tx] + t * H;
    if (kBwd) {
      StoreBwd<D>(bio, idx, ta[r][s.tx], tb[r][s.tx], sk[s.tx]);
    } else {
      StoreFwd<D>(fio, idx, ta[r][s.tx], sk[s.tx]);
    }
  }
}

// dk[f, tau] (+)= sum over the chunk's rows of filter f, in ascending row order, starting from 0 in
// the first row chunk. A single thread owns each (f, tau), so the order of the float additions is
// the plain batch order whatever the chunking. dk[f, 0] is exactly dskip[f]'s sum.
__global__ void __launch_bounds__(kThreads)
    ReduceDkKernel(const float* __restrict__ cpart, float* __restrict__ dk,
                   float* __restrict__ dskip, Rows rows, int64_t Lk) {
  const int64_t fi = blockIdx.x;
  const int64_t f = rows.f0 + fi;
  const int64_t g = f / rows.H;
  const int64_t jend = min(rows.j0 + rows.jc, GroupRows(rows, g));
  for (int64_t tau = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; tau < Lk;
       tau += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    float acc = rows.j0 == 0 ? 0.f : dk[f * Lk + tau];
    for (int64_t j = rows.j0; j < jend; ++j) acc += cpart[(fi * rows.jc + (j - rows.j0)) * Lk + tau];
    dk[f * Lk + tau] = acc;
    if (tau == 0 && dskip) dskip[f] = acc;
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

ffi::Error CudaError(const char* what, cudaError_t e) {
  return ffi::Error(ffi::ErrorCode::kInternal, std::string("jax_flashfft: fftconv (CUDA) ") + what +
                                                   ": " + cudaGetErrorString(e));
}

template <typename... KArgs, typename... Args>
ffi::Error Launch(const char* name, void (*kernel)(KArgs...), dim3 grid, size_t smem,
                  cudaStream_t stream, Args... args) {
  if (smem > kDefaultSmem) {
    const cudaError_t e =
        cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                             cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return CudaError(name, e);
  }
#ifdef JFF_GENERIC_HOST_EMULATION
  // generic_selftest.cu can run these kernels on the CPU (one fiber per thread) for development
  // on machines without a GPU.
  (void)stream;
  JffEmuLaunch(kernel, grid, smem, kThreads, static_cast<KArgs>(args)...);
#else
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<KArgs>(args)...);
#endif
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return CudaError(name, e);
  return ffi::Error::Success();
}

int Log2(int64_t x) {
  int l = 0;
  while ((int64_t{1} << l) < x) ++l;
  return l;
}

size_t Align256(size_t x) { return (x + 255) & ~size_t{255}; }

int FusedEs(int planes, int T) { return (planes * T) | 1; }

Rows BaseRows(const FftconvDims& d, const Plan& p) {
  Rows r;
  r.H = d.H;
  r.L = d.L;
  r.G = d.G;
  r.R = p.R;
  r.cyc = p.cyc;
  r.rem = p.rem;
  r.f0 = 0;
  r.nf = 0;
  r.j0 = 0;
  r.jc = 0;
  r.layout = d.layout;
  return r;
}

Four FourGeom(const Plan& p) {
  Four g;
  g.log2m = p.log2m;
  g.log2n1 = p.log2n1;
  g.log2n2 = p.log2n2;
  g.log2t = Log2(p.col_t);
  return g;
}

struct ScratchParts {
  float2* kspec;
  float2* rows;
  float* cpart;
  Stage stage;
};

ScratchParts Carve(const Plan& p, void* scratch) {
  auto* bytes = static_cast<unsigned char*>(scratch);
  ScratchParts s;
  s.kspec = reinterpret_cast<float2*>(bytes);
  s.rows = reinterpret_cast<float2*>(bytes + p.kspec_bytes);
  s.cpart = reinterpret_cast<float*>(bytes + p.kspec_bytes + p.rows_bytes);
  unsigned char* stage = bytes + p.kspec_bytes + p.rows_bytes + p.cpart_bytes;
  s.stage.a = p.staged ? reinterpret_cast<float*>(stage) : nullptr;
  s.stage.b = p.staged && p.bwd ? reinterpret_cast<float*>(stage + p.stage_bytes / 2) : nullptr;
  return s;
}

// k's spectra of filters [f0, f0 + nf) into s.kspec.
ffi::Error LaunchKspec(const float* k, int64_t Lk, const Plan& p, const Rows& rows, int64_t f0,
                       int64_t nf, const ScratchParts& s, cudaStream_t stream) {
  const int m = 1 << p.log2m;
  if (p.fused) {
    const int T = p.fused_t;
    const int64_t blocks = (nf + T - 1) / T;
    return Launch("k spectrum (fused)", FusedKspecKernel, dim3(static_cast<unsigned>(blocks)),
                  p.kfused_smem, stream, k, Lk, f0, nf, s.kspec, p.log2m, T, FusedEs(1, T));
  }
  const Four g = FourGeom(p);
  Rows kr = rows;
  kr.f0 = f0;
  const FwdIo fio{};
  const BwdIo bio{};
  const dim3 col_grid(static_cast<unsigned>(nf), static_cast<unsigned>((1 << p.log2n2) / p.col_t));
  JFF_RETURN_IF_ERROR(Launch("k spectrum (columns)", ColFwdKernel<DType::kF32, kKspec, false>,
                             col_grid, size_t(p.col_t) * (size_t(1) << p.log2n1) * sizeof(float2),
                             stream, fio, bio, Stage{}, kr, k, Lk, s.kspec, int64_t{2} * m, g));
  const dim3 row_grid(static_cast<unsigned>(nf), static_cast<unsigned>((1 << p.log2n1) / 2));
  return Launch("k spectrum (rows)", RowKernel<kKspec>, row_grid,
                size_t(2) * (size_t(1) << p.log2n2) * sizeof(float2), stream, s.kspec,
                int64_t{2} * m, static_cast<const float2*>(s.kspec), kr, g, false);
}

// Stage kernels' grid for a chunk: one block per 32 x 32 tile of (time, filter) per row number.
dim3 StageGrid(const Rows& rows, int64_t* t_tiles, int64_t* f_tiles) {
  *t_tiles = (rows.L + 31) / 32;
  *f_tiles = (rows.nf + 31) / 32;
  return dim3(static_cast<unsigned>(*t_tiles * *f_tiles * rows.jc));
}

// The chunk's forward from staged rows or straight from the activations.
template <DType D, bool kStaged>
ffi::Error FwdChunk(const FftconvFwdArgs& a, const Plan& p, const ScratchParts& s,
                    const Rows& rows, cudaStream_t stream) {
  const FwdIo fio{a.u, a.pre, a.post, a.skip, a.y};
  const BwdIo bio{};
  const int64_t nitems = rows.nf * rows.jc;
  if (p.fused) {
    const int T = p.fused_t;
    const int64_t blocks = (nitems + T - 1) / T;
    return Launch("forward (fused)", FusedFwdKernel<D, kStaged>, dim3(static_cast<unsigned>(blocks)),
                  p.fused_smem, stream, fio, s.stage, rows, static_cast<const float2*>(s.kspec),
                  p.log2m, T, FusedEs(1, T), nitems);
  }
  const Four g = FourGeom(p);
  const int64_t stride = int64_t{1} << p.log2m;
  const dim3 col_grid(static_cast<unsigned>(nitems), static_cast<unsigned>((1 << p.log2n2) / p.col_t));
  const dim3 row_grid(static_cast<unsigned>(nitems), static_cast<unsigned>((1 << p.log2n1) / 2));
  JFF_RETURN_IF_ERROR(Launch("forward (columns)", ColFwdKernel<D, kFwd, kStaged>, col_grid,
                             p.col_smem, stream, fio, bio, s.stage, rows, a.k, a.d.Lk, s.rows,
                             stride, g));
  JFF_RETURN_IF_ERROR(Launch("forward (rows)", RowKernel<kFwd>, row_grid, p.row_smem, stream, s.rows,
                             stride, static_cast<const float2*>(s.kspec), rows, g, false));
  return Launch("forward (inverse columns)", ColInvKernel<D, kFwd, kStaged>, col_grid, p.col_smem,
                stream, fio, bio, s.stage, rows, static_cast<const float2*>(s.rows), stride, a.skip,
                s.cpart, a.d.Lk, g, false);
}

template <DType D, bool kStaged>
ffi::Error BwdChunk(const FftconvBwdArgs& a, const Plan& p, const ScratchParts& s,
                    const Rows& rows, cudaStream_t stream) {
  const FwdIo fio{};
  const BwdIo bio{a.dy, a.u, a.pre, a.post, a.skip, a.du, a.dpre, a.dpost};
  const bool want_z = a.post != nullptr;
  const int64_t nitems = rows.nf * rows.jc;
  if (p.fused) {
    const int T = p.fused_t;
    const int64_t blocks = (nitems + T - 1) / T;
    return Launch("backward (fused)", FusedBwdKernel<D, kStaged>,
                  dim3(static_cast<unsigned>(blocks)), p.fused_smem, stream, bio, s.stage, rows,
                  static_cast<const float2*>(s.kspec), s.cpart, a.d.Lk, p.log2m, T,
                  FusedEs(p.planes, T), nitems);
  }
  const Four g = FourGeom(p);
  const int64_t stride = int64_t{p.planes} << p.log2m;
  const dim3 col_grid(static_cast<unsigned>(nitems), static_cast<unsigned>((1 << p.log2n2) / p.col_t));
  const dim3 row_grid(static_cast<unsigned>(nitems), static_cast<unsigned>((1 << p.log2n1) / 2));
  JFF_RETURN_IF_ERROR(Launch("backward (columns)", ColFwdKernel<D, kBwd, kStaged>, col_grid,
                             p.col_smem, stream, fio, bio, s.stage, rows, a.k, a.d.Lk, s.rows,
                             stride, g));
  JFF_RETURN_IF_ERROR(Launch("backward (rows)", RowKernel<kBwd>, row_grid, p.row_smem, stream,
                             s.rows, stride, static_cast<const float2*>(s.kspec), rows, g, want_z));
  return Launch("backward (inverse columns)", ColInvKernel<D, kBwd, kStaged>, col_grid, p.col_smem,
                stream, fio, bio, s.stage, rows, static_cast<const float2*>(s.rows), stride, a.skip,
                s.cpart, a.d.Lk, g, want_z);
}

Rows ChunkRows(const Rows& base, const Plan& p, int64_t f0, int64_t j0) {
  Rows rows = base;
  rows.f0 = f0;
  rows.nf = std::min(p.nf, p.filters - f0);
  rows.j0 = j0;
  rows.jc = std::min(p.jc, p.rows_max - j0);
  return rows;
}

template <DType D>
ffi::Error RunFwdTyped(const FftconvFwdArgs& a, const Plan& p, void* scratch, cudaStream_t stream) {
  const ScratchParts s = Carve(p, scratch);
  const Rows base = BaseRows(a.d, p);
  const FwdIo fio{a.u, a.pre, a.post, a.skip, a.y};
  for (int64_t f0 = 0; f0 < p.filters; f0 += p.nf) {
    JFF_RETURN_IF_ERROR(LaunchKspec(a.k, a.d.Lk, p, base, f0, std::min(p.nf, p.filters - f0), s, stream));
    for (int64_t j0 = 0; j0 < p.rows_max; j0 += p.jc) {
      const Rows rows = ChunkRows(base, p, f0, j0);
      if (!p.staged) {
        JFF_RETURN_IF_ERROR((FwdChunk<D, false>(a, p, s, rows, stream)));
        continue;
      }
      int64_t tt, ft;
      const dim3 grid = StageGrid(rows, &tt, &ft);
      JFF_RETURN_IF_ERROR(Launch("forward (stage in)", StageInKernel<D, false>, grid, sizeof(StageSmem), stream, fio,
                                 BwdIo{}, s.stage, rows, tt, ft));
      JFF_RETURN_IF_ERROR((FwdChunk<D, true>(a, p, s, rows, stream)));
      JFF_RETURN_IF_ERROR(Launch("forward (stage out)", StageOutKernel<D, false>, grid, sizeof(StageSmem), stream,
                                 fio, BwdIo{}, s.stage, rows, tt, ft));
    }
  }
  return ffi::Error::Success();
}

template <DType D>
ffi::Error RunBwdTyped(const FftconvBwdArgs& a, const Plan& p, void* scratch, cudaStream_t stream) {
  const ScratchParts s = Carve(p, scratch);
  const Rows base = BaseRows(a.d, p);
  const BwdIo bio{a.dy, a.u, a.pre, a.post, a.skip, a.du, a.dpre, a.dpost};
  for (int64_t f0 = 0; f0 < p.filters; f0 += p.nf) {
    const int64_t nf = std::min(p.nf, p.filters - f0);
    JFF_RETURN_IF_ERROR(LaunchKspec(a.k, a.d.Lk, p, base, f0, nf, s, stream));
    for (int64_t j0 = 0; j0 < p.rows_max; j0 += p.jc) {
      const Rows rows = ChunkRows(base, p, f0, j0);
      if (!p.staged) {
        JFF_RETURN_IF_ERROR((BwdChunk<D, false>(a, p, s, rows, stream)));
      } else {
        int64_t tt, ft;
        const dim3 grid = StageGrid(rows, &tt, &ft);
        JFF_RETURN_IF_ERROR(Launch("backward (stage in)", StageInKernel<D, true>, grid, sizeof(StageSmem), stream,
                                   FwdIo{}, bio, s.stage, rows, tt, ft));
        JFF_RETURN_IF_ERROR((BwdChunk<D, true>(a, p, s, rows, stream)));
        JFF_RETURN_IF_ERROR(Launch("backward (stage out)", StageOutKernel<D, true>, grid, sizeof(StageSmem), stream,
                                   FwdIo{}, bio, s.stage, rows, tt, ft));
      }
      const int64_t ty = std::min<int64_t>((a.d.Lk + kThreads - 1) / kThreads, 65535);
      JFF_RETURN_IF_ERROR(Launch("dk reduction", ReduceDkKernel,
                                 dim3(static_cast<unsigned>(nf), static_cast<unsigned>(ty)), 0,
                                 stream, static_cast<const float*>(s.cpart), a.dk, a.dskip, rows,
                                 a.d.Lk));
    }
  }
  return ffi::Error::Success();
}

}  // namespace

ffi::Error MakePlan(const FftconvDims& d, bool bwd, bool has_post, const DeviceProps& props,
                    const PlanOptions& opts, Plan* plan) {
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.G < 1 || d.Lk < 1 || d.R < 1) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "jax_flashfft: fftconv (CUDA) planned with an empty problem");
  }
  Plan q;
  q.bwd = bwd;
  q.has_post = bwd && has_post;
  q.log2n = std::max(1, Log2(d.N));
  q.log2m = q.log2n - 1;
  q.planes = bwd ? (has_post ? 3 : 2) : 1;
  const int64_t m = int64_t{1} << q.log2m;
  const size_t optin = std::max(props.smem_optin, kDefaultSmem);

  // Rows per group in O(1): with R clamped to B (b / R is the same for every b < B), whole cycles of
  // R * G rows give each group R rows, the remainder fills groups from 0.
  q.R = std::min(d.R, d.B);
  if (q.R > d.B / d.G) {
    q.cyc = 0;
    q.rem = d.B;
  } else {
    q.cyc = d.B / (q.R * d.G);
    q.rem = d.B % (q.R * d.G);
  }
  q.rows_max = q.cyc * q.R + std::min(q.R, q.rem);
  q.filters = d.G * d.H;

  // Fused path: enough transforms per block that small sizes still fill 256 threads.
  q.fused_t = std::max(1, (bwd ? 512 : 1024) >> q.log2m);
  q.fused_smem = FusedSmemBytes(static_cast<int>(m), FusedEs(q.planes, q.fused_t), q.fused_t);
  q.kfused_smem = FusedSmemBytes(static_cast<int>(m), FusedEs(1, q.fused_t), q.fused_t);
  q.fused = q.log2m == 0 || (q.log2m <= opts.max_fused_log2m && q.fused_smem <= optin &&
                             q.kfused_smem <= optin);
  if (!q.fused) {
    // Row pass holds two rows of every plane; keep it <= 96 KiB so two blocks fit an SM where possible.
    const size_t row_cap = std::min(optin, size_t(96) << 10);
    auto row_bytes = [&](int l2) { return size_t(2) * q.planes * (size_t(1) << l2) * sizeof(float2); };
    int l2 = std::max(0, std::min(opts.max_log2n2, q.log2m - 1));
    while (l2 > 0 && row_bytes(l2) > row_cap) --l2;
    q.log2n2 = l2;
    q.log2n1 = q.log2m - l2;
    auto col_bytes = [&](int t) {
      return size_t(t) * q.planes * (size_t(1) << q.log2n1) * sizeof(float2);
    };
    if (col_bytes(1) > optin || row_bytes(l2) > optin) {
      return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                        "jax_flashfft: fftconv (CUDA) fft_size " + std::to_string(d.N) +
                            " needs more shared memory per block than this device offers (" +
                            std::to_string(optin) + " bytes)");
    }
    int t = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(4096 >> std::min(q.log2n1, 12),
                                                                     int64_t{1} << q.log2n2)));
    while (t > 1 && col_bytes(t) > optin) t /= 2;
    q.col_t = t;
    q.col_smem = col_bytes(t);
    q.row_smem = row_bytes(l2);
  }

  // Chunking: all filters and rows at once when they fit the budget; otherwise split the budget
  // between filter spectra and rows (at least one filter and one row per chunk).
  const double per_filter = 2.0 * m * sizeof(float2);
  // BLH rows are strided by H; staging them as contiguous float rows (one plane forward, two
  // backward) lets every load and store coalesce. A row of length L is already contiguous for H = 1.
  q.staged = opts.stage_blh && d.layout == kBLH && d.H > 1;
  const double per_row = (q.fused ? 0.0 : double(q.planes) * m * sizeof(float2)) +
                         (bwd ? double(d.Lk) * sizeof(float) : 0.0) +
                         (q.staged ? double(bwd ? 2 : 1) * d.L * sizeof(float) : 0.0);
  const double budget = static_cast<double>(opts.scratch_budget);
  auto need = [&](double nf, double jc) { return nf * per_filter + nf * jc * per_row; };
  auto rows_for = [&](int64_t nf) -> int64_t {
    if (per_row == 0.0) return q.rows_max;
    const double room = budget - nf * per_filter;
    const double jc = room > 0 ? std::floor(room / (nf * per_row)) : 1.0;
    return static_cast<int64_t>(std::max(1.0, std::min(jc, double(q.rows_max))));
  };
  int64_t nf = q.filters, jc = q.rows_max;
  if (need(double(nf), double(jc)) > budget) {
    nf = static_cast<int64_t>(std::max(1.0, std::min(std::floor(budget / 2 / per_filter),
                                                       double(q.filters))));
    jc = rows_for(nf);
    while (nf > 1 && need(double(nf), double(jc)) > budget) {
      nf = (nf + 1) / 2;
      jc = rows_for(nf);
    }
  }
  // Keep every grid dimension and item index comfortably inside 32 bits.
  const int64_t kMaxItems = int64_t{1} << 30;
  nf = std::min(nf, kMaxItems);
  if (nf * jc > kMaxItems) jc = std::max<int64_t>(1, kMaxItems / nf);
  q.nf = nf;
  q.jc = jc;
  q.kspec_bytes = Align256(size_t(nf) * 2 * size_t(m) * sizeof(float2));
  q.rows_bytes = q.fused ? 0 : Align256(size_t(nf) * size_t(jc) * q.planes * size_t(m) * sizeof(float2));
  q.cpart_bytes = bwd ? Align256(size_t(nf) * size_t(jc) * size_t(d.Lk) * sizeof(float)) : 0;
  q.stage_bytes = q.staged ? 2 * Align256(size_t(nf) * size_t(jc) * size_t(d.L) * sizeof(float)) : 0;
  if (q.staged && !bwd) q.stage_bytes /= 2;
  q.scratch_bytes = q.kspec_bytes + q.rows_bytes + q.cpart_bytes + q.stage_bytes;
  *plan = q;
  return ffi::Error::Success();
}

ffi::Error RunFwd(const FftconvFwdArgs& a, const Plan& plan, void* scratch, cudaStream_t stream) {
  switch (a.d.dtype) {
    case DType::kF16: return RunFwdTyped<DType::kF16>(a, plan, scratch, stream);
    case DType::kBF16: return RunFwdTyped<DType::kBF16>(a, plan, scratch, stream);
    case DType::kF32: return RunFwdTyped<DType::kF32>(a, plan, scratch, stream);
  }
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jax_flashfft: fftconv (CUDA) bad dtype");
}

ffi::Error RunBwd(const FftconvBwdArgs& a, const Plan& plan, void* scratch, cudaStream_t stream) {
  switch (a.d.dtype) {
    case DType::kF16: return RunBwdTyped<DType::kF16>(a, plan, scratch, stream);
    case DType::kBF16: return RunBwdTyped<DType::kBF16>(a, plan, scratch, stream);
    case DType::kF32: return RunBwdTyped<DType::kF32>(a, plan, scratch, stream);
  }
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jax_flashfft: fftconv (CUDA) bad dtype");
}

}  // namespace generic
}  // namespace jff
