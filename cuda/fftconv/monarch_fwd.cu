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
#include <cstdlib>

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
  p.l2_prefetch = 0;
  const int64_t want = (int64_t(p.items) + kWarps - 1) / kWarps;
  const int64_t grid = want < int64_t(nsm) * per_sm ? want : int64_t(nsm) * per_sm;
  kern<<<static_cast<unsigned>(grid), kWarps * 32, sm, stream>>>(p);
  return cudaGetLastError();
}


// =======================================================================================
// N = N0 * M with M = RAD^2 in {256, 1024}: N = 2048 .. 32768, and N0 = 1 (N = 256/1024)
// for lengths the cp.async kernel above cannot take (L % 8 != 0).
//
// One more four-step level around the routine above. With n = M*n0 + m (n0 < N0, m < M):
//   C[k0][m] = sum_n0 x[M n0 + m] w_N0^(k0 n0) / sqrt(N0)      outer DFT over stride-M columns
//   c_k0[m]  = C[k0][m] * w_N^(k0 m)                             twiddle
//   inner_k0 = the M-point routine above (DFT, times K, inverse DFT) on row k0, where row
//              k0's spectrum is xhat[k0 + N0*km] / sqrt(N): K is laid out per k0 in blocks
//              of M complex values in the inner fragment order
//   D[k0][m] = inner_k0[m] * conj(w_N^(k0 m));   out[M n0 + m] = sum_k0 D[k0][m] conj(w_N0^(k0 n0)) / sqrt(N0)
// One CTA owns one row pair; the whole complex signal (real plane = row b, imaginary plane =
// row b+1) lives in shared memory as 16-bit values (4N bytes: 128 KB at N = 32768) between
// the phases load -> outer DFT -> inner rows -> outer inverse -> store, separated by
// __syncthreads. The outer DFT (N0 = 16, 32) is a tensor-core product F_N0 * X over 16-column
// tiles, one tile per warp at a time; N0 = 2 is a butterfly folded into the load and store
// passes. Overlap of memory and compute comes from several CTAs per SM (one at N = 32768).
//
// Shared-memory layout of the signal: block n0 (M elements) uses the inner routine's
// swizzle, and its 16-byte chunk index is further XORed with (n0 & 7). A constant XOR per
// block keeps the inner routine's accesses conflict-free, and it spreads the outer DFT's
// ldmatrix rows (8 consecutive n0 at the same m, 2 KB or 512 B apart) over 8 bank groups.
//
// Twiddles w_N^j come from two small tables, w_N^(j mod 128) * w_N^(128 floor(j/128)), so
// no sincos runs per element and the tables fit in a few KB at any N.
// =======================================================================================

template <int RAD>
__device__ __forceinline__ int sig_off(int n0, int m1, int m2) {
  return n0 * (RAD * RAD) + (swz_offset<RAD>(m1, m2) ^ ((n0 & 7) << 3));
}

__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// Eight 16-bit elements t .. t+7 of a row (zero at and beyond L; L = 0 for an absent row).
// Vector path only where the row is 16-byte aligned (L % 8 == 0) and the chunk is whole.
__device__ __forceinline__ uint4 load8(const uint16_t* row, int t, int L, bool vec) {
  if (vec && t + 8 <= L) return __ldg(reinterpret_cast<const uint4*>(row + t));
  uint32_t w[4] = {0u, 0u, 0u, 0u};
  if (t < L) {
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (t + e < L) w[e >> 1] |= static_cast<uint32_t>(__ldg(row + t + e)) << (16 * (e & 1));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

__device__ __forceinline__ void store8(uint16_t* row, int t, int L, bool vec, uint4 v) {
  if (vec && t + 8 <= L) {
    *reinterpret_cast<uint4*>(row + t) = v;
    return;
  }
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (t + e < L) row[t + e] = static_cast<uint16_t>(w[e >> 1] >> (16 * (e & 1)));
}

template <typename T>
__device__ __forceinline__ void unpack8(uint4 v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 p = Ops<T>::unpack(w[i]);
    f[2 * i] = p.x;
    f[2 * i + 1] = p.y;
  }
}
template <typename T>
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  return make_uint4(Ops<T>::pack(f[0], f[1]), Ops<T>::pack(f[2], f[3]), Ops<T>::pack(f[4], f[5]),
                    Ops<T>::pack(f[6], f[7]));
}

constexpr int kTwLo = 128;

// Asks L2 for the 128-byte lines of n 16-bit elements at p (a hint: nothing waits on it).
// Rounding the start down stays inside the allocation, which is 128-byte aligned.
__device__ __forceinline__ void prefetch_l2(const uint16_t* p, int n, int tid, int nth) {
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(127);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + n);
  for (uintptr_t a = first + uintptr_t(128) * tid; a < end; a += uintptr_t(128) * nth)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
}

