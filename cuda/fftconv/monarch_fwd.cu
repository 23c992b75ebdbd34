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
// exactly the order each lane consumes it (float4 per lane, coalesced). Work items are
// ordered with h slow so that all pairs of one h run at about the same time and K is read
// from HBM once, then from L2.
#include "fftconv/monarch.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace jff {
namespace {

// ---------------------------------------------------------------------------------------
// Element-type specifics: packing two floats into the 16-bit pair an MMA operand holds
// (low half = lower column index), unpacking, the MMA itself, and a pairwise product.
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

struct FwdParams {
  const void* u;
  const void* pre;
  const void* post;
  const float4* kspec;  // (G, H) blocks of N/2 float4 in fragment order, skip folded in
  void* y;
  int B, H, L, G, R;
  int pairs;  // ceil(B / 2)
  int items;  // H * pairs (checked < 2^31 in _supported)
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

  const T* u = static_cast<const T*>(p.u);
  const T* pre = static_cast<const T*>(p.pre);
  const T* post = static_cast<const T*>(p.post);
  T* y = static_cast<T*>(p.y);
  const bool has_pre = pre != nullptr, has_post = post != nullptr;

  const int warp0 = blockIdx.x * WARPS + warp;
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
          const bool valid = rv && t < p.L;
          cp_async16(dst + swz_offset<RAD>(t / RAD, t % RAD), valid ? rowp + t : src, valid ? 16 : 0);
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
    const T* su[2] = {sb + 0 * N, sb + 1 * N};
    const T* sp[2] = {sb + 2 * N, sb + 3 * N};
    // K is read after two of the four products; pull its lines (from L2, shared by all pairs
    // of this h) into L1 now so that read does not stall the warp.
    const float4* kk = p.kspec + (static_cast<int64_t>(g) * p.H + h) * (N / 2);
#pragma unroll
    for (int i = 0; i < (N * 8) / (128 * 32); ++i)
      asm volatile("prefetch.global.L1 [%0];" ::"l"(reinterpret_cast<const char*>(kk) + (lane + 32 * i) * 128));

    // ---- step 1: C = F X, X as B fragments (k = n1, n = n2), v = u*pre formed in registers.
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
            ldmatrix_x4_trans(v, su[rr] + off);
            if (has_pre) {
              uint32_t w[4];
              ldmatrix_x4_trans(w, sp[rr] + off);
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

    // ---- twiddle, then step 2: Y = C F (C as A fragments, F as B fragments by symmetry).
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
          const uint32_t pr_ = O::pack(ar * w.x - ai * w.y, br * w.z - bi * w.w);
          const uint32_t pi_ = O::pack(ar * w.y + ai * w.x, br * w.w + bi * w.z);
          const int ks = nt >> 1, q = (nt & 1) * 2 + hh;
          Pr[mt][ks][q] = pr_;
          Pi[mt][ks][q] = pi_;
        }
    float Yr[MT][NT][4], Yi[MT][NT][4];
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

    // ---- pointwise product with k's spectrum, then step 3: A = W conj(F).
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const float4 kv = __ldg(kk + ((mt * NT + nt) * 2 + hh) * 32 + lane);
          const float ar = Yr[mt][nt][2 * hh], ai = Yi[mt][nt][2 * hh];
          const float br = Yr[mt][nt][2 * hh + 1], bi = Yi[mt][nt][2 * hh + 1];
          const int ks = nt >> 1, q = (nt & 1) * 2 + hh;
          Pr[mt][ks][q] = O::pack(ar * kv.x - ai * kv.y, br * kv.z - bi * kv.w);
          Pi[mt][ks][q] = O::pack(ar * kv.y + ai * kv.x, br * kv.w + bi * kv.z);
        }
    // A reuses Cr/Ci storage.
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

    // ---- conj twiddle, transpose into B fragments (k = k1, n = n2), step 4: out = conj(F) A.
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
          // times conj(w)
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

    // ---- epilogue: y = post * z (skip*v is inside z: K carries + skip), over u in the stage.
    __syncwarp();
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
        *reinterpret_cast<uint4*>(y + (static_cast<int64_t>(b0 + rr) * p.H + h) * p.L + t) = val;
      }
    }
    __syncwarp();  // the next iteration's cp.async refills this stage
    st ^= 1;
  }
  cp_async_wait<0>();
}

// ---------------------------------------------------------------------------------------
// k's spectrum, once per (g, h): the N-point DFT of the zero-padded real k, computed as an
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

constexpr int kWarps = 4;

