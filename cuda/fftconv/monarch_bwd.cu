// Tensor-core fused FFT convolution, backward (see monarch_bwd.h for the contract).
//
// Transform machinery: the forward's (monarch_fwd.cu header comment): N = RAD*RAD, a row is a
// RAD x RAD matrix, unitary four-step DFT on mma.sync fragments, one warp per row pair with
// rows b, b+1 of one h packed as real / imaginary part of one complex signal. The small device
// primitives below are verbatim copies of monarch_fwd.cu's (same names, so that moving them
// into a shared header is mechanical).
//
// Math per row pair (cuda/README.md): v = pre*u, dz = dy*post, K' = khat + skip (skip folded
// into the filter as in the forward: z + skip*v = conv(v, k + skip*delta)).
//   X  = DFT(v0 + i v1)                      (steps 1-2)
//   z' = IDFT(X .* K')      -> dpost = dy * z'       (only when post and dpost exist)
//   D  = DFT(dz0 + i dz1)                    (steps 1-2)
//   dv = IDFT(D .* conj(K')) -> du = dv*pre, dpre = dv*u   (corr(dz, k) + skip*dz)
//   dk: with P = conj(X) .* D, sum_rows conj(V_b) DZ_b = (P[f] + conj(P[-f]))/2 for the two rows
//       of a pair, and the inverse transform of that Hermitian part is Re(IDFT(P)). So
//       dk[g,h] = Re(IDFT(sum over pairs of P))[:Lk] with no per-pair unpacking, and
//       dskip[g,h] = sum_t dz*v is the lag-0 term of the same inverse.
// Because the transforms are unitary, X and D are the spectra / sqrt(N) and P = conj(xhat)dhat/N,
// which is exactly what an unnormalised inverse DFT turns into dk.
//
// Deterministic reductions: the pairs of one h are cut into chunks of `cp` consecutive pairs
// that lie in one filter group. One warp processes a whole chunk in pair order and accumulates
// P (float32, fragment order, one float4 per lane and fragment) into the chunk's slot in
// global scratch: the first pair writes, the others read-add-write their own lane's values, so
// the summation order is fixed and no atomics are used; the slot stays in L2 while the warp
// works on it. A second kernel, one block per (g, h), sums the slots of the chunks of group g
// in chunk order and runs one float32 inverse FFT. Scratch traffic is N*8 bytes per chunk,
// about 1/(7*cp/4) of the main pass's HBM traffic.
//
// Memory: one pass over HBM. Each warp streams u and pre of its pair through a two-stage
// cp.async buffer (the next pair's loads fly during this pair's four transforms), and post
// and dy through one buffer loaded at the start of the pair and first read after two
// transforms (24 KB per warp at N=1024, so 8 warps fit an SM).
// Results are staged in place of inputs that are no longer needed and leave with 16-byte
// coalesced stores: dz (bf16/fp16, the MMA operand) replaces post, dpost replaces dy, du and
// dpre replace u and pre. The packed spectrum X (needed for P after D is known) is kept in
// registers in the 16-bit type: one extra rounding on the dk path only.
#include "fftconv/monarch_bwd.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace jff {
namespace {

// ---------------------------------------------------------------------------------------
// Element-type specifics: packing two floats into the 16-bit pair an MMA operand holds
// (low half = lower column index), unpacking, the MMA itself, and a pairwise product.
// (Copied from monarch_fwd.cu.)
// ---------------------------------------------------------------------------------------
template <typename T>
struct Ops;

template <>
struct Ops<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ float2 unpack(uint32_t v) {
    return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t mul2(uint32_t x, uint32_t y) {
    __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&x),
                               *reinterpret_cast<__nv_bfloat162*>(&y));
    return *reinterpret_cast<uint32_t*>(&r);
  }
};

template <>
struct Ops<__half> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    uint32_t r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
  }
  static __device__ __forceinline__ float2 unpack(uint32_t v) {
    return __half22float2(*reinterpret_cast<__half2*>(&v));
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t mul2(uint32_t x, uint32_t y) {
    __half2 r = __hmul2(*reinterpret_cast<__half2*>(&x), *reinterpret_cast<__half2*>(&y));
    return *reinterpret_cast<uint32_t*>(&r);
  }
};

constexpr uint32_t kSignBits = 0x80008000u;  // negates both 16-bit halves (fp16 and bf16)