template <int N0, int RAD>
struct BigShape {
  static constexpr int M = RAD * RAD;
  static constexpr int N = N0 * M;
  static constexpr int MT = RAD / 16, KS = RAD / 16, NT = RAD / 8;
  static constexpr bool kMmaOuter = N0 >= 16;
  static constexpr int MT0 = kMmaOuter ? N0 / 16 : 1;
  static constexpr int TWHI = N / kTwLo;
  // bytes: signal planes, inner twiddles (float4 per lane slot), w_N tables, DFT fragments
  static constexpr size_t kSig = size_t(4) * N;
  static constexpr size_t kTw = size_t(16) * (M / 2);
  static constexpr size_t kTwN = size_t(8) * (kTwLo + TWHI);
  static constexpr size_t kFrag = size_t(4) * MT * KS * 8 * 32;
  static constexpr size_t kFrag0 = kMmaOuter ? size_t(4) * MT0 * MT0 * 8 * 32 : 0;
  static constexpr size_t kSmem = kSig + kTw + kTwN + kFrag + kFrag0;
};

// Unitary DFT matrix of size D as mma A fragments, plane-major per lane: entry
// ((mt*KSD + ks)*4 + q)*2 + plane, times 32 lanes.
template <typename T, int D>
__device__ void build_dft_frags(uint32_t* tab, int tid, int nthreads) {
  constexpr int KSD = D / 16;
  const float scale = rsqrtf(static_cast<float>(D));
  for (int idx = tid; idx < (D / 16) * KSD * 4 * 32; idx += nthreads) {
    const int lane = idx & 31, e = idx >> 5;
    const int q = e & 3, ks = (e >> 2) % KSD, mt = (e >> 2) / KSD;
    const int r = 16 * mt + (lane >> 2) + 8 * (q & 1);
    const int c = 16 * ks + 8 * (q >> 1) + 2 * (lane & 3);
    float s0, c0, s1, c1;
    sincospif(-2.0f * static_cast<float>((r * c) % D) / D, &s0, &c0);
    sincospif(-2.0f * static_cast<float>((r * (c + 1)) % D) / D, &s1, &c1);
    tab[(e * 2 + 0) * 32 + lane] = Ops<T>::pack(c0 * scale, c1 * scale);
    tab[(e * 2 + 1) * 32 + lane] = Ops<T>::pack(s0 * scale, s1 * scale);
  }
}

template <int MTD, int KSD>
__device__ __forceinline__ void load_dft_frags(uint32_t (&Fr)[MTD][KSD][4], uint32_t (&Fi)[MTD][KSD][4],
                                               const uint32_t* tab, int lane) {
#pragma unroll
  for (int mt = 0; mt < MTD; ++mt)
#pragma unroll
    for (int ks = 0; ks < KSD; ++ks)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int e = (mt * KSD + ks) * 4 + q;
        Fr[mt][ks][q] = tab[(e * 2 + 0) * 32 + lane];
        Fi[mt][ks][q] = tab[(e * 2 + 1) * 32 + lane];
      }
}