template <int RAD>
size_t sq_smem_bytes() {
  using S = Shape<RAD>;
  return sizeof(float4) * (S::N / 2) + size_t(kWarps) * 2 * S::STAGE_ELEMS * 2;
}

template <int RAD>
size_t kspec_smem_bytes() {
  return sizeof(float2) * (RAD * RAD / 2 + RAD * RAD / 4);
}

int radix_of(int64_t N) { return N == 256 ? 16 : (N == 1024 ? 32 : 0); }

template <typename T, int RAD>
cudaError_t launch_sq(const FftconvFwdArgs& a, cudaStream_t stream, float* kspec) {
  const FftconvDims& d = a.d;
  cudaError_t err;
  const size_t ksm = kspec_smem_bytes<RAD>();
  if (ksm > 48 * 1024) {
    err = cudaFuncSetAttribute(monarch_kspec_sq_kernel<RAD>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(ksm));
    if (err != cudaSuccess) return err;
  }
  monarch_kspec_sq_kernel<RAD><<<static_cast<unsigned>(d.G * d.H), 256, ksm, stream>>>(a.k, d.Lk, a.skip, kspec);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  auto kern = monarch_fwd_sq_kernel<T, RAD, kWarps>;
  const size_t sm = sq_smem_bytes<RAD>();
  err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
  if (err != cudaSuccess) return err;
  int dev = 0, nsm = 0, per_sm = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, kWarps * 32, sm)) != cudaSuccess)
    return err;
  if (per_sm < 1) return cudaErrorInvalidConfiguration;

  FwdParams p;
  p.u = a.u;
  p.pre = a.pre;
  p.post = a.post;
  p.kspec = reinterpret_cast<const float4*>(kspec);
  p.y = a.y;
  p.B = static_cast<int>(d.B);
  p.H = static_cast<int>(d.H);
  p.L = static_cast<int>(d.L);
  p.G = static_cast<int>(d.G);
  p.R = static_cast<int>(d.R);
  p.pairs = static_cast<int>((d.B + 1) / 2);
  p.items = p.H * p.pairs;
  const int64_t want = (int64_t(p.items) + kWarps - 1) / kWarps;
  const int64_t grid = want < int64_t(nsm) * per_sm ? want : int64_t(nsm) * per_sm;
  kern<<<static_cast<unsigned>(grid), kWarps * 32, sm, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

bool monarch_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  if (device_major < 8) return false;
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return false;
  if (d.layout != kBHL) return false;
  const int rad = radix_of(d.N);
  if (rad == 0) return false;
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  if (d.G < 1 || d.R < 1) return false;
  // Rows are read with 16-byte copies from (b*H + h)*L: every row start must be aligned.
  if (d.L % 8 != 0) return false;
  // Rows 2p and 2p+1 share one transform, hence one filter group.
  if (d.G != 1 && d.R % 2 != 0) return false;
  const size_t sm = rad == 16 ? sq_smem_bytes<16>() : sq_smem_bytes<32>();
  const size_t ksm = rad == 16 ? kspec_smem_bytes<16>() : kspec_smem_bytes<32>();
  if (sm > max_smem_per_block || ksm > max_smem_per_block) return false;
  // Item and row indices are 32-bit in the kernel (element offsets are 64-bit).
  if (d.B >= (int64_t(1) << 30) || d.R >= (int64_t(1) << 30) || d.G * d.H >= (int64_t(1) << 31)) return false;
  if (d.H * ((d.B + 1) / 2) >= (int64_t(1) << 30)) return false;
  return true;
}

size_t monarch_fwd_scratch_bytes(const FftconvDims& d) {
  return static_cast<size_t>(d.G) * static_cast<size_t>(d.H) * static_cast<size_t>(d.N) * 2 *
         sizeof(float);
}

cudaError_t monarch_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void* scratch,
                        size_t scratch_bytes) {
  const FftconvDims& d = a.d;
  if (scratch == nullptr || scratch_bytes < monarch_fwd_scratch_bytes(d)) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(scratch) % 16 != 0) return cudaErrorInvalidValue;
  float* kspec = static_cast<float*>(scratch);
  const int rad = radix_of(d.N);
  if (d.dtype == DType::kBF16) {
    if (rad == 16) return launch_sq<__nv_bfloat16, 16>(a, stream, kspec);
    if (rad == 32) return launch_sq<__nv_bfloat16, 32>(a, stream, kspec);
  } else if (d.dtype == DType::kF16) {
    if (rad == 16) return launch_sq<__half, 16>(a, stream, kspec);
    if (rad == 32) return launch_sq<__half, 32>(a, stream, kspec);
  }
  return cudaErrorInvalidValue;
}

}  // namespace jff