__device__ __forceinline__ uint32_t movmatrix_trans(uint32_t x) {
  uint32_t r;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(r) : "r"(x));
  return r;
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_ptr) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem_ptr));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// 16-byte async copy; src_bytes = 0 fills the destination with zeros (implicit padding).
__device__ __forceinline__ void cp_async16(void* smem_ptr, const void* gptr, int src_bytes) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem_ptr));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(a), "l"(gptr), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
}

// ---------------------------------------------------------------------------------------
// Layout of one RAD x RAD block of 16-bit elements in shared memory: row-major, 16-byte
// chunks XOR-swizzled by row. For RAD = 32 (4 chunks a row) the 8 rows an ldmatrix or an
// epilogue access touches land in 8 distinct 16-byte bank groups; likewise for RAD = 16.
// ---------------------------------------------------------------------------------------
template <int RAD>
__device__ __forceinline__ int swz_offset(int n1, int n2) {
  constexpr int kChunks = RAD / 8;
  const int sw = (RAD == 32) ? ((n1 >> 1) & 3) : ((n1 >> 2) & 1);
  return n1 * RAD + (((n2 >> 3) ^ sw) & (kChunks - 1)) * 8 + (n2 & 7);
}

// Order of K and of the twiddle table: float4 index j*32 + lane holds two complex values
// for C-fragment (mt, nt), half hh (rows k1 = 16mt + gid + 8hh), columns k2 = 8nt + 2tig
// and + 1, with j = (mt*NT + nt)*2 + hh. Returns the float offset of (k1, k2).
template <int RAD>
__host__ __device__ __forceinline__ int frag_float_offset(int k1, int k2) {
  constexpr int NT = RAD / 8;
  const int mt = k1 >> 4, hh = (k1 >> 3) & 1, gid = k1 & 7;
  const int nt = k2 >> 3, tig = (k2 >> 1) & 3, e0 = k2 & 1;
  const int j = (mt * NT + nt) * 2 + hh;
  return (j * 32 + gid * 4 + tig) * 4 + 2 * e0;
}

// ---------------------------------------------------------------------------------------
// k's spectrum, once per (g, h) (copied from monarch_fwd.cu): the N-point DFT of the zero-padded real k, computed as an
// N/2-point complex FFT of z[n] = k[2n] + i k[2n+1] in shared memory (float32), then split
// into the real signal's spectrum. Written in fragment order for the main kernel.
// ---------------------------------------------------------------------------------------
template <int RAD>
__global__ void monarch_kspec_sq_kernel(const float* __restrict__ k, int64_t Lk,
                                        const float* __restrict__ skip, float* kspec) {
  constexpr int N = RAD * RAD, M = N / 2;
  constexpr int LOGM = (RAD == 32) ? 9 : 7;
  extern __shared__ float2 zs[];
  float2* twt = zs + M;  // w_M^j, j < M/2: one sincospif per entry instead of per butterfly
  const int64_t gh = blockIdx.x;
  for (int j = threadIdx.x; j < M / 2; j += blockDim.x) {
    float s, c;
    sincospif(-2.0f * static_cast<float>(j) / M, &s, &c);
    twt[j] = make_float2(c, s);
  }
  const float* kr = k + gh * Lk;
  for (int n = threadIdx.x; n < M; n += blockDim.x) {
    const int64_t i0 = 2 * n, i1 = 2 * n + 1;
    const float2 z = make_float2(i0 < Lk ? kr[i0] : 0.f, i1 < Lk ? kr[i1] : 0.f);
    zs[__brev(static_cast<unsigned>(n)) >> (32 - LOGM)] = z;
  }
  __syncthreads();
  for (int half = 1; half < M; half *= 2) {
    for (int i = threadIdx.x; i < M / 2; i += blockDim.x) {
      const int pos = i & (half - 1);
      const int a = (i - pos) * 2 + pos, b = a + half;
      const float2 w = twt[pos * (M / (2 * half))];
      const float2 xb = zs[b], xa = zs[a];
      const float2 t = make_float2(xb.x * w.x - xb.y * w.y, xb.x * w.y + xb.y * w.x);
      zs[a] = make_float2(xa.x + t.x, xa.y + t.y);
      zs[b] = make_float2(xa.x - t.x, xa.y - t.y);
    }
    __syncthreads();
  }
  float* out = kspec + gh * N * 2;
  const float sk = skip != nullptr ? skip[gh] : 0.f;
  for (int f = threadIdx.x; f <= M; f += blockDim.x) {
    const float2 zf = zs[f & (M - 1)];
    const float2 zc = zs[(M - f) & (M - 1)];
    // E = (Zf + conj Zc) / 2, O = (Zf - conj Zc) / (2i), K = E + w_N^f O
    const float er = 0.5f * (zf.x + zc.x), ei = 0.5f * (zf.y - zc.y);
    const float or_ = 0.5f * (zf.y + zc.y), oi = -0.5f * (zf.x - zc.x);
    float s, c;
    sincospif(-2.0f * static_cast<float>(f) / N, &s, &c);
    // The skip term skip*v is a convolution with skip*delta: it adds skip to every bin.
    const float kr_ = er + (or_ * c - oi * s) + sk, ki = ei + (or_ * s + oi * c);
    {
      const int o = frag_float_offset<RAD>(f % RAD, f / RAD);
      out[o] = kr_;
      out[o + 1] = ki;
    }
    if (f > 0 && f < M) {
      const int fn = N - f;
      const int o = frag_float_offset<RAD>(fn % RAD, fn / RAD);
      out[o] = kr_;
      out[o + 1] = -ki;
    }
  }
}