template <typename T, int N0, int RAD, int WARPS>
__global__ void __launch_bounds__(WARPS * 32)
    monarch_fwd_big_kernel(const FwdParams p) {
  using S = BigShape<N0, RAD>;
  using O = Ops<T>;
  constexpr int M = S::M, N = S::N, MT = S::MT, KS = S::KS, NT = S::NT, MT0 = S::MT0;
  constexpr int NTH = WARPS * 32;

  extern __shared__ uint4 smem_raw[];
  T* sre = reinterpret_cast<T*>(smem_raw);
  T* sim = sre + N;
  float4* tw = reinterpret_cast<float4*>(sim + N);
  float2* twl = reinterpret_cast<float2*>(tw + M / 2);
  float2* twh = twl + kTwLo;
  uint32_t* frag = reinterpret_cast<uint32_t*>(twh + S::TWHI);
  uint32_t* frag0 = frag + MT * KS * 8 * 32;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int gid = lane >> 2, tig = lane & 3;

  // Inner twiddles w_M^(k1*n2), in the inner routine's C-fragment order (as monarch_fwd_sq_kernel).
  for (int idx = tid; idx < M / 2; idx += NTH) {
    const int j = idx >> 5, ln = idx & 31;
    const int hh = j & 1, nt = (j >> 1) % NT, mt = (j >> 1) / NT;
    const int k1 = 16 * mt + (ln >> 2) + 8 * hh;
    const int n2 = 8 * nt + 2 * (ln & 3);
    float s0, c0, s1, c1;
    sincospif(-2.0f * static_cast<float>((k1 * n2) % M) / M, &s0, &c0);
    sincospif(-2.0f * static_cast<float>((k1 * (n2 + 1)) % M) / M, &s1, &c1);
    tw[idx] = make_float4(c0, s0, c1, s1);
  }
  for (int i = tid; i < kTwLo + S::TWHI; i += NTH) {
    const int j = i < kTwLo ? i : (i - kTwLo) * kTwLo;
    float s, c;
    sincospif(-2.0f * static_cast<float>(j) / N, &s, &c);
    twl[i] = make_float2(c, s);  // twl and twh are contiguous
  }
  build_dft_frags<T, RAD>(frag, tid, NTH);
  if constexpr (S::kMmaOuter) build_dft_frags<T, N0>(frag0, tid, NTH);
  __syncthreads();

  // w_N^j for any j >= 0 (reduced mod N here).
  auto twN = [&](uint32_t j) -> float2 {
    j &= (N - 1);
    return cmul(twl[j & (kTwLo - 1)], twh[j / kTwLo]);
  };

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
    const float4* kbase = p.kspec + (static_cast<int64_t>(g) * p.H + h) * (N / 2);

    // ---- load: v = pre*u of both rows into the planes (and, for N0 = 2, the outer butterfly).
    if constexpr (N0 <= 2) {
      constexpr float kS = N0 == 2 ? 0.70710678118654752f : 1.f;
      for (int c = tid; c < M / 8; c += NTH) {
        float xr[N0][8], xi[N0][8];
#pragma unroll
        for (int n0 = 0; n0 < N0; ++n0) {
          const int t = n0 * M + 8 * c;
          const uint4 a0 = load8(u + base0, t, L, vec), a1 = load8(u + base1, t, L1, vec);
          unpack8<T>(a0, xr[n0]);
          unpack8<T>(a1, xi[n0]);
          if (pre != nullptr) {
            const uint4 q0 = load8(pre + base0, t, L, vec), q1 = load8(pre + base1, t, L1, vec);
            float g0[8], g1[8];
            unpack8<T>(q0, g0);
            unpack8<T>(q1, g1);
#pragma unroll
            for (int e = 0; e < 8; ++e) {
              xr[n0][e] *= g0[e];
              xi[n0][e] *= g1[e];
            }
          }
        }
        const int m = 8 * c, m1 = m / RAD, m2 = m % RAD;
        if constexpr (N0 == 1) {
          *reinterpret_cast<uint4*>(sre + sig_off<RAD>(0, m1, m2)) = pack8<T>(xr[0]);
          *reinterpret_cast<uint4*>(sim + sig_off<RAD>(0, m1, m2)) = pack8<T>(xi[0]);
        } else {
          float ar[8], ai[8], br[8], bi[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            ar[e] = kS * (xr[0][e] + xr[1][e]);
            ai[e] = kS * (xi[0][e] + xi[1][e]);
            const float2 d = make_float2(kS * (xr[0][e] - xr[1][e]), kS * (xi[0][e] - xi[1][e]));
            const float2 w = cmul(d, twN(static_cast<uint32_t>(m + e)));  // k0 = 1
            br[e] = w.x;
            bi[e] = w.y;
          }
          *reinterpret_cast<uint4*>(sre + sig_off<RAD>(0, m1, m2)) = pack8<T>(ar);
          *reinterpret_cast<uint4*>(sim + sig_off<RAD>(0, m1, m2)) = pack8<T>(ai);
          *reinterpret_cast<uint4*>(sre + sig_off<RAD>(1, m1, m2)) = pack8<T>(br);
          *reinterpret_cast<uint4*>(sim + sig_off<RAD>(1, m1, m2)) = pack8<T>(bi);
        }
      }
    } else {
      // Four chunks per thread per round, all loads issued before any is used.
      constexpr int U = 4;
      const int nch = lpad / 8;
      for (int c0 = tid; c0 < nch; c0 += U * NTH) {
        uint4 a0[U], a1[U], q0[U], q1[U];
#pragma unroll
        for (int i = 0; i < U; ++i) {
          const int t = 8 * (c0 + i * NTH);
          a0[i] = load8(u + base0, t, L, vec);
          a1[i] = load8(u + base1, t, L1, vec);
          if (pre != nullptr) {
            q0[i] = load8(pre + base0, t, L, vec);
            q1[i] = load8(pre + base1, t, L1, vec);
          }
        }
#pragma unroll
        for (int i = 0; i < U; ++i) {
          const int c = c0 + i * NTH;
          if (c < nch) {
            if (pre != nullptr) {
              a0[i] = make_uint4(O::mul2(a0[i].x, q0[i].x), O::mul2(a0[i].y, q0[i].y),
                                 O::mul2(a0[i].z, q0[i].z), O::mul2(a0[i].w, q0[i].w));
              a1[i] = make_uint4(O::mul2(a1[i].x, q1[i].x), O::mul2(a1[i].y, q1[i].y),
                                 O::mul2(a1[i].z, q1[i].z), O::mul2(a1[i].w, q1[i].w));
            }
            const int t = 8 * c, n0 = t / M, m = t % M;
            const int off = sig_off<RAD>(n0, m / RAD, m % RAD);
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

    // ---- outer DFT over n0 (tensor cores), twiddle w_N^(k0 m), in place; one 16-column tile per warp.
    if constexpr (S::kMmaOuter) {
      uint32_t Gr[MT0][MT0][4], Gi[MT0][MT0][4];
      load_dft_frags<MT0, MT0>(Gr, Gi, frag0, lane);
      const int q = lane >> 3, r = lane & 7;
      for (int tile = warp; tile < M / 16; tile += WARPS) {
        const int mc = 16 * tile, m1 = mc / RAD, m2b = mc % RAD;
        uint32_t Xr[MT0][2][2], Xi[MT0][2][2];
#pragma unroll
        for (int ks = 0; ks < MT0; ++ks) {
          uint32_t v[4] = {0u, 0u, 0u, 0u}, w[4] = {0u, 0u, 0u, 0u};
          if (ks < live16) {
            const int off = sig_off<RAD>(16 * ks + 8 * (q & 1) + r, m1, m2b + 8 * (q >> 1));
            ldmatrix_x4_trans(v, sre + off);
            ldmatrix_x4_trans(w, sim + off);
          }
          Xr[ks][0][0] = v[0]; Xr[ks][0][1] = v[1]; Xr[ks][1][0] = v[2]; Xr[ks][1][1] = v[3];
          Xi[ks][0][0] = w[0]; Xi[ks][0][1] = w[1]; Xi[ks][1][0] = w[2]; Xi[ks][1][1] = w[3];
        }
        float Cr[MT0][2][4], Ci[MT0][2][4];
#pragma unroll
        for (int mt = 0; mt < MT0; ++mt)
#pragma unroll
          for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) Cr[mt][nt][e] = Ci[mt][nt][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < MT0; ++ks) {
          if (ks >= live16) continue;
#pragma unroll
          for (int mt = 0; mt < MT0; ++mt)
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
              O::mma(Cr[mt][nt], Gr[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
              O::mma(Cr[mt][nt], Gi[mt][ks], Xi[ks][nt][0] ^ kSignBits, Xi[ks][nt][1] ^ kSignBits);
              O::mma(Ci[mt][nt], Gr[mt][ks], Xi[ks][nt][0], Xi[ks][nt][1]);
              O::mma(Ci[mt][nt], Gi[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
            }
        }
        __syncwarp();
#pragma unroll
        for (int mt = 0; mt < MT0; ++mt)
#pragma unroll
          for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const int k0 = 16 * mt + gid + 8 * hh, m = mc + 8 * nt + 2 * tig;
              const float2 w0 = twN(static_cast<uint32_t>(k0 * m));
              const float2 w1 = twN(static_cast<uint32_t>(k0 * (m + 1)));
              const float2 z0 = cmul(make_float2(Cr[mt][nt][2 * hh], Ci[mt][nt][2 * hh]), w0);
              const float2 z1 = cmul(make_float2(Cr[mt][nt][2 * hh + 1], Ci[mt][nt][2 * hh + 1]), w1);
              const int off = sig_off<RAD>(k0, m1, m2b + 8 * nt + 2 * tig);
              *reinterpret_cast<uint32_t*>(sre + off) = O::pack(z0.x, z1.x);
              *reinterpret_cast<uint32_t*>(sim + off) = O::pack(z0.y, z1.y);
            }
        __syncwarp();
      }
      __syncthreads();
    }

    // ---- inner rows: the M-point routine of monarch_fwd_sq_kernel on each row k0, with
    // row k0's block of K, then the conjugate twiddle conj(w_N^(k0 m)), in place.
    {
      uint32_t Fr[MT][KS][4], Fi[MT][KS][4];
      load_dft_frags<MT, KS>(Fr, Fi, frag, lane);
      for (int k0 = warp; k0 < N0; k0 += WARPS) {
        T* bre = sre + k0 * M;
        T* bim = sim + k0 * M;
        const int key = (k0 & 7) << 3;
        const float4* kk = kbase + k0 * (M / 2);
#pragma unroll
        for (int i = 0; i < (M * 8) / (128 * 32); ++i)
          asm volatile("prefetch.global.L1 [%0];" ::"l"(reinterpret_cast<const char*>(kk) + (lane + 32 * i) * 128));

        float Cr[MT][NT][4], Ci[MT][NT][4];
        {
          uint32_t Xr[KS][NT][2], Xi[KS][NT][2];
          const int q = lane >> 3, r = lane & 7;
#pragma unroll
          for (int ks = 0; ks < KS; ++ks)
#pragma unroll
            for (int ntp = 0; ntp < NT / 2; ++ntp) {
              const int n1 = 16 * ks + 8 * (q & 1) + r;
              const int off = swz_offset<RAD>(n1, 8 * (2 * ntp + (q >> 1))) ^ key;
              uint32_t v[4], w[4];
              ldmatrix_x4_trans(v, bre + off);
              ldmatrix_x4_trans(w, bim + off);
              Xr[ks][2 * ntp][0] = v[0]; Xr[ks][2 * ntp][1] = v[1];
              Xr[ks][2 * ntp + 1][0] = v[2]; Xr[ks][2 * ntp + 1][1] = v[3];
              Xi[ks][2 * ntp][0] = w[0]; Xi[ks][2 * ntp][1] = w[1];
              Xi[ks][2 * ntp + 1][0] = w[2]; Xi[ks][2 * ntp + 1][1] = w[3];
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
              const int ks = nt >> 1, qq = (nt & 1) * 2 + hh;
              Pr[mt][ks][qq] = O::pack(ar * w.x - ai * w.y, br * w.z - bi * w.w);
              Pi[mt][ks][qq] = O::pack(ar * w.y + ai * w.x, br * w.w + bi * w.z);
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

#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const float4 kv = __ldg(kk + ((mt * NT + nt) * 2 + hh) * 32 + lane);
              const float ar = Yr[mt][nt][2 * hh], ai = Yi[mt][nt][2 * hh];
              const float br = Yr[mt][nt][2 * hh + 1], bi = Yi[mt][nt][2 * hh + 1];
              const int ks = nt >> 1, qq = (nt & 1) * 2 + hh;
              Pr[mt][ks][qq] = O::pack(ar * kv.x - ai * kv.y, br * kv.z - bi * kv.w);
              Pi[mt][ks][qq] = O::pack(ar * kv.y + ai * kv.x, br * kv.w + bi * kv.z);
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
              uint32_t nPr[4];
#pragma unroll
              for (int i = 0; i < 4; ++i) nPr[i] = Pr[mt][ks][i] ^ kSignBits;
              const int m2 = nt >> 1, s = nt & 1;
              O::mma(Cr[mt][nt], Pr[mt][ks], Fr[m2][ks][s], Fr[m2][ks][2 + s]);
              O::mma(Cr[mt][nt], Pi[mt][ks], Fi[m2][ks][s], Fi[m2][ks][2 + s]);
              O::mma(Ci[mt][nt], Pi[mt][ks], Fr[m2][ks][s], Fr[m2][ks][2 + s]);
              O::mma(Ci[mt][nt], nPr, Fi[m2][ks][s], Fi[m2][ks][2 + s]);
            }

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

        // Everything of this row was read (step 1) before any lane overwrites it.
        __syncwarp();
        const bool untw = N0 > 1 && k0 > 0;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const int m1 = 16 * mt + gid + 8 * hh, m2 = 8 * nt + 2 * tig;
              float2 z0 = make_float2(Yr[mt][nt][2 * hh], Yi[mt][nt][2 * hh]);
              float2 z1 = make_float2(Yr[mt][nt][2 * hh + 1], Yi[mt][nt][2 * hh + 1]);
              if (untw) {
                const int m = RAD * m1 + m2;
                // times conj(w): w_N^(-j) = w_N^(N - j)
                z0 = cmul(z0, twN(static_cast<uint32_t>(N - k0 * m)));
                z1 = cmul(z1, twN(static_cast<uint32_t>(N - k0 * (m + 1))));
              }
              const int off = swz_offset<RAD>(m1, m2) ^ key;
              *reinterpret_cast<uint32_t*>(bre + off) = O::pack(z0.x, z1.x);
              *reinterpret_cast<uint32_t*>(bim + off) = O::pack(z0.y, z1.y);
            }
        __syncwarp();
      }
    }
    __syncthreads();

    // ---- outer inverse DFT (conj F_N0), output rows n0 with M*n0 < L only, in place.
    if constexpr (S::kMmaOuter) {
      uint32_t Gr[MT0][MT0][4], Gi[MT0][MT0][4];
      load_dft_frags<MT0, MT0>(Gr, Gi, frag0, lane);
      const int q = lane >> 3, r = lane & 7;
      for (int tile = warp; tile < M / 16; tile += WARPS) {
        const int mc = 16 * tile, m1 = mc / RAD, m2b = mc % RAD;
        uint32_t Xr[MT0][2][2], Xi[MT0][2][2];
#pragma unroll
        for (int ks = 0; ks < MT0; ++ks) {
          uint32_t v[4], w[4];
          const int off = sig_off<RAD>(16 * ks + 8 * (q & 1) + r, m1, m2b + 8 * (q >> 1));
          ldmatrix_x4_trans(v, sre + off);
          ldmatrix_x4_trans(w, sim + off);
          Xr[ks][0][0] = v[0]; Xr[ks][0][1] = v[1]; Xr[ks][1][0] = v[2]; Xr[ks][1][1] = v[3];
          Xi[ks][0][0] = w[0]; Xi[ks][0][1] = w[1]; Xi[ks][1][0] = w[2]; Xi[ks][1][1] = w[3];
        }
        float Cr[MT0][2][4], Ci[MT0][2][4];
#pragma unroll
        for (int mt = 0; mt < MT0; ++mt)
#pragma unroll
          for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) Cr[mt][nt][e] = Ci[mt][nt][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < MT0; ++ks)
#pragma unroll
          for (int mt = 0; mt < MT0; ++mt) {
            if (mt >= live16) continue;
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
              O::mma(Cr[mt][nt], Gr[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
              O::mma(Cr[mt][nt], Gi[mt][ks], Xi[ks][nt][0], Xi[ks][nt][1]);
              O::mma(Ci[mt][nt], Gr[mt][ks], Xi[ks][nt][0], Xi[ks][nt][1]);
              O::mma(Ci[mt][nt], Gi[mt][ks], Xr[ks][nt][0] ^ kSignBits, Xr[ks][nt][1] ^ kSignBits);
            }
          }
        __syncwarp();
#pragma unroll
        for (int mt = 0; mt < MT0; ++mt) {
          if (mt >= live16) continue;
#pragma unroll
          for (int nt = 0; nt < 2; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const int n0 = 16 * mt + gid + 8 * hh;
              const int off = sig_off<RAD>(n0, m1, m2b + 8 * nt + 2 * tig);
              *reinterpret_cast<uint32_t*>(sre + off) = O::pack(Cr[mt][nt][2 * hh], Cr[mt][nt][2 * hh + 1]);
              *reinterpret_cast<uint32_t*>(sim + off) = O::pack(Ci[mt][nt][2 * hh], Ci[mt][nt][2 * hh + 1]);
            }
        }
        __syncwarp();
      }
      __syncthreads();
    }

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
            unpack8<T>(load8(post + base0, t, L, vec), g0);
            unpack8<T>(load8(post + base1, t, L1, vec), g1);
#pragma unroll
            for (int e = 0; e < 8; ++e) {
              zr[n0][e] *= g0[e];
              zi[n0][e] *= g1[e];
            }
          }
          store8(y + base0, t, L, vec, pack8<T>(zr[n0]));
          store8(y + base1, t, L1, vec, pack8<T>(zi[n0]));
        }
      }
    } else {
      constexpr int U = 2;
      const int nch = (L + 7) / 8;
      for (int c0 = tid; c0 < nch; c0 += U * NTH) {
        uint4 g0[U], g1[U];
        if (post != nullptr) {
#pragma unroll
          for (int i = 0; i < U; ++i) {
            const int t = 8 * (c0 + i * NTH);
            g0[i] = load8(post + base0, t, L, vec);
            g1[i] = load8(post + base1, t, L1, vec);
          }
        }
#pragma unroll
        for (int i = 0; i < U; ++i) {
          const int c = c0 + i * NTH;
          if (c >= nch) continue;
          const int t = 8 * c, n0 = t / M, m = t % M;
          const int off = sig_off<RAD>(n0, m / RAD, m % RAD);
          float zr[8], zi[8];
          unpack8<T>(*reinterpret_cast<const uint4*>(sre + off), zr);
          unpack8<T>(*reinterpret_cast<const uint4*>(sim + off), zi);
          if (post != nullptr) {
            float p0[8], p1[8];
            unpack8<T>(g0[i], p0);
            unpack8<T>(g1[i], p1);
#pragma unroll
            for (int e = 0; e < 8; ++e) {
              zr[e] *= p0[e];
              zi[e] *= p1[e];
            }
          }
          store8(y + base0, t, L, vec, pack8<T>(zr));
          store8(y + base1, t, L1, vec, pack8<T>(zi));
        }
      }
    }
    __syncthreads();  // the next item's load overwrites the planes
  }
}