template <int RAD>
size_t kspec_smem_bytes() {
  return sizeof(float2) * (RAD * RAD / 2 + RAD * RAD / 4);
}

int radix_of(int64_t N) { return N == 256 ? 16 : (N == 1024 ? 32 : 0); }

// ---------------------------------------------------------------------------------------
// Backward-specific code.
// ---------------------------------------------------------------------------------------
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
  const float4* kspec;  // (G, H) blocks of N/2 float4 in fragment order, skip folded in
  float4* slots;        // (H, chunks) blocks of N/2 float4 (fragment order), nullptr: no dk/dskip
  void* du;             // each nullptr when not wanted
  void* dpre;
  void* dpost;
  int B, H, L, G, R;
  int pairs;   // ceil(B / 2)
  int cp;      // pairs per chunk; a chunk never spans two filter groups
  int chunks;  // ceil(pairs / cp)
  int items;   // H * chunks
};

// Steps 1-2: the unitary DFT of the row pair a0*g0 + i a1*g1 (gates optional: g0 == nullptr
// means none) held in swizzled shared memory, into C fragments in (k1, k2) order.
template <typename T, int RAD>
__device__ __forceinline__ void dft_pair(const T* a0, const T* a1, const T* g0, const T* g1,
                                         const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                         const uint32_t (&Fi)[RAD / 16][RAD / 16][4],
                                         const float4* tw, int lane,
                                         float (&Yr)[RAD / 16][RAD / 8][4],
                                         float (&Yi)[RAD / 16][RAD / 8][4]) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, KS = RAD / 16, NT = RAD / 8;
  float Cr[MT][NT][4], Ci[MT][NT][4];
  {
    uint32_t Xr[KS][NT][2], Xi[KS][NT][2];
    const int q = lane >> 3, r = lane & 7;
#pragma unroll
    for (int ks = 0; ks < KS; ++ks)
#pragma unroll
      for (int ntp = 0; ntp < NT / 2; ++ntp) {
        const int n1 = 16 * ks + 8 * (q & 1) + r;
        const int off = swz_offset<RAD>(n1, 8 * (2 * ntp + (q >> 1)));
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          uint32_t v[4];
          ldmatrix_x4_trans(v, (rr ? a1 : a0) + off);
          if (g0 != nullptr) {
            uint32_t w[4];
            ldmatrix_x4_trans(w, (rr ? g1 : g0) + off);
#pragma unroll
            for (int i = 0; i < 4; ++i) v[i] = O::mul2(v[i], w[i]);
          }
          uint32_t(&X)[KS][NT][2] = rr == 0 ? Xr : Xi;
          X[ks][2 * ntp][0] = v[0];
          X[ks][2 * ntp][1] = v[1];
          X[ks][2 * ntp + 1][0] = v[2];
          X[ks][2 * ntp + 1][1] = v[3];
        }
      }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) Cr[mt][nt][e] = Ci[mt][nt][e] = 0.f;