// k's spectrum for N = N0 * RAD^2 (any N up to 32768), in the big kernel's order: frequency
// f = k0 + N0*(k1 + RAD*k2) at float offset 2*M*k0 + frag_float_offset<RAD>(k1, k2) of the
// (g, h) block. Same method as monarch_kspec_sq_kernel (N/2-point complex FFT of the even/odd
// packed real k, then the split), with the butterfly loop spread over 1024 threads.
template <int N0, int RAD>
__global__ void __launch_bounds__(1024) monarch_kspec_big_kernel(const float* __restrict__ k, int64_t Lk,
                                                                 const float* __restrict__ skip, float* kspec) {
  constexpr int M = RAD * RAD, N = N0 * M, H2 = N / 2;
  constexpr int LOGH = (N0 == 1 ? 0 : (N0 == 2 ? 1 : (N0 == 16 ? 4 : 5))) + (RAD == 32 ? 10 : 8) - 1;
  static_assert((1 << LOGH) == H2, "log2");
  extern __shared__ float2 zs[];
  float2* twt = zs + H2;
  const int64_t gh = blockIdx.x;
  for (int j = threadIdx.x; j < H2 / 2; j += blockDim.x) {
    float s, c;
    sincospif(-2.0f * static_cast<float>(j) / H2, &s, &c);
    twt[j] = make_float2(c, s);
  }
  const float* kr = k + gh * Lk;
  for (int n = threadIdx.x; n < H2; n += blockDim.x) {
    const int64_t i0 = 2 * n, i1 = 2 * n + 1;
    const float2 z = make_float2(i0 < Lk ? kr[i0] : 0.f, i1 < Lk ? kr[i1] : 0.f);
    zs[__brev(static_cast<unsigned>(n)) >> (32 - LOGH)] = z;
  }
  __syncthreads();
  for (int half = 1; half < H2; half *= 2) {
    for (int i = threadIdx.x; i < H2 / 2; i += blockDim.x) {
      const int pos = i & (half - 1);
      const int a = (i - pos) * 2 + pos, b = a + half;
      const float2 w = twt[pos * (H2 / (2 * half))];
      const float2 xb = zs[b], xa = zs[a];
      const float2 t = make_float2(xb.x * w.x - xb.y * w.y, xb.x * w.y + xb.y * w.x);
      zs[a] = make_float2(xa.x + t.x, xa.y + t.y);
      zs[b] = make_float2(xa.x - t.x, xa.y - t.y);
    }
    __syncthreads();
  }
  float* out = kspec + gh * N * 2;
  const float sk = skip != nullptr ? skip[gh] : 0.f;
  auto offset = [](int f) {
    const int k0 = f % N0, km = f / N0;
    return 2 * M * k0 + frag_float_offset<RAD>(km % RAD, km / RAD);
  };
  for (int f = threadIdx.x; f <= H2; f += blockDim.x) {
    const float2 zf = zs[f & (H2 - 1)];
    const float2 zc = zs[(H2 - f) & (H2 - 1)];
    const float er = 0.5f * (zf.x + zc.x), ei = 0.5f * (zf.y - zc.y);
    const float or_ = 0.5f * (zf.y + zc.y), oi = -0.5f * (zf.x - zc.x);
    float s, c;
    sincospif(-2.0f * static_cast<float>(f) / N, &s, &c);
    const float kr_ = er + (or_ * c - oi * s) + sk, ki = ei + (or_ * s + oi * c);
    {
      const int o = offset(f);
      out[o] = kr_;
      out[o + 1] = ki;
    }
    if (f > 0 && f < H2) {
      const int o = offset(N - f);
      out[o] = kr_;
      out[o + 1] = -ki;
    }
  }
}

template <int N0, int RAD>
constexpr size_t kspec_big_smem_bytes() {
  return sizeof(float2) * (N0 * RAD * RAD / 2 + N0 * RAD * RAD / 4);
}

// (N0, RAD, warps per CTA) for each N, chosen in launch_big_for: warps enough to share the N0
// inner rows, few enough that several CTAs fit per SM so that their phases overlap; 32768 has
// room for one CTA (128 KB of signal) and gets 8 warps.
template <int N0, int RAD>
void big_smem(size_t* main_bytes, size_t* kspec_bytes) {
  *main_bytes = BigShape<N0, RAD>::kSmem;
  *kspec_bytes = kspec_big_smem_bytes<N0, RAD>();
}
bool big_smem_for(int64_t N, size_t* sm, size_t* ksm) {
  switch (N) {
    case 256: big_smem<1, 16>(sm, ksm); return true;
    case 1024: big_smem<1, 32>(sm, ksm); return true;
    case 2048: big_smem<2, 32>(sm, ksm); return true;
    case 4096: big_smem<16, 16>(sm, ksm); return true;
    case 8192: big_smem<32, 16>(sm, ksm); return true;
    case 16384: big_smem<16, 32>(sm, ksm); return true;
    case 32768: big_smem<32, 32>(sm, ksm); return true;
    default: return false;
  }
}