#pragma unroll
    for (int ks = 0; ks < KS; ++ks)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          O::mma(Cr[mt][nt], Fr[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
          O::mma(Cr[mt][nt], Fi[mt][ks], Xi[ks][nt][0] ^ kSignBits, Xi[ks][nt][1] ^ kSignBits);
          O::mma(Ci[mt][nt], Fr[mt][ks], Xi[ks][nt][0], Xi[ks][nt][1]);
          O::mma(Ci[mt][nt], Fi[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
        }
  }
  // Twiddle, then step 2: Y = C F (C as A fragments, F as B fragments by symmetry).
  uint32_t Pr[MT][KS][4], Pi[MT][KS][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const float4 w = tw[((mt * NT + nt) * 2 + hh) * 32 + lane];
        const float ar = Cr[mt][nt][2 * hh], ai = Ci[mt][nt][2 * hh];
        const float br = Cr[mt][nt][2 * hh + 1], bi = Ci[mt][nt][2 * hh + 1];
        const int ks = nt >> 1, q = (nt & 1) * 2 + hh;
        Pr[mt][ks][q] = O::pack(ar * w.x - ai * w.y, br * w.z - bi * w.w);
        Pi[mt][ks][q] = O::pack(ar * w.y + ai * w.x, br * w.w + bi * w.z);
      }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) Yr[mt][nt][e] = Yi[mt][nt][e] = 0.f;
#pragma unroll
  for (int ks = 0; ks < KS; ++ks)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        uint32_t nPi[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) nPi[i] = Pi[mt][ks][i] ^ kSignBits;
        const int m2 = nt >> 1, s = nt & 1;
        O::mma(Yr[mt][nt], Pr[mt][ks], Fr[m2][ks][s], Fr[m2][ks][2 + s]);
        O::mma(Yr[mt][nt], nPi, Fi[m2][ks][s], Fi[m2][ks][2 + s]);
        O::mma(Yi[mt][nt], Pr[mt][ks], Fi[m2][ks][s], Fi[m2][ks][2 + s]);
        O::mma(Yi[mt][nt], Pi[mt][ks], Fr[m2][ks][s], Fr[m2][ks][2 + s]);
      }
}

// Pointwise product of a spectrum (C fragments) with K' or conj(K'), packed into A fragments
// of the inverse's first product.
template <typename T, int RAD, bool CONJ>
__device__ __forceinline__ void mul_spec(const float (&Yr)[RAD / 16][RAD / 8][4],
                                         const float (&Yi)[RAD / 16][RAD / 8][4],
                                         const float4* kk, int lane,
                                         uint32_t (&Pr)[RAD / 16][RAD / 16][4],
                                         uint32_t (&Pi)[RAD / 16][RAD / 16][4]) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, NT = RAD / 8;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        float4 kv = __ldg(kk + ((mt * NT + nt) * 2 + hh) * 32 + lane);
        if (CONJ) {
          kv.y = -kv.y;
          kv.w = -kv.w;
        }
        const float ar = Yr[mt][nt][2 * hh], ai = Yi[mt][nt][2 * hh];
        const float br = Yr[mt][nt][2 * hh + 1], bi = Yi[mt][nt][2 * hh + 1];
        const int ks = nt >> 1, q = (nt & 1) * 2 + hh;
        Pr[mt][ks][q] = O::pack(ar * kv.x - ai * kv.y, br * kv.z - bi * kv.w);
        Pi[mt][ks][q] = O::pack(ar * kv.y + ai * kv.x, br * kv.w + bi * kv.z);
      }
}

// Steps 3-4: out = conj(F) ((W conj(F)) .* conj(T)), W given as A fragments. Row 0's result
// is out's real part, row 1's the imaginary part, both in C fragments (n1 = row, n2 = col).
template <typename T, int RAD>
__device__ __forceinline__ void idft_pair(const uint32_t (&Pr)[RAD / 16][RAD / 16][4],
                                          const uint32_t (&Pi)[RAD / 16][RAD / 16][4],
                                          const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                          const uint32_t (&Fi)[RAD / 16][RAD / 16][4],
                                          const float4* tw, int lane,
                                          float (&Yr)[RAD / 16][RAD / 8][4],
                                          float (&Yi)[RAD / 16][RAD / 8][4]) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, KS = RAD / 16, NT = RAD / 8;
  float Cr[MT][NT][4], Ci[MT][NT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) Cr[mt][nt][e] = Ci[mt][nt][e] = 0.f;
#pragma unroll
  for (int ks = 0; ks < KS; ++ks)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        uint32_t nPr[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) nPr[i] = Pr[mt][ks][i] ^ kSignBits;
        const int m2 = nt >> 1, s = nt & 1;
        O::mma(Cr[mt][nt], Pr[mt][ks], Fr[m2][ks][s], Fr[m2][ks][2 + s]);
        O::mma(Cr[mt][nt], Pi[mt][ks], Fi[m2][ks][s], Fi[m2][ks][2 + s]);
        O::mma(Ci[mt][nt], Pi[mt][ks], Fr[m2][ks][s], Fr[m2][ks][2 + s]);
        O::mma(Ci[mt][nt], nPr, Fi[m2][ks][s], Fi[m2][ks][2 + s]);
      }
  // conj twiddle, transpose into B fragments (k = k1, n = n2), step 4.
  uint32_t Qr[KS][NT][2], Qi[KS][NT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const float4 w = tw[((mt * NT + nt) * 2 + hh) * 32 + lane];
        const float ar = Cr[mt][nt][2 * hh], ai = Ci[mt][nt][2 * hh];
        const float br = Cr[mt][nt][2 * hh + 1], bi = Ci[mt][nt][2 * hh + 1];
        Qr[mt][nt][hh] = movmatrix_trans(O::pack(ar * w.x + ai * w.y, br * w.z + bi * w.w));
        Qi[mt][nt][hh] = movmatrix_trans(O::pack(ai * w.x - ar * w.y, bi * w.z - br * w.w));
      }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) Yr[mt][nt][e] = Yi[mt][nt][e] = 0.f;
#pragma unroll
  for (int ks = 0; ks < KS; ++ks)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        O::mma(Yr[mt][nt], Fr[mt][ks], Qr[ks][nt][0], Qr[ks][nt][1]);
        O::mma(Yr[mt][nt], Fi[mt][ks], Qi[ks][nt][0], Qi[ks][nt][1]);
        O::mma(Yi[mt][nt], Fr[mt][ks], Qi[ks][nt][0], Qi[ks][nt][1]);
        O::mma(Yi[mt][nt], Fi[mt][ks], Qr[ks][nt][0] ^ kSignBits, Qr[ks][nt][1] ^ kSignBits);
      }
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

  // Twiddles w_N^(k1*n2) for this lane's C-fragment positions, shared by the block.
  for (int idx = threadIdx.x; idx < N / 2; idx += blockDim.x) {
    const int j = idx >> 5, ln = idx & 31;
    const int hh = j & 1, nt = (j >> 1) % NT, mt = (j >> 1) / NT;
    const int k1 = 16 * mt + (ln >> 2) + 8 * hh;
    const int n2 = 8 * nt + 2 * (ln & 3);
    float s0, c0, s1, c1;
    sincospif(-2.0f * static_cast<float>((k1 * n2) % N) / N, &s0, &c0);
    sincospif(-2.0f * static_cast<float>((k1 * (n2 + 1)) % N) / N, &s1, &c1);
    tw[idx] = make_float4(c0, s0, c1, s1);
  }

  // The unitary DFT matrix as A fragments: F[r][c] = w_RAD^(r*c) / sqrt(RAD).
  uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
  {
    const float scale = rsqrtf(static_cast<float>(RAD));
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int ks = 0; ks < KS; ++ks)
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int r = 16 * mt + gid + 8 * (q & 1);
          const int c = 16 * ks + 8 * (q >> 1) + 2 * tig;
          float s0, c0, s1, c1;
          sincospif(-2.0f * static_cast<float>((r * c) % RAD) / RAD, &s0, &c0);
          sincospif(-2.0f * static_cast<float>((r * (c + 1)) % RAD) / RAD, &s1, &c1);
          Fr[mt][ks][q] = O::pack(c0 * scale, c1 * scale);
          Fi[mt][ks][q] = O::pack(s0 * scale, s1 * scale);
        }
  }
  __syncthreads();

  const T* const src[4] = {static_cast<const T*>(p.u), static_cast<const T*>(p.pre),
                           static_cast<const T*>(p.post), static_cast<const T*>(p.dy)};
  const bool has_pre = p.pre != nullptr, has_post = p.post != nullptr;
  const bool want_dpost = p.dpost != nullptr;  // implies has_post (checked on the host)
  const bool want_dpre = p.dpre != nullptr;    // implies has_pre

  const int warp0 = blockIdx.x * WARPS + warp;
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
          const bool valid = rv && t < p.L;
          cp_async16(dst + swz_offset<RAD>(t / RAD, t % RAD),
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
        *reinterpret_cast<uint4*>(dst + (static_cast<int64_t>(b0 + rr) * p.H + h) * p.L + t) = val;
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
    const float4* kk = p.kspec + (static_cast<int64_t>(g) * p.H + h) * (N / 2);
#pragma unroll
    for (int i = 0; i < (N * 8) / (128 * 32); ++i)
      asm volatile("prefetch.global.L1 [%0];" ::"l"(reinterpret_cast<const char*>(kk) + (lane + 32 * i) * 128));

    // ---- X = DFT(v), v = u * pre formed in registers.
    float Yr[MT][NT][4], Yi[MT][NT][4];
    dft_pair<T, RAD>(rU, rU + N, has_pre ? rPre : nullptr, rPre + N, Fr, Fi, tw, lane, Yr, Yi);
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
      uint32_t Wr[MT][KS][4], Wi[MT][KS][4];
      mul_spec<T, RAD, false>(Yr, Yi, kk, lane, Wr, Wi);
      idft_pair<T, RAD>(Wr, Wi, Fr, Fi, tw, lane, Yr, Yi);
    }

    cp_async_wait<1>();  // this pair's post, dy
    __syncwarp();

    // ---- dz = dy * post in place of post; dpost = dy * z' in place of dy.
    if (has_post) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            const int off = swz_offset<RAD>(16 * mt + gid + 8 * hh, 8 * nt + 2 * tig);