template <typename T, int N0, int RAD, int WARPS>
cudaError_t launch_big(const FftconvFwdArgs& a, cudaStream_t stream, float* kspec) {
  const FftconvDims& d = a.d;
  cudaError_t err;
  auto kk = monarch_kspec_big_kernel<N0, RAD>;
  const size_t ksm = kspec_big_smem_bytes<N0, RAD>();
  if (ksm > 48 * 1024) {
    err = cudaFuncSetAttribute(kk, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(ksm));
    if (err != cudaSuccess) return err;
  }
  const int kthreads = N0 * RAD * RAD >= 4096 ? 1024 : 256;
  kk<<<static_cast<unsigned>(d.G * d.H), kthreads, ksm, stream>>>(a.k, d.Lk, a.skip, kspec);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  auto kern = monarch_fwd_big_kernel<T, N0, RAD, WARPS>;
  const size_t sm = BigShape<N0, RAD>::kSmem;
  err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sm));
  if (err != cudaSuccess) return err;
  int dev = 0, nsm = 0, per_sm = 0;
  if ((err = cudaGetDevice(&dev)) != cudaSuccess) return err;
  if ((err = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev)) != cudaSuccess) return err;
  if ((err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, WARPS * 32, sm)) != cudaSuccess)
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
  // L2 prefetch: on by default only for N0 <= 2 (N = 256/1024 odd L, 2048), where it was
  // measured faster (H200: 2048 0.68 -> 0.57 ms); at N >= 4096 it cost 2-8% (extra L2 traffic
  // competing with K). JFF_MONARCH_L2_PREFETCH=0/1 forces it (a measurement switch).
  const char* pf = std::getenv("JFF_MONARCH_L2_PREFETCH");
  p.l2_prefetch = pf != nullptr ? (pf[0] != '0') : (N0 <= 2);
  const int64_t grid = p.items < int64_t(nsm) * per_sm ? p.items : int64_t(nsm) * per_sm;
  kern<<<static_cast<unsigned>(grid), WARPS * 32, sm, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_big_for(const FftconvFwdArgs& a, cudaStream_t stream, float* kspec) {
  switch (a.d.N) {
    case 256: return launch_big<T, 1, 16, 1>(a, stream, kspec);
    case 1024: return launch_big<T, 1, 32, 1>(a, stream, kspec);
    case 2048: return launch_big<T, 2, 32, 2>(a, stream, kspec);
    case 4096: return launch_big<T, 16, 16, 4>(a, stream, kspec);
    case 8192: return launch_big<T, 32, 16, 4>(a, stream, kspec);
    case 16384: return launch_big<T, 16, 32, 4>(a, stream, kspec);
    case 32768: return launch_big<T, 32, 32, 8>(a, stream, kspec);
    default: return cudaErrorInvalidValue;
  }
}