#pragma unroll
            for (int rr = 0; rr < 2; ++rr) {
              uint32_t* dyp = reinterpret_cast<uint32_t*>(rDy + rr * N + off);
              uint32_t* pop = reinterpret_cast<uint32_t*>(rPost + rr * N + off);
              const uint32_t dyv = *dyp;
              *pop = O::mul2(dyv, *pop);
              if (want_dpost) {
                const float(&Z)[MT][NT][4] = rr == 0 ? Yr : Yi;
                const float2 d = O::unpack(dyv);
                *dyp = O::pack(d.x * Z[mt][nt][2 * hh], d.y * Z[mt][nt][2 * hh + 1]);
              }
            }
          }
      __syncwarp();
      if (want_dpost) store_rows(rDy, p.dpost, h, b0, row1);
    }

    // ---- D = DFT(dz).
    const T* rDz = has_post ? rPost : rDy;
    dft_pair<T, RAD>(rDz, rDz + N, nullptr, nullptr, Fr, Fi, tw, lane, Yr, Yi);

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
      uint32_t Wr[MT][KS][4], Wi[MT][KS][4];
      mul_spec<T, RAD, true>(Yr, Yi, kk, lane, Wr, Wi);
      idft_pair<T, RAD>(Wr, Wi, Fr, Fi, tw, lane, Yr, Yi);
    }

    // ---- du = dv * pre in place of u, dpre = dv * u in place of pre.
    if (p.du != nullptr || want_dpre) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
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
// dk and dskip, once per (g, h): sum the chunk slots of group g in chunk order, then one
// unnormalised inverse DFT (float32 radix-2 in shared memory). dk = Re(out)[:Lk],
// dskip = Re(out[0]). A (g, h) with no rows gets zeros.
// ---------------------------------------------------------------------------------------
template <int RAD>
__global__ void monarch_dk_reduce_kernel(const float4* __restrict__ slots, int H, int chunks,
                                         int cp, int R, int G, int64_t Lk, float* dk,
                                         float* dskip) {
  constexpr int N = RAD * RAD, NT = RAD / 8;
  constexpr int LOGN = (RAD == 32) ? 10 : 8;
  extern __shared__ float2 zs[];
  float2* twt = zs + N;  // w^(+j), j < N/2
  const int gh = blockIdx.x;
  const int g = gh / H, h = gh - g * H;
  for (int j = threadIdx.x; j < N / 2; j += blockDim.x) {
    float s, c;
    sincospif(2.0f * static_cast<float>(j) / N, &s, &c);
    twt[j] = make_float2(c, s);
  }
  for (int idx = threadIdx.x; idx < N / 2; idx += blockDim.x) {
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int c = 0; c < chunks; ++c) {
      // All pairs of a chunk are in the group of its first pair (cp divides R/2 when G > 1).
      if (((2 * c * cp) / R) % G != g) continue;
      const float4 v = slots[(static_cast<int64_t>(h) * chunks + c) * (N / 2) + idx];
      acc.x += v.x;
      acc.y += v.y;
      acc.z += v.z;
      acc.w += v.w;
    }
    // Fragment order -> frequency f = k1 + RAD*k2 (see frag_float_offset).
    const int j = idx >> 5, ln = idx & 31;
    const int hh = j & 1, nt = (j >> 1) % NT, mt = (j >> 1) / NT;
    const int k1 = 16 * mt + (ln >> 2) + 8 * hh;
    const int k2 = 8 * nt + 2 * (ln & 3);
    const unsigned f0 = k1 + RAD * k2, f1 = k1 + RAD * (k2 + 1);
    zs[__brev(f0) >> (32 - LOGN)] = make_float2(acc.x, acc.y);
    zs[__brev(f1) >> (32 - LOGN)] = make_float2(acc.z, acc.w);
  }
  __syncthreads();
  for (int half = 1; half < N; half *= 2) {
    for (int i = threadIdx.x; i < N / 2; i += blockDim.x) {
      const int pos = i & (half - 1);
      const int a = (i - pos) * 2 + pos, b = a + half;
      const float2 w = twt[pos * (N / (2 * half))];
      const float2 xb = zs[b], xa = zs[a];
      const float2 t = make_float2(xb.x * w.x - xb.y * w.y, xb.x * w.y + xb.y * w.x);
      zs[a] = make_float2(xa.x + t.x, xa.y + t.y);
      zs[b] = make_float2(xa.x - t.x, xa.y - t.y);
    }
    __syncthreads();
  }
  if (dk != nullptr)
    for (int64_t j = threadIdx.x; j < Lk; j += blockDim.x) dk[static_cast<int64_t>(gh) * Lk + j] = zs[j].x;
  if (dskip != nullptr && threadIdx.x == 0) dskip[gh] = zs[0].x;
}

template <int RAD>
constexpr int bwd_warps() {
  // N=1024: 24 KB of buffers per warp; 4 warps (104 KB with the twiddles) let 2 CTAs share
  // an SM (8 warps, which is also what 255 registers a thread allow). N=256: 6 KB per warp,
  // registers are the limit, not shared memory.
  return 4;
}

template <int RAD>
size_t bwd_smem_bytes() {
  using S = BwdShape<RAD>;
  return sizeof(float4) * (S::N / 2) + size_t(bwd_warps<RAD>()) * S::WARP_ELEMS * 2;
}

template <int RAD>
size_t reduce_smem_bytes() {
  return sizeof(float2) * (RAD * RAD + RAD * RAD / 2);
}

// Pairs per chunk: 8 by default (scratch traffic ~5% of the main pass, enough chunks per h
// to spread over all warps). With several filter groups a chunk must not cross a run of R/2
// pairs of one group: the largest divisor of R/2 up to 8.
constexpr int64_t kChunkPairs = 8;
int64_t bwd_chunk_pairs(const FftconvDims& d) {
  const int64_t pairs = (d.B + 1) / 2;
  int64_t cp = kChunkPairs < pairs ? kChunkPairs : pairs;
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

size_t kspec_bytes(const FftconvDims& d) {
  return static_cast<size_t>(d.G) * static_cast<size_t>(d.H) * static_cast<size_t>(d.N) * 2 * sizeof(float);
}

template <typename T, int RAD>
cudaError_t launch_bwd_sq(const FftconvBwdArgs& a, cudaStream_t stream, float* kspec, float* slots) {
  const FftconvDims& d = a.d;
  constexpr int WARPS = bwd_warps<RAD>();
  cudaError_t err;
  const size_t ksm = kspec_smem_bytes<RAD>();
  if (ksm > 48 * 1024) {
    err = cudaFuncSetAttribute(monarch_kspec_sq_kernel<RAD>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(ksm));
    if (err != cudaSuccess) return err;
  }
  monarch_kspec_sq_kernel<RAD><<<static_cast<unsigned>(d.G * d.H), 256, ksm, stream>>>(a.k, d.Lk, a.skip, kspec);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  const bool want_spec = a.dk != nullptr || a.dskip != nullptr;
  auto kern = monarch_bwd_sq_kernel<T, RAD, WARPS>;
  const size_t sm = bwd_smem_bytes<RAD>();
  err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
  if (err != cudaSuccess) return err;
  int dev = 0, nsm = 0, per_sm = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, WARPS * 32, sm)) != cudaSuccess)
    return err;
  if (per_sm < 1) return cudaErrorInvalidConfiguration;

  BwdParams p;
  p.dy = a.dy;
  p.u = a.u;
  p.pre = a.pre;
  p.post = a.post;
  p.kspec = reinterpret_cast<const float4*>(kspec);
  p.slots = want_spec ? reinterpret_cast<float4*>(slots) : nullptr;
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
  p.items = p.H * p.chunks;
  const int64_t want = (int64_t(p.items) + WARPS - 1) / WARPS;
  const int64_t grid = want < int64_t(nsm) * per_sm ? want : int64_t(nsm) * per_sm;
  kern<<<static_cast<unsigned>(grid), WARPS * 32, sm, stream>>>(p);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  if (want_spec) {
    monarch_dk_reduce_kernel<RAD><<<static_cast<unsigned>(d.G * d.H), 256, reduce_smem_bytes<RAD>(), stream>>>(
        p.slots, p.H, p.chunks, p.cp, p.R, p.G, d.Lk, a.dk, a.dskip);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  return cudaSuccess;
}

}  // namespace