// The cp.async kernel (N = 256/1024 with 16-byte aligned rows) is the faster path where it applies.
bool use_sq(const FftconvDims& d) { return radix_of(d.N) != 0 && d.L % 8 == 0; }

}  // namespace

bool monarch_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  if (device_major < 8) return false;
  if (d.dtype != DType::kBF16 && d.dtype != DType::kF16) return false;
  if (d.layout != kBHL) return false;
  size_t sm = 0, ksm = 0;
  if (!big_smem_for(d.N, &sm, &ksm)) return false;  // N = 256 .. 32768
  if (d.B < 1 || d.H < 1 || d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  if (d.G < 1 || d.R < 1) return false;
  // Rows 2p and 2p+1 share one transform, hence one filter group.
  if (d.G != 1 && d.R % 2 != 0) return false;
  if (use_sq(d)) {
    const int rad = radix_of(d.N);
    sm = rad == 16 ? sq_smem_bytes<16>() : sq_smem_bytes<32>();
    ksm = rad == 16 ? kspec_smem_bytes<16>() : kspec_smem_bytes<32>();
  }
  // Falls back (false) where the device's per-block opt-in shared memory is too small, e.g.
  // N = 32768 (150 KB main, 192 KB pre-kernel) on a GPU with less than 192 KB.
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
  if (use_sq(d)) {
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
  if (d.dtype == DType::kBF16) return launch_big_for<__nv_bfloat16>(a, stream, kspec);
  if (d.dtype == DType::kF16) return launch_big_for<__half>(a, stream, kspec);
  return cudaErrorInvalidValue;
}

}  // namespace jff