bool monarch_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  if (device_major < 8) return false;
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return false;
  if (d.layout != kBHL) return false;
  const int rad = radix_of(d.N);
  if (rad == 0) return false;
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  if (d.G < 1 || d.R < 1) return false;
  // Rows are read and written with 16-byte accesses from (b*H + h)*L: row starts aligned.
  if (d.L % 8 != 0) return false;
  // Rows 2p and 2p+1 share one transform, hence one filter group.
  if (d.G != 1 && d.R % 2 != 0) return false;
  const size_t sm = rad == 16 ? bwd_smem_bytes<16>() : bwd_smem_bytes<32>();
  const size_t ksm = rad == 16 ? kspec_smem_bytes<16>() : kspec_smem_bytes<32>();
  const size_t rsm = rad == 16 ? reduce_smem_bytes<16>() : reduce_smem_bytes<32>();
  if (sm > max_smem_per_block || ksm > max_smem_per_block || rsm > 48 * 1024) return false;
  // Item, row and group indices are 32-bit in the kernels (element offsets are 64-bit);
  // 2 * c * cp and b0 stay below 2^31.
  if (d.B >= (int64_t(1) << 30) || d.R >= (int64_t(1) << 30) || d.G * d.H >= (int64_t(1) << 31)) return false;
  if (d.H * bwd_chunks(d) >= (int64_t(1) << 30)) return false;
  return true;
}

size_t monarch_bwd_scratch_bytes(const FftconvDims& d) {
  // k's spectrum, then one N-point complex float32 slot per (h, chunk).
  return kspec_bytes(d) + static_cast<size_t>(d.H) * static_cast<size_t>(bwd_chunks(d)) *
                              static_cast<size_t>(d.N) * 2 * sizeof(float);
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
  float* kspec = static_cast<float*>(scratch);
  float* slots = kspec + kspec_bytes(d) / sizeof(float);
  const int rad = radix_of(d.N);
  if (d.dtype == DType::kBF16) {
    if (rad == 16) return launch_bwd_sq<__nv_bfloat16, 16>(a, stream, kspec, slots);
    if (rad == 32) return launch_bwd_sq<__nv_bfloat16, 32>(a, stream, kspec, slots);
  } else if (d.dtype == DType::kF16) {
    if (rad == 16) return launch_bwd_sq<__half, 16>(a, stream, kspec, slots);
    if (rad == 32) return launch_bwd_sq<__half, 32>(a, stream, kspec, slots);
  }
  return cudaErrorInvalidValue;
}

}  // namespace jff
