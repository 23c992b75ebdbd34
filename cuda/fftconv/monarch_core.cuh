// Shared device code of the tensor-core fftconv kernels (monarch_fwd.cu, monarch_bwd.cu).
//
// Everything here is in an anonymous namespace: each translation unit that includes this
// header gets its own internal copy, so monarch_fwd.cu and monarch_bwd.cu link into one
// module without ODR clashes, while the source exists once.
//
// Transform (DESIGN.md §3, details in monarch_fwd.cu's header comment). Inner size
// M = RAD * RAD (RAD = 16 or 32): a row x is the RAD x RAD matrix X[n1][n2] = x[RAD*n1 + n2];
// with F the unitary RAD-point DFT and T[k1][n2] = w_M^(k1*n2):
//   Y = ((F X) .* T) F          Y[k1][k2] = xhat[k1 + RAD*k2] / sqrt(M)
//   out = conj(F) (((Y .* K) conj(F)) .* conj(T))
// held in mma.sync fragments by one warp, two real rows packed as one complex signal.
// Outer level for N = N0 * M (N0 = 1, 2, 16, 32), n = M*n0 + m:
//   C[k0][m] = sum_n0 x[M n0 + m] w_N0^(k0 n0) / sqrt(N0),  c_k0[m] = C[k0][m] w_N^(k0 m),
//   inner routine on row k0 (its spectrum is xhat[k0 + N0*km] / sqrt(N)), conj twiddle,
//   outer inverse. The whole complex signal sits in shared memory (two 16-bit planes).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "common/smem_fft.cuh"
#ifndef JFF_LONG_EMU
#include "common/pdl.cuh"
#endif

namespace jff {
namespace {

// ---------------------------------------------------------------------------------------
// Launches. The k-spectrum pre-kernel, the BHL main kernels and the dk reduction can go out with
// programmatic dependent launch (common/pdl.cuh): each is then scheduled while the grid before it
// on the stream drains, instead of after it has completed, which saves the launch gap between the
// pre-kernel and the main kernel (and the main kernel and the reduction) of every call, a few
// microseconds against a 40 us forward at N = 256. Measured on an H200 through JAX it did not pay
// (N = 256 6-7% slower, 4K 2-3% slower, 1K 2% faster; benchmarks/notes_monarch.md, session 17),
// so it is opt-in with JFF_FFTCONV_PDL=1 (JFF_PDL=0 still turns every such launch off). The BLH
// kernels (thread block clusters) launch as before.
// ---------------------------------------------------------------------------------------
inline bool fftconv_pdl_requested() {
  static const bool on = [] {
    const char* v = std::getenv("JFF_FFTCONV_PDL");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

// The first statement of every kernel launch_kernel starts: waits until the grids before it on the
// stream have completed and their memory is visible, then lets the next grid be scheduled. A no-op
// for a grid launched without the attribute.
__device__ __forceinline__ void begin_after_prior_grids() {
#ifndef JFF_LONG_EMU
  pdl::BeginKernel();
#endif
}

// Named barrier ID (1..15; 0 is __syncthreads) for `threads` of the CTA, whole warps: with WAIT
// (bar.sync) the caller waits until `threads` have arrived; without (bar.arrive) it counts itself and
// goes on, its earlier memory accesses ordered before the syncing threads' later ones. The id is a
// compile-time constant: with a register id ptxas reserves all 16 barriers for the kernel.
template <int ID, bool WAIT>
__device__ __forceinline__ void named_barrier(int threads) {
  static_assert(ID >= 1 && ID <= 15, "named barrier id");
#ifdef JFF_LONG_EMU
  ::jff_emu::named_barrier(ID, threads, WAIT);
#else
  if constexpr (WAIT)
    asm volatile("bar.sync %0, %1;" ::"n"(ID), "r"(threads) : "memory");
  else
    asm volatile("bar.arrive %0, %1;" ::"n"(ID), "r"(threads) : "memory");
#endif
}

// Launches kern(args...) on (grid, block, smem, stream), with the PDL attribute where requested and
// enabled; returns the launch's error. (The CPU emulation builds rewrite the plain launch.)
template <typename... P, typename... A>
cudaError_t launch_kernel(void (*kern)(P...), unsigned grid, unsigned block, size_t smem, cudaStream_t stream,
                          A... args) {
#ifdef JFF_LONG_EMU
  kern<<<grid, block, smem, stream>>>(args...);
  return cudaGetLastError();
#else
  return pdl::Launch(fftconv_pdl_requested(), kern, dim3(grid), dim3(block), smem, stream, args...);
#endif
}

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
  // x * y + z and x * y - z on packed pairs, one rounding each (ptxas folds the negation into the
  // FMA as an operand modifier). PTX rather than __hfma2, which a host compiler parsing this
  // header for the CPU emulation does not declare.
  static __device__ __forceinline__ uint32_t fma2(uint32_t x, uint32_t y, uint32_t z) {
    uint32_t r;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
    return r;
  }
  static __device__ __forceinline__ uint32_t fms2(uint32_t x, uint32_t y, uint32_t z) {
    uint32_t r;
    asm("{.reg .b32 nz;\n\tneg.bf16x2 nz, %3;\n\tfma.rn.bf16x2 %0, %1, %2, nz;}" : "=r"(r) : "r"(x), "r"(y), "r"(z));
    return r;
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
  static __device__ __forceinline__ uint32_t fma2(uint32_t x, uint32_t y, uint32_t z) {
    uint32_t r;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));
    return r;
  }
  static __device__ __forceinline__ uint32_t fms2(uint32_t x, uint32_t y, uint32_t z) {
    uint32_t r;
    asm("{.reg .b32 nz;\n\tneg.f16x2 nz, %3;\n\tfma.rn.f16x2 %0, %1, %2, nz;}" : "=r"(r) : "r"(x), "r"(y), "r"(z));
    return r;
  }
};

constexpr uint32_t kSignBits = 0x80008000u;  // negates both 16-bit halves (fp16 and bf16)

// The pointwise products of the inner DFTs on packed 16-bit pairs (kPackedCmul) or in float32.
// Packed: the accumulators are rounded to 16 bits first (they are rounded once after the product
// otherwise) and the complex product takes two packed multiplies and two packed FMAs per two bins,
// against eight float32 operations; the twiddle table holds packed pairs and bfloat16 K is regrouped
// by two byte permutes instead of four unpacking operations. Each product then rounds three times
// instead of once: emulated, bf16 errors rise ~15% (32K: 6.4e-3 -> 7.3e-3), fp16 ~20%.
#ifndef JFF_PACKED_CMUL
#define JFF_PACKED_CMUL 1
#endif
constexpr bool kPackedCmul = JFF_PACKED_CMUL != 0;

// Two complex factors as packed 16-bit pairs: x = real parts (bin 0 low), y = imaginary parts.
template <typename T>
__device__ __forceinline__ uint2 pack_factors(float4 f) {
  return make_uint2(Ops<T>::pack(f.x, f.z), Ops<T>::pack(f.y, f.w));
}
// bfloat16 K as stored (KSpecOf): {re0 | im0 << 16, re1 | im1 << 16}.
__device__ __forceinline__ uint2 regroup_factors(uint2 v) {
  return make_uint2((v.x & 0xffffu) | (v.y << 16), (v.x >> 16) | (v.y & 0xffff0000u));
}

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

// Whether a kernel touches a stream element again after this access. The last access of a stream
// that is read or written once (the forward's u, pre, post, y; the backward's dy, post, outputs,
// and u / pre in its final pass) can go with the evict-first "streaming" policy (ld/st.global.cs):
// those lines then leave L2 first, and what the kernel reads again stays there: the filter
// spectrum K' (read per row pair, by every pair of a row group), the backward's u and pre (read in
// passes 1, 2 and 4) and its X buffer. ncu of the backward at 4096 showed 6.5% L2 hits on loads
// and DRAM reads of 3x the streams: K' and the u / pre rereads each cost about a stream's worth.
// H200, B=64 H=768 bf16, off -> on (A/B in one call, two rounds): backward 4096 2.630 -> 2.427 ms,
// 8192 7.68 -> 7.64, 32768 38.2 -> 38.3; forward 1024 0.181 -> 0.175, 4096 0.777 -> 0.770,
// 8192-32768 within 1%. JFF_STREAM_HINTS=0 turns it off (A/B runs, benchmarks/device_monarch_ab.sh).
#ifndef JFF_STREAM_HINTS
#define JFF_STREAM_HINTS 1
#endif
enum class Touch { kAgain, kLast };

// 16-byte async copy; src_bytes = 0 fills the destination with zeros (implicit padding).
template <Touch W = Touch::kAgain>
__device__ __forceinline__ void cp_async16(void* smem_ptr, const void* gptr, int src_bytes) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(smem_ptr));
  if constexpr (W == Touch::kLast && JFF_STREAM_HINTS) {
    uint64_t policy;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;" ::"r"(a), "l"(gptr),
                 "r"(src_bytes), "l"(policy)
                 : "memory");
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(a), "l"(gptr), "r"(src_bytes)
                 : "memory");
  }
}

template <Touch W, typename V>
__device__ __forceinline__ V load_hinted(const V* p) {
  if constexpr (W == Touch::kLast && JFF_STREAM_HINTS) return __ldcs(p);
  else return __ldg(p);
}
template <Touch W, typename V>
__device__ __forceinline__ void store_hinted(V* p, V v) {
  if constexpr (W == Touch::kLast && JFF_STREAM_HINTS) __stcs(p, v);
  else *p = v;
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
}

__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
  return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
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

// Signal of N0 blocks of M = RAD^2: block n0 keeps the inner swizzle and XORs its 16-byte
// chunk index with (n0 & 7). A constant XOR per block keeps the inner routine's accesses
// conflict-free, and it spreads the outer DFT's ldmatrix rows (8 consecutive n0 at the
// same m) over 8 bank groups.
template <int RAD>
__device__ __forceinline__ int sig_off(int n0, int m1, int m2) {
  return n0 * (RAD * RAD) + (swz_offset<RAD>(m1, m2) ^ ((n0 & 7) << 3));
}
// sig_off of signal element t >= 0 (t = n0 M + m), by unsigned division: signed division by a power
// of two costs sign fix-ups (about 8 more instructions per chunk in the load and store loops). Not in
// the backward's exchange: there it took the 8K kernel from 128 to 150 registers (fewer CTAs per SM).
template <int RAD>
__device__ __forceinline__ int chunk_sig_off(int t) {
  constexpr unsigned M = RAD * RAD;
  const unsigned ut = static_cast<unsigned>(t), m = ut % M;
  return sig_off<RAD>(static_cast<int>(ut / M), static_cast<int>(m / RAD), static_cast<int>(m % RAD));
}

// Zeros into both planes at elements [from, to) (multiples of 8), NTH threads: where an element pass
// would write the outer DFT's input for the rows' zero padding (t >= L but below its 16-row k-steps:
// the second half of a causal row at N0 = 16). Running the pass's own loop there loaded nothing and
// computed zeros, a tenth of the causal 4K backward (notes_monarch.md, session 52).
template <typename T, int RAD, int NTH>
__device__ __forceinline__ void zero_chunks(T* sre, T* sim, int from, int to, int tid) {
  for (int c = from / 8 + tid; c < to / 8; c += NTH) {
    const int off = chunk_sig_off<RAD>(8 * c);
    *reinterpret_cast<uint4*>(sre + off) = make_uint4(0u, 0u, 0u, 0u);
    *reinterpret_cast<uint4*>(sim + off) = make_uint4(0u, 0u, 0u, 0u);
  }
}

// C-fragment order, the layout of the inner twiddle table, of K and of the dk slots: float4 index
// j*32 + lane holds two complex values for C-fragment (mt, nt), half hh: row 16mt + gid + 8hh,
// columns 8nt + 2tig and + 1, with j = (mt*NT + nt)*2 + hh. Returns the float offset of (row, col).
template <int RAD>
__host__ __device__ __forceinline__ int frag_float_offset(int row, int col) {
  constexpr int NT = RAD / 8;
  const int mt = row >> 4, hh = (row >> 3) & 1, gid = row & 7;
  const int nt = col >> 3, tig = (col >> 1) & 3, e0 = col & 1;
  const int j = (mt * NT + nt) * 2 + hh;
  return (j * 32 + gid * 4 + tig) * 4 + 2 * e0;
}

// Inverse of frag_float_offset at float4 granularity: float4 `idx` holds (row, col), (row, col+1).
template <int RAD>
__device__ __forceinline__ void frag_coords(int idx, int& row, int& col) {
  constexpr int NT = RAD / 8;
  const int j = idx >> 5, ln = idx & 31;
  const int hh = j & 1, nt = (j >> 1) % NT, mt = (j >> 1) / NT;
  row = 16 * mt + (ln >> 2) + 8 * hh;
  col = 8 * nt + 2 * (ln & 3);
}

// The tensor-core DFTs hold a row's spectrum transposed: dft_pair's step 2 computes Y^T = F P^T and
// idft_pair's step 3 V = conj(F) W^T, so that every product takes F as its A operand and the 16-bit
// values between the steps go from accumulators into B fragments as they stand (or through one
// movmatrix). With F as the B operand, as before session 15, each product needed the pairs
// {F[s], F[2+s]}, which F's A layout does not hold in consecutive registers: ~30 register moves
// per inner row at 8K and ~260 instructions per row pair at 1K. H200, issue-3 rows: forward 4K
// 0.669 -> 0.640 ms, 8K 1.405 -> 1.379, 16K 4.08 -> 3.69, 32K 9.12 -> 9.05; BLH 16K 6.72 -> 5.57.

// Where the inner frequency km = k1 + RAD*k2 of a row's spectrum sits in C-fragment order: at
// (row k2, col k1), since the spectrum is held transposed.
template <int RAD>
__host__ __device__ __forceinline__ int spec_float_offset(int km) {
  return frag_float_offset<RAD>(km / RAD, km % RAD);
}
// The inner frequencies of float4 `idx` of a spectrum in C-fragment order (K, dk slots).
template <int RAD>
__device__ __forceinline__ void spec_freqs(int idx, unsigned& f0, unsigned& f1) {
  int row, col;
  frag_coords<RAD>(idx, row, col);
  f0 = col + RAD * row;
  f1 = f0 + 1;
}

// Calls f(mt, nt, hh, s) for each of a lane's two-bin slots of a spectrum in C-fragment order: bins 2hh and
// 2hh + 1 of accumulator tile (mt, nt), at slot s = (mt * NT + nt) * 2 + hh of the K / dk layouts (float4 or uint2
// index s * 32 + lane). Unrolled, so the tile indices stay compile-time register indices.
template <int RAD, typename F>
__device__ __forceinline__ void for_each_slot(F&& f) {
  constexpr int MT = RAD / 16, NT = RAD / 8;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) f(mt, nt, hh, (mt * NT + nt) * 2 + hh);
}

// Inner twiddles w_M^(k1*n2), M = RAD^2, in C-fragment order (M/2 float4; kPackedCmul: M/2 uint2 of packed
// factors, pack_factors, in the first half of that space).
template <typename T, int RAD>
__device__ void init_inner_twiddles(float4* tw, int tid, int nthreads) {
  constexpr int M = RAD * RAD;
  for (int idx = tid; idx < M / 2; idx += nthreads) {
    int k1, n2;
    frag_coords<RAD>(idx, k1, n2);
    float s0, c0, s1, c1;
    sincospif(-2.0f * static_cast<float>((k1 * n2) % M) / M, &s0, &c0);
    sincospif(-2.0f * static_cast<float>((k1 * (n2 + 1)) % M) / M, &s1, &c1);
    if (kPackedCmul) {
      reinterpret_cast<uint2*>(tw)[idx] = pack_factors<T>(make_float4(c0, s0, c1, s1));
    } else {
      tw[idx] = make_float4(c0, s0, c1, s1);
    }
  }
}

// Entry q of A fragment (mt, ks) of the unitary D-point DFT matrix F[r][c] = w_D^(r*c)/sqrt(D)
// for lane `lane`: real and imaginary parts, each a packed 16-bit pair (columns c, c+1).
template <typename T, int D>
__device__ __forceinline__ void dft_frag_entry(int mt, int ks, int q, int lane, uint32_t& re,
                                               uint32_t& im) {
  const float scale = rsqrtf(static_cast<float>(D));
  const int r = 16 * mt + (lane >> 2) + 8 * (q & 1);
  const int c = 16 * ks + 8 * (q >> 1) + 2 * (lane & 3);
  float s0, c0, s1, c1;
  sincospif(-2.0f * static_cast<float>((r * c) % D) / D, &s0, &c0);
  sincospif(-2.0f * static_cast<float>((r * (c + 1)) % D) / D, &s1, &c1);
  re = Ops<T>::pack(c0 * scale, c1 * scale);
  im = Ops<T>::pack(s0 * scale, s1 * scale);
}

// The DFT matrix straight into registers (the one-warp-per-pair kernels).
template <typename T, int RAD>
__device__ __forceinline__ void dft_frags_regs(uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                               uint32_t (&Fi)[RAD / 16][RAD / 16][4], int lane) {
#pragma unroll
  for (int mt = 0; mt < RAD / 16; ++mt)
#pragma unroll
    for (int ks = 0; ks < RAD / 16; ++ks)
#pragma unroll
      for (int q = 0; q < 4; ++q) dft_frag_entry<T, RAD>(mt, ks, q, lane, Fr[mt][ks][q], Fi[mt][ks][q]);
}

// The DFT matrix of size D as a shared table, plane-major per lane: entry
// ((mt*KSD + ks)*4 + q)*2 + plane, times 32 lanes (built once per CTA, loaded per phase).
template <typename T, int D>
__device__ void build_dft_frags(uint32_t* tab, int tid, int nthreads) {
  constexpr int KSD = D / 16;
  for (int idx = tid; idx < (D / 16) * KSD * 4 * 32; idx += nthreads) {
    const int lane = idx & 31, e = idx >> 5;
    const int q = e & 3, ks = (e >> 2) % KSD, mt = (e >> 2) / KSD;
    dft_frag_entry<T, D>(mt, ks, q, lane, tab[(e * 2 + 0) * 32 + lane], tab[(e * 2 + 1) * 32 + lane]);
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

// ---------------------------------------------------------------------------------------
// The inner M-point routine of one warp, in three pieces so that the backward can act
// between them (keep the spectrum, accumulate dk's spectrum).
// ---------------------------------------------------------------------------------------

// The one-warp kernels' 16-row blocks of the RAD x RAD signal (row n1 = n / RAD) that hold input
// or stored output for length L: half of them at L <= N/2 (the causal case). Step 1's k-steps and
// step 4's m-tiles past them are skipped (dft_pair / idft_pair).
template <int RAD>
__device__ __forceinline__ int live_row_blocks(int L) {
  constexpr int KS = RAD / 16;
  const int blocks = (L + 16 * RAD - 1) / (16 * RAD);
  return KS == 1 ? 1 : (blocks < KS ? blocks : KS);
}

// Slot (mt, nt, hh) of a spectrum in C fragments (two complex values) times the slot's two complex
// factors f = (f.x + i f.y, f.z + i f.w), or their conjugates, packed to 16 bits: real parts, imaginary
// parts. The pointwise products of the inner DFTs (twiddle T, filter K) are all this.
template <typename T, int RAD, bool CONJ>
__device__ __forceinline__ auto slot_cmul_pack(const float (&Yr)[RAD / 16][RAD / 8][4],
                                               const float (&Yi)[RAD / 16][RAD / 8][4], int mt, int nt, int hh,
                                               float4 f) {
  using O = Ops<T>;
  if (CONJ) {
    f.y = -f.y;
    f.w = -f.w;
  }
  const float ar = Yr[mt][nt][2 * hh], ai = Yi[mt][nt][2 * hh];
  const float br = Yr[mt][nt][2 * hh + 1], bi = Yi[mt][nt][2 * hh + 1];
  struct Packed {
    decltype(O::pack(0.f, 0.f)) re, im;
  };
  return Packed{O::pack(ar * f.x - ai * f.y, br * f.z - bi * f.w), O::pack(ar * f.y + ai * f.x, br * f.w + bi * f.z)};
}
// The same with packed factors (pack_factors' layout), on packed pairs.
template <typename T, int RAD, bool CONJ>
__device__ __forceinline__ auto slot_cmul_pack(const float (&Yr)[RAD / 16][RAD / 8][4],
                                               const float (&Yi)[RAD / 16][RAD / 8][4], int mt, int nt, int hh,
                                               uint2 f) {
  using O = Ops<T>;
  const auto xr = O::pack(Yr[mt][nt][2 * hh], Yr[mt][nt][2 * hh + 1]);
  const auto xi = O::pack(Yi[mt][nt][2 * hh], Yi[mt][nt][2 * hh + 1]);
  using P = decltype(xr);
  struct Packed {
    P re, im;
  };
  if (CONJ) return Packed{P{O::fma2(xr, f.x, O::mul2(xi, f.y))}, P{O::fms2(xi, f.x, O::mul2(xr, f.y))}};
  return Packed{P{O::fms2(xr, f.x, O::mul2(xi, f.y))}, P{O::fma2(xr, f.y, O::mul2(xi, f.x))}};
}

// Entry e of the inner twiddle table in the form slot_cmul_pack takes (init_inner_twiddles' layout).
__device__ __forceinline__ auto tw_factors(const float4* tw, int e) {
  if constexpr (kPackedCmul) {
    return reinterpret_cast<const uint2*>(tw)[e];
  } else {
    return tw[e];
  }
}

// C .* T (CONJ: C .* conj(T)) for C in accumulators, T the inner twiddle table (C-fragment
// order), packed to 16 bits as B fragments [k-tile][n-tile][half] of its transpose: accumulator
// (row r, cols c, c+1) is entry (k = c, c+1; n = r) of the transpose, half of a B fragment as it
// stands, so no register moves or transposes are needed.
template <typename T, int RAD, bool CONJ>
__device__ __forceinline__ void twiddle_to_bt(const float (&Cr)[RAD / 16][RAD / 8][4],
                                              const float (&Ci)[RAD / 16][RAD / 8][4], const float4* tw,
                                              int lane, uint32_t (&Br)[RAD / 16][RAD / 8][2],
                                              uint32_t (&Bi)[RAD / 16][RAD / 8][2]) {
  for_each_slot<RAD>([&](int mt, int nt, int hh, int s) {
    const auto z = slot_cmul_pack<T, RAD, CONJ>(Cr, Ci, mt, nt, hh, tw_factors(tw, s * 32 + lane));
    Br[nt >> 1][2 * mt + hh][nt & 1] = z.re;
    Bi[nt >> 1][2 * mt + hh][nt & 1] = z.im;
  });
}

// Steps 1-2: unitary DFT of the row pair a0*g0 + i a1*g1 held in swizzled shared memory
// (gates optional: g0 == nullptr means none; `key` XORs every offset, the big kernels' block
// swizzle), into C fragments in spectrum order (spec_float_offset). Only the first `live_ks` 16-row k-steps of step 1
// are computed: the caller promises that rows n1 >= 16 * live_ks are zero (the one-warp kernels
// with L <= N/2, whose zero half is rows RAD/2 .. RAD - 1). Skipped k-steps would only add zeros,
// so the result is the same to the bit. k-step 0 runs whatever live_ks says (row 0 holds input for
// any L >= 1): the compiler then reads the accumulators' starting zeros as RZ.
template <typename T, int RAD>
__device__ __forceinline__ void dft_pair(const T* a0, const T* a1, const T* g0, const T* g1, int key,
                                         const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                         const uint32_t (&Fi)[RAD / 16][RAD / 16][4],
                                         const float4* tw, int lane,
                                         float (&Yr)[RAD / 16][RAD / 8][4],
                                         float (&Yi)[RAD / 16][RAD / 8][4], int live_ks = RAD / 16) {
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
        if (ks > 0 && ks >= live_ks) continue;  // k-step 0 always (see above)
        const int n1 = 16 * ks + 8 * (q & 1) + r;
        const int off = swz_offset<RAD>(n1, 8 * (2 * ntp + (q >> 1))) ^ key;
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
          if (ks > 0 && ks >= live_ks) continue;  // k-step 0 always (see above)
          O::mma(Cr[mt][nt], Fr[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
          O::mma(Cr[mt][nt], Fi[mt][ks], Xi[ks][nt][0] ^ kSignBits, Xi[ks][nt][1] ^ kSignBits);
          O::mma(Ci[mt][nt], Fr[mt][ks], Xi[ks][nt][0], Xi[ks][nt][1]);
          O::mma(Ci[mt][nt], Fi[mt][ks], Xr[ks][nt][0], Xr[ks][nt][1]);
        }
  }
  // Twiddle, then step 2: Y^T = F P^T (F symmetric), P = C .* T, every product with F as its A operand.
  uint32_t Pr[KS][NT][2], Pi[KS][NT][2];
  twiddle_to_bt<T, RAD, false>(Cr, Ci, tw, lane, Pr, Pi);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) Yr[mt][nt][e] = Yi[mt][nt][e] = 0.f;
#pragma unroll
  for (int ks = 0; ks < KS; ++ks)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const uint32_t nPi0 = Pi[ks][nt][0] ^ kSignBits, nPi1 = Pi[ks][nt][1] ^ kSignBits;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        O::mma(Yr[mt][nt], Fr[mt][ks], Pr[ks][nt][0], Pr[ks][nt][1]);
        O::mma(Yr[mt][nt], Fi[mt][ks], nPi0, nPi1);
        O::mma(Yi[mt][nt], Fr[mt][ks], Pi[ks][nt][0], Pi[ks][nt][1]);
        O::mma(Yi[mt][nt], Fi[mt][ks], Pr[ks][nt][0], Pr[ks][nt][1]);
      }
    }
}

// K's storage. One lane slot holds two complex bins in fragment order (frag_float_offset): a float4
// of float32, or, for bfloat16 data, four bfloat16 in a uint2.
// That halves the L2 reads of K, which every row pair of a channel repeats: 32 KB per pair at
// N = 4096 in float32 in the forward (half the pair's own HBM traffic), twice that in the backward
// (K for dpost, conj(K) for dv). bfloat16 rounding of K (relative 2^-9) is below that of the bfloat16
// products it multiplies; float16 data (a 5x tighter error bar) and the long path keep float32.
template <typename T>
struct KSpecOf {
  using Slot = float4;
  using Elem = float;
};
template <>
struct KSpecOf<__nv_bfloat16> {
  using Slot = uint2;
  using Elem = uint16_t;  // bfloat16 bits
};

// Bytes of the spectrum of G*H filters of N bins (forward and backward scratch).
inline size_t kspec_bytes_for(bool bf16, int64_t GH, int64_t N) {
  const size_t elem = bf16 ? sizeof(KSpecOf<__nv_bfloat16>::Elem) : sizeof(KSpecOf<__half>::Elem);
  return static_cast<size_t>(GH) * static_cast<size_t>(N) * 2 * elem;
}

// p itself, as a value the compiler cannot see through: loads at constant offsets from it then address
// [p + immediate]. Without it, a row's K slots (kk + s * 32 + lane) were addressed as 64-bit element
// indices, each scaled and added to the kernel's K pointer: ~5 integer instructions per load, ~20 of the 4K
// inner row's 370 (SASS sm_90a, session 34). JFF_K_LANE_POINTER=0: as before (not yet timed).
#ifndef JFF_K_LANE_POINTER
#define JFF_K_LANE_POINTER 1
#endif
constexpr bool kKLanePointer = JFF_K_LANE_POINTER != 0;
template <typename P>
__device__ __forceinline__ P* opaque_ptr(P* p) {
#ifndef JFF_LONG_EMU
  asm("" : "+l"(p));
#endif
  return p;
}

__device__ __forceinline__ float4 load_k_slot(const uint2* p) {
  const uint2 v = __ldg(p);
  return make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u), __uint_as_float(v.y << 16),
                     __uint_as_float(v.y & 0xffff0000u));
}
// K's slot in the form slot_cmul_pack takes: packed factors (kPackedCmul) or float32.
template <typename T>
__device__ __forceinline__ auto k_factors(const float4* p) {
  if constexpr (kPackedCmul) {
    return pack_factors<T>(__ldg(p));
  } else {
    return __ldg(p);
  }
}
template <typename T>
__device__ __forceinline__ auto k_factors(const uint2* p) {
  if constexpr (kPackedCmul) {
    return regroup_factors(__ldg(p));
  } else {
    return load_k_slot(p);
  }
}

// What mul_spec hands idft_pair: B fragments [k-tile][n-tile][half] of the product W^T (the
// spectrum is held transposed), for step 3's conj(F) W^T.
template <int RAD>
using SpecFrags = uint32_t[RAD / 16][RAD / 8][2];

// Pointwise product of a spectrum (C fragments) with K or conj(K) (kk: this row's block of
// K in fragment order, read through the read-only path), packed into the fragments of the
// inverse's first product (SpecFrags).
template <typename T, int RAD, bool CONJ, typename KSlot>
__device__ __forceinline__ void mul_spec(const float (&Yr)[RAD / 16][RAD / 8][4],
                                         const float (&Yi)[RAD / 16][RAD / 8][4],
                                         const KSlot* kk, int lane, SpecFrags<RAD>& Pr, SpecFrags<RAD>& Pi) {
  const KSlot* const kl = kKLanePointer ? opaque_ptr(kk + lane) : kk;
  const int lane_off = kKLanePointer ? 0 : lane;
  for_each_slot<RAD>([&](int mt, int nt, int hh, int s) {
    // The 8x8 tile (rows 16mt + 8hh.., cols 8nt..) of W^T, transposed in registers, is half hh
    // of B fragment (k-tile mt, n-tile nt) of W^T.
    const auto z = slot_cmul_pack<T, RAD, CONJ>(Yr, Yi, mt, nt, hh, k_factors<T>(kl + s * 32 + lane_off));
    Pr[mt][nt][hh] = movmatrix_trans(z.re);
    Pi[mt][nt][hh] = movmatrix_trans(z.im);
  });
}

// Steps 3-4: out = conj(F) ((W conj(F)) .* conj(T)), W from mul_spec (SpecFrags). Row 0's result
// is out's real part, row 1's the imaginary part, both in C fragments (n1 = row, n2 = col).
// Only the first `live_mt` 16-row m-tiles of step 4 are computed (the others are left zero): the
// caller uses output rows n1 < 16 * live_mt only (the one-warp kernels with L <= N/2).
template <typename T, int RAD>
__device__ __forceinline__ void idft_pair(const SpecFrags<RAD>& Pr, const SpecFrags<RAD>& Pi,
                                          const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                          const uint32_t (&Fi)[RAD / 16][RAD / 16][4],
                                          const float4* tw, int lane,
                                          float (&Yr)[RAD / 16][RAD / 8][4],
                                          float (&Yi)[RAD / 16][RAD / 8][4], int live_mt = RAD / 16) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, KS = RAD / 16, NT = RAD / 8;
  // Step 3: V = conj(F) W^T = (W conj(F))^T, with F as the A operand.
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
    for (int nt = 0; nt < NT; ++nt) {
      const uint32_t nPr0 = Pr[ks][nt][0] ^ kSignBits, nPr1 = Pr[ks][nt][1] ^ kSignBits;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        O::mma(Cr[mt][nt], Fr[mt][ks], Pr[ks][nt][0], Pr[ks][nt][1]);
        O::mma(Cr[mt][nt], Fi[mt][ks], Pi[ks][nt][0], Pi[ks][nt][1]);
        O::mma(Ci[mt][nt], Fr[mt][ks], Pi[ks][nt][0], Pi[ks][nt][1]);
        O::mma(Ci[mt][nt], Fi[mt][ks], nPr0, nPr1);
      }
    }
  // conj twiddle (T is symmetric, so V's entry (r, c) takes the table's entry at the same place),
  // into B fragments of V^T = W conj(F) for step 4.
  uint32_t Qr[KS][NT][2], Qi[KS][NT][2];
  twiddle_to_bt<T, RAD, true>(Cr, Ci, tw, lane, Qr, Qi);
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
        if (mt > 0 && mt >= live_mt) continue;  // tile 0 always: zeros as RZ
        O::mma(Yr[mt][nt], Fr[mt][ks], Qr[ks][nt][0], Qr[ks][nt][1]);
        O::mma(Yr[mt][nt], Fi[mt][ks], Qi[ks][nt][0], Qi[ks][nt][1]);
        O::mma(Yi[mt][nt], Fr[mt][ks], Qi[ks][nt][0], Qi[ks][nt][1]);
        O::mma(Yi[mt][nt], Fi[mt][ks], Qr[ks][nt][0] ^ kSignBits, Qr[ks][nt][1] ^ kSignBits);
      }
}

// ---------------------------------------------------------------------------------------
// Big kernels (one CTA per row pair, N = N0 * M, signal in shared memory).
// ---------------------------------------------------------------------------------------
constexpr int kTwLo = 128;

// store_inner_row's per-row twiddle base w_N^(-k0 (RAD gid + 2 tig)) read from a table of N0 x 32 entries built
// once per CTA (BigShape::kLaneTw, N = 4096) instead of looked up per row: the lookup was two 8-byte shared loads
// at scattered entries (the CPU bank profiler, session 33: 3-4x their ideal wavefronts), a product and ~6 integer
// instructions for the index; the table is one conflict-free load (a warp reads 32 consecutive entries).
// JFF_ROW_LANE_TW=0: the lookup, as before session 34. Not yet timed.
#ifndef JFF_ROW_LANE_TW
#define JFF_ROW_LANE_TW 1
#endif
constexpr bool kRowLaneTwiddles = JFF_ROW_LANE_TW != 0;

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
  // + two float4 per outer row k0 < N0 (TwN::rows; 16-byte multiples keep the fragments behind aligned)
  static constexpr size_t kTwN = size_t(8) * (kTwLo + TWHI) + size_t(32) * N0;
  static constexpr size_t kFrag = size_t(4) * MT * KS * 8 * 32;
  static constexpr size_t kFrag0 = kMmaOuter ? size_t(4) * MT0 * MT0 * 8 * 32 : 0;
  // store_inner_row's first twiddle per (outer row k0, lane) as a table (TwN::lanes) at N = 4096 only: 4 KB there,
  // 8-32 KB at 8K-32K, where shared memory sets the CTAs per SM (see kRowLaneTwiddles).
  static constexpr bool kLaneTw = kRowLaneTwiddles && N0 == 16 && RAD == 16;
  static constexpr size_t kTwLanes = kLaneTw ? size_t(8) * 32 * N0 : 0;
  static constexpr size_t kSmem = kSig + kTw + kTwN + kFrag + kFrag0 + kTwLanes;
};

// w_N^j from two small tables, w_N^(j mod 128) * w_N^(128 floor(j/128)): no sincos per
// element and a few KB at any N.
template <int N>
struct TwN {
  const float2* lo;  // kTwLo entries
  const float2* hi;  // N / kTwLo entries, contiguous after lo
  // Big kernels only: per outer row k0 < N0, {w_N^k0, w_N^(8 k0)} then {w_N^(8 RAD k0), unused} (init_row_steps).
  // The outer twiddles w_N^(+-k0 m) step through a lane's columns by these; read from a table they cost one
  // shared load instead of a lookup (two loads, a product) or a chain of squarings each.
  const float4* rows = nullptr;
  // Big kernels with BigShape::kLaneTw only: entry 32 k0 + lane = w_N^(-k0 (RAD (lane / 4) + 2 (lane % 4)))
  // (init_row_lanes), store_inner_row's first twiddle of row k0.
  const float2* lanes = nullptr;
  __device__ __forceinline__ float2 operator()(uint32_t j) const {
    j &= (N - 1);
    return cmul(lo[j & (kTwLo - 1)], hi[j / kTwLo]);
  }
};

// w_N^j directly from sincospif (correctly rounded to float32, unlike products of table entries): the tables'
// entries, built once per CTA.
template <int N>
__device__ __forceinline__ float2 twiddle_exact(uint32_t j) {
  float s, c;
  sincospif(-2.0f * static_cast<float>(j & (N - 1)) / N, &s, &c);
  return make_float2(c, s);
}

template <int N>
__device__ void init_twN(float2* lo_then_hi, int tid, int nthreads) {
  for (int i = tid; i < kTwLo + N / kTwLo; i += nthreads)
    lo_then_hi[i] = twiddle_exact<N>(i < kTwLo ? i : (i - kTwLo) * kTwLo);
}

// TwN::lanes for k0 < N0.
template <int N0, int RAD>
__device__ void init_row_lanes(float2* lanes, int tid, int nthreads) {
  constexpr int N = N0 * RAD * RAD;
  for (int i = tid; i < 32 * N0; i += nthreads) {
    const uint32_t k0 = i / 32, ln = i % 32;
    lanes[i] = twiddle_exact<N>((N - k0) * (RAD * (ln >> 2) + 2 * (ln & 3)));
  }
}

// TwN::rows for k0 < N0.
template <int N0, int RAD>
__device__ void init_row_steps(float4* rows, int tid, int nthreads) {
  constexpr int N = N0 * RAD * RAD;
  auto w = [](int j) { return twiddle_exact<N>(j); };
  for (int k0 = tid; k0 < N0; k0 += nthreads) {
    const float2 s1 = w(k0), s8 = w(8 * k0), s8r = w(8 * RAD * k0);
    rows[2 * k0] = make_float4(s1.x, s1.y, s8.x, s8.y);
    rows[2 * k0 + 1] = make_float4(s8r.x, s8r.y, 0.f, 0.f);
  }
}

// Shared-memory carve-up of a big kernel's CTA (the order BigShape::kSmem counts).
template <typename T, int N0, int RAD>
struct BigSmem {
  T* sre;          // plane of row b (real part)
  T* sim;          // plane of row b+1 (imaginary part)
  float4* tw;      // inner twiddles
  float2* twtab;   // w_N tables (lo, then hi) behind twN
  TwN<N0 * RAD * RAD> twN;
  uint32_t* frag;   // inner DFT fragments
  uint32_t* frag0;  // outer DFT fragments (N0 >= 16)
  __device__ __forceinline__ explicit BigSmem(void* raw) {
    using S = BigShape<N0, RAD>;
    sre = reinterpret_cast<T*>(raw);
    sim = sre + S::N;
    tw = reinterpret_cast<float4*>(sim + S::N);
    twtab = reinterpret_cast<float2*>(tw + S::M / 2);
    twN.lo = twtab;
    twN.hi = twtab + kTwLo;
    twN.rows = reinterpret_cast<const float4*>(twtab + kTwLo + S::TWHI);
    frag = reinterpret_cast<uint32_t*>(twtab + kTwLo + S::TWHI + 4 * N0);
    frag0 = frag + S::MT * S::KS * 8 * 32;
    if constexpr (S::kLaneTw) twN.lanes = reinterpret_cast<const float2*>(frag0 + S::kFrag0 / 4);
  }
  // Tables, once per CTA (the caller synchronises).
  __device__ void init(int tid, int nthreads) {
    init_inner_twiddles<T, RAD>(tw, tid, nthreads);
    init_twN<N0 * RAD * RAD>(twtab, tid, nthreads);
    init_row_steps<N0, RAD>(const_cast<float4*>(twN.rows), tid, nthreads);
    build_dft_frags<T, RAD>(frag, tid, nthreads);
    if constexpr (BigShape<N0, RAD>::kMmaOuter) build_dft_frags<T, N0>(frag0, tid, nthreads);
    if constexpr (BigShape<N0, RAD>::kLaneTw) init_row_lanes<N0, RAD>(const_cast<float2*>(twN.lanes), tid, nthreads);
  }
};

// Eight 16-bit elements t .. t+7 of a row (zero at and beyond L; L = 0 for an absent row).
// Vector path only where the row is 16-byte aligned (L % 8 == 0) and the chunk is whole.
template <Touch W = Touch::kAgain>
__device__ __forceinline__ uint4 load8(const uint16_t* row, int t, int L, bool vec) {
  if (vec && t + 8 <= L) return load_hinted<W>(reinterpret_cast<const uint4*>(row + t));
  uint32_t w[4] = {0u, 0u, 0u, 0u};
  if (t < L) {
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (t + e < L) w[e >> 1] |= static_cast<uint32_t>(load_hinted<W>(row + t + e)) << (16 * (e & 1));
  }
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// Chunk t (8 elements) of rows b and b+1 (at off0 / off1) of several streams at once, stream i
// with policy W_i (nullptr: absent, zeros). Where every row holds the whole chunk 16-byte aligned,
// all the loads are issued in one block, so their latencies overlap; one load8 per stream and row
// would put each in its own branch, and the compiler consumed each before issuing the next (SASS
// of the backward big kernel: one 16-byte load in flight per thread, the kernel latency-bound).
template <Touch... W, size_t... I>
__device__ __forceinline__ void load8_pairs_impl(std::index_sequence<I...>, const uint16_t* const (&s)[sizeof...(W)],
                                                 int64_t off0, int64_t off1, int t, int L, int L1, bool vec,
                                                 uint4 (&r0)[sizeof...(W)], uint4 (&r1)[sizeof...(W)]) {
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  if (vec && t + 8 <= L && t + 8 <= L1) {
    ((r0[I] = s[I] != nullptr ? load_hinted<W>(reinterpret_cast<const uint4*>(s[I] + off0 + t)) : zero), ...);
    ((r1[I] = s[I] != nullptr ? load_hinted<W>(reinterpret_cast<const uint4*>(s[I] + off1 + t)) : zero), ...);
  } else {
    ((r0[I] = s[I] != nullptr ? load8<W>(s[I] + off0, t, L, vec) : zero), ...);
    ((r1[I] = s[I] != nullptr ? load8<W>(s[I] + off1, t, L1, vec) : zero), ...);
  }
}
template <Touch... W>
__device__ __forceinline__ void load8_pairs(const uint16_t* const (&s)[sizeof...(W)], int64_t off0, int64_t off1, int t,
                                            int L, int L1, bool vec, uint4 (&r0)[sizeof...(W)],
                                            uint4 (&r1)[sizeof...(W)]) {
  load8_pairs_impl<W...>(std::make_index_sequence<sizeof...(W)>{}, s, off0, off1, t, L, L1, vec, r0, r1);
}

// Callers opt in to the streaming policy: BLH rows write 16 of a sector's 32 bytes per access and
// their neighbouring heads' stores complete the sector, so those keep the default.
template <Touch W = Touch::kAgain>
__device__ __forceinline__ void store8(uint16_t* row, int t, int L, bool vec, uint4 v) {
  if (vec && t + 8 <= L) {
    store_hinted<W>(reinterpret_cast<uint4*>(row + t), v);
    return;
  }
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (t + e < L) store_hinted<W>(row + t + e, static_cast<uint16_t>(w[e >> 1] >> (16 * (e & 1))));
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

// Elementwise product of eight 16-bit pairs, rounded to 16 bits (the gate products every load
// phase forms; one rounding rule everywhere keeps the BHL and BLH kernels bitwise equal).
template <typename T>
__device__ __forceinline__ uint4 mul8(uint4 a, uint4 b) {
  return make_uint4(Ops<T>::mul2(a.x, b.x), Ops<T>::mul2(a.y, b.y), Ops<T>::mul2(a.z, b.z), Ops<T>::mul2(a.w, b.w));
}

// The N0 = 2 outer level of one row pair on eight consecutive columns m .. m+7: the butterfly
// (scaled by 1/sqrt(2)) of rows n0 = 0 and 1 (x[n0][e] = column m + e), and w_N^(m+e) on the
// difference, stored into blocks 0 (sums) and 1 (differences) of the planes. The twiddles come
// from one table lookup and products with w_N^1: a lookup per element read the table at a
// stride of 8 entries across the warp, 8-way bank conflicts.
template <typename T, int RAD>
__device__ __forceinline__ void store_outer_butterfly2(T* sre, T* sim, const float (&xr)[2][8],
                                                       const float (&xi)[2][8], int m,
                                                       const TwN<2 * RAD * RAD>& twN) {
  constexpr float kS = 0.70710678118654752f;
  const float2 w1 = twN(1u);
  float2 tw = twN(static_cast<uint32_t>(m));
  float ar[8], ai[8], br[8], bi[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    ar[e] = kS * (xr[0][e] + xr[1][e]);
    ai[e] = kS * (xi[0][e] + xi[1][e]);
    const float2 w = cmul(make_float2(kS * (xr[0][e] - xr[1][e]), kS * (xi[0][e] - xi[1][e])), tw);
    br[e] = w.x;
    bi[e] = w.y;
    tw = cmul(tw, w1);
  }
  const int m1 = m / RAD, m2 = m % RAD;
  *reinterpret_cast<uint4*>(sre + sig_off<RAD>(0, m1, m2)) = pack8<T>(ar);
  *reinterpret_cast<uint4*>(sim + sig_off<RAD>(0, m1, m2)) = pack8<T>(ai);
  *reinterpret_cast<uint4*>(sre + sig_off<RAD>(1, m1, m2)) = pack8<T>(br);
  *reinterpret_cast<uint4*>(sim + sig_off<RAD>(1, m1, m2)) = pack8<T>(bi);
}

// outer_dft's twiddles by a recurrence over the warp's tiles (see there) at N = 4096 (N0 = RAD = 16: the fused
// 4K kernels and the long path's 4K inner step); JFF_OUTER_TW_STEPS=0: a table lookup per tile, as before session
// 34. Other sizes keep the lookup: the recurrence's registers (8 per lane and row tile) took the 8K forward from
// 128 to 150 registers (4 -> 3 CTAs per SM) and gave the bfloat16 16K one 16 bytes of spill. Not yet timed (SASS
// counts only: the 4K tile loop 148 -> 140 instructions, sm_90a). outer_dft's kTwSteps = false opts a caller out
// (the long backward's inner kernel, whose two transforms in a row took it from 112 to 128 registers with spill).
#ifndef JFF_OUTER_TW_STEPS
#define JFF_OUTER_TW_STEPS 1
#endif
template <int N0, int RAD>
constexpr bool kOuterTwiddleSteps = JFF_OUTER_TW_STEPS != 0 && N0 == 16 && RAD == 16;

// Outer DFT over n0 (tensor cores, N0 >= 16), then the twiddle w_N^(k0 m), in place; one
// 16-column tile per warp at a time. Only the first `live16` 16-row k-steps of the input can
// be nonzero (rows n0 with M*n0 < L); the others are skipped. Caller syncs before and after.
// kStep0Unconditional: the first k-step runs whatever live16 says (row n0 = 0 is live for any
// L >= 1), so that the compiler knows the first products start from zero and reads those zeros as
// RZ instead of clearing the accumulators (forward 8K tile loop 321 -> 296 instructions); off in the
// backward, whose 8K kernel it took from 128 to 152 registers.
template <typename T, int N0, int RAD, int WARPS, bool kStep0Unconditional = false,
          bool kTwSteps = kOuterTwiddleSteps<N0, RAD>>
__device__ __forceinline__ void outer_dft(T* sre, T* sim, const uint32_t* frag0, const TwN<N0 * RAD * RAD>& twN,
                                          int live16, int warp, int lane) {
  using O = Ops<T>;
  constexpr int M = RAD * RAD, MT0 = N0 / 16;
  const int gid = lane >> 2, tig = lane & 3;
  uint32_t Gr[MT0][MT0][4], Gi[MT0][MT0][4];
  load_dft_frags<MT0, MT0>(Gr, Gi, frag0, lane);
  const int q = lane >> 3, r = lane & 7;
  // The epilogue's twiddles w_N^(k0 m) at the lane's rows k0 = 16mt + gid + 8hh and columns
  // m = mc + 2tig + {0, 1, 8, 9}: one table lookup at m = mc + 2tig, the other three by products
  // with w_N^k0 and w_N^(8 k0) from twN.rows (one 16-byte load, no bank conflict: the warp's eight
  // k0 are consecutive entries), unlike a lookup per element at random indices, which was most
  // of this kernel's shared-memory traffic and 4-way conflicted on average (ncu, N = 4096).
  // Keeping w_N^k0 in registers instead took the 8192-point backward from 127 to 157 registers.
  // kTwSteps (kOuterTwiddleSteps by default): the lookup happens once, before the first tile; each next tile (WARPS tiles on) takes
  // the previous tile's value times w_N^(16 WARPS k0), also looked up once. A lookup is two 8-byte shared loads
  // at scattered entries (bank conflicts: the CPU bank profiler read 4.3-4.5x their ideal, session 33), a
  // product and ~6 integer instructions for the index; the step is one product. The recurrence runs at most 16
  // tiles (M / 16 / WARPS), whose float32 rounding (~1e-6) is far below the 16-bit data's.
  [[maybe_unused]] float2 wcur[MT0][2], wstep[MT0][2];
  if constexpr (kTwSteps) {
#pragma unroll
    for (int mt = 0; mt < MT0; ++mt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const uint32_t k0 = 16 * mt + gid + 8 * hh;
        wcur[mt][hh] = twN(k0 * static_cast<uint32_t>(16 * warp + 2 * tig));
        wstep[mt][hh] = twN(k0 * static_cast<uint32_t>(16 * WARPS));
      }
  }
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
      if ((ks > 0 || !kStep0Unconditional) && ks >= live16) continue;
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
      for (int hh = 0; hh < 2; ++hh) {
        const int k0 = 16 * mt + gid + 8 * hh;
        const float4 steps = twN.rows[2 * k0];
        const float2 s1 = make_float2(steps.x, steps.y), s8 = make_float2(steps.z, steps.w);
        float2 w0;
        if constexpr (kTwSteps) {
          w0 = wcur[mt][hh];
          wcur[mt][hh] = cmul(w0, wstep[mt][hh]);
        } else {
          w0 = twN(static_cast<uint32_t>(k0 * (mc + 2 * tig)));
        }
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          if (nt > 0) w0 = cmul(w0, s8);  // columns m + 8: times w_N^(8 k0)
          const float2 w1 = cmul(w0, s1);
          const float2 z0 = cmul(make_float2(Cr[mt][nt][2 * hh], Ci[mt][nt][2 * hh]), w0);
          const float2 z1 = cmul(make_float2(Cr[mt][nt][2 * hh + 1], Ci[mt][nt][2 * hh + 1]), w1);
          const int off = sig_off<RAD>(k0, m1, m2b + 8 * nt + 2 * tig);
          *reinterpret_cast<uint32_t*>(sre + off) = O::pack(z0.x, z1.x);
          *reinterpret_cast<uint32_t*>(sim + off) = O::pack(z0.y, z1.y);
        }
      }
    __syncwarp();
  }
}

// Outer inverse DFT (conj F_N0, N0 >= 16) in place; output rows n0 only in the first `live16`
// 16-row tiles (M*n0 < L; the others are never read). Caller syncs before and after.
template <typename T, int N0, int RAD, int WARPS>
__device__ __forceinline__ void outer_idft(T* sre, T* sim, const uint32_t* frag0, int live16, int warp,
                                           int lane) {
  using O = Ops<T>;
  constexpr int M = RAD * RAD, MT0 = N0 / 16;
  const int gid = lane >> 2, tig = lane & 3;
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
        // Tile 0 always runs (row 0 is live for any L >= 1): its zero accumulators become RZ, as with
        // outer_dft's kStep0Unconditional.
        if (mt > 0 && mt >= live16) continue;
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
}

// Whether store_inner_row multiplies row k0 = 0 by its twiddle (1) rather than branch around it (see there).
// JFF_UNTWIST_ROW0=0 restores the branch. Not yet timed (session 34: SASS counts only).
#ifndef JFF_UNTWIST_ROW0
#define JFF_UNTWIST_ROW0 1
#endif
constexpr bool kUntwistRowZero = JFF_UNTWIST_ROW0 != 0;

// After the inner inverse of row k0: times conj(w_N^(k0 m)) (the outer level's conjugate
// twiddle; none for N0 = 1; for k0 = 0 it is 1, see kUntwistRowZero) and back into the row's block in place. The caller
// must have __syncwarp()ed after the row's last read.
template <typename T, int N0, int RAD>
__device__ __forceinline__ void store_inner_row(T* bre, T* bim, int key, int k0,
                                                const TwN<N0 * RAD * RAD>& twN,
                                                const float (&Yr)[RAD / 16][RAD / 8][4],
                                                const float (&Yi)[RAD / 16][RAD / 8][4], int lane) {
  using O = Ops<T>;
  constexpr int MT = RAD / 16, NT = RAD / 8, N = N0 * RAD * RAD;
  const int gid = lane >> 2, tig = lane & 3;
  // Row k0 = 0's twiddle is 1: skipping it there made every (mt, hh) step a branch of its own (BSSY / BRA / BSYNC
  // and register moves at each merge: ~27 of the 4K inner row's 420 instructions, SASS sm_90a). Applied to every
  // row (kUntwistRowZero), the products with w = 1 (twN(0), the table's exact 1 - 0i) keep row 0's finite
  // values (a zero's sign may change, nothing else).
  const bool untw = N0 > 1 && (kUntwistRowZero || k0 > 0);
  // conj(w_N^(k0 m)) = w_N^(-k0 m) at m = RAD m1 + m2, m1 = 16mt + gid + 8hh, m2 = 8nt + 2tig
  // + {0, 1}: one table lookup per lane at (gid, tig) times factors that depend on k0 only
  // (w_N^(-k0), w_N^(-8 k0), w_N^(-8 RAD k0): the conjugates of twN.rows[k0], warp-uniform, so
  // broadcasts), by products in the loop. Per-element lookups were 4-way bank-conflicted (random
  // indices).
  float2 base = make_float2(1.f, 0.f), s1 = base, s8 = base, s8r = base;
  if (untw) {
    if constexpr (BigShape<N0, RAD>::kLaneTw) {
      base = twN.lanes[32 * k0 + lane];
    } else {
      const uint32_t neg = static_cast<uint32_t>(N - k0);  // w_N^(-k0 j) = twN(neg * j)
      base = twN(neg * static_cast<uint32_t>(RAD * gid + 2 * tig));
    }
    const float4 steps = twN.rows[2 * k0], steps_r = twN.rows[2 * k0 + 1];
    s1 = make_float2(steps.x, -steps.y);
    s8 = make_float2(steps.z, -steps.w);
    s8r = make_float2(steps_r.x, -steps_r.y);
  }
  float2 wrow = base;  // w_N^(-k0 (RAD m1 + 2tig)) for the current (mt, hh)
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      if (mt + hh > 0) wrow = cmul(wrow, s8r);  // m1 + 8
      float2 w0 = wrow;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        if (nt > 0) w0 = cmul(w0, s8);  // m2 + 8
        const int m1 = 16 * mt + gid + 8 * hh, m2 = 8 * nt + 2 * tig;
        float2 z0 = make_float2(Yr[mt][nt][2 * hh], Yi[mt][nt][2 * hh]);
        float2 z1 = make_float2(Yr[mt][nt][2 * hh + 1], Yi[mt][nt][2 * hh + 1]);
        if (untw) {
          z0 = cmul(z0, w0);
          z1 = cmul(z1, cmul(w0, s1));
        }
        const int off = swz_offset<RAD>(m1, m2) ^ key;
        *reinterpret_cast<uint32_t*>(bre + off) = O::pack(z0.x, z1.x);
        *reinterpret_cast<uint32_t*>(bim + off) = O::pack(z0.y, z1.y);
      }
    }
}

// Pulls a row's K block (M/2 float4, from L2) into L1: K is read only after two of the
// inner products, and this keeps that read from stalling the warp.
// The second half of an inner row's routine, in place (one warp): the spectrum Y times the row's
// block kk of K (its conjugate when CONJ), inverse DFT, then, once every lane is past its reads
// of the row, the conjugate outer twiddle stored back into the row (store_inner_row).
template <typename T, int N0, int RAD, bool CONJ, typename KSlot>
__device__ __forceinline__ void inner_row_inverse(float (&Yr)[RAD / 16][RAD / 8][4], float (&Yi)[RAD / 16][RAD / 8][4],
                                                  const KSlot* kk, const uint32_t (&Fr)[RAD / 16][RAD / 16][4],
                                                  const uint32_t (&Fi)[RAD / 16][RAD / 16][4], const float4* tw,
                                                  const TwN<N0 * RAD * RAD>& twN, T* bre, T* bim, int key, int k0,
                                                  int lane) {
  {
    SpecFrags<RAD> Pr, Pi;
    mul_spec<T, RAD, CONJ>(Yr, Yi, kk, lane, Pr, Pi);
    idft_pair<T, RAD>(Pr, Pi, Fr, Fi, tw, lane, Yr, Yi);
  }
  __syncwarp();
  store_inner_row<T, N0, RAD>(bre, bim, key, k0, twN, Yr, Yi, lane);
  __syncwarp();
}

template <int RAD, typename KSlot>
__device__ __forceinline__ void prefetch_k_l1(const KSlot* kk, int lane) {
#pragma unroll
  for (int i = 0; i < (RAD * RAD / 2 * int(sizeof(KSlot))) / (128 * 32); ++i)
    asm volatile("prefetch.global.L1 [%0];" ::"l"(reinterpret_cast<const char*>(kk) + (lane + 32 * i) * 128));
}

// ---------------------------------------------------------------------------------------
// k's spectrum, once per (g, h), for N = N0 * RAD^2: the N-point DFT of the zero-padded real
// k, computed as an N/2-point complex FFT of z[n] = k[2n] + i k[2n+1] in shared memory
// (float32; common/smem_fft.cuh: radix-16 Stockham passes), then split into the real signal's
// spectrum. skip is added to every bin (the skip term skip*v is a convolution with skip*delta).
// Output order: frequency f = k0 + N0*km at float offset 2*M*k0 + spec_float_offset<RAD>(km) of
// the (g, h) block, in KElem (float, or bfloat16 bits: KSpecOf) -- exactly what each lane of the
// main kernels reads (one slot of two bins per lane, coalesced). That is: slot s (two bins) at
// element 4 s, holding frequencies k0 + N0 f0 and k0 + N0 f1 (k0 = s / (M/2), spec_freqs of
// s mod M/2), so thread s computes its slot's two bins and stores them in one vector store.
// Session 28, H200 (profile_kernels.py, B=64 H=768 bf16 forward): the kernel this replaces (radix-2
// butterflies with a barrier each, one bin pair per thread scattered over the block) took 0.010 ms
// of the 1K forward's 0.157 and 0.054 of the 4K forward's 0.636.
// ---------------------------------------------------------------------------------------
// One complex bin (re, im) at an even element offset: one 8- or 4-byte store (the long path's slices).
__device__ __forceinline__ void store_k_bin(float* p, float re, float im) {
  *reinterpret_cast<float2*>(p) = make_float2(re, im);
}
// Two complex bins (re, im) as one 16- or 8-byte store.
__device__ __forceinline__ void store_k_slot(float* p, float2 a, float2 b) {
  *reinterpret_cast<float4*>(p) = make_float4(a.x, a.y, b.x, b.y);
}
// One bf16 bin (re in the low half), rounded to nearest even.
__device__ __forceinline__ uint32_t pack_k_bin(float re, float im) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(re))) |
         (static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(im))) << 16);
}
__device__ __forceinline__ void store_k_bin(uint16_t* p, float re, float im) {
  *reinterpret_cast<uint32_t*>(p) = pack_k_bin(re, im);
}
__device__ __forceinline__ void store_k_slot(uint16_t* p, float2 a, float2 b) {
  *reinterpret_cast<uint2*>(p) = make_uint2(pack_k_bin(a.x, a.y), pack_k_bin(b.x, b.y));
}

// Threads of the k-spectrum kernel: one radix-16 butterfly per thread and pass (smem_fft's
// fft_smem needs N/2 <= 16 * threads), at least 256 so that the load and slot loops of a small N are
// spread over 8 warps (the passes' extra threads idle). With one warp at N <= 1K (session 28's
// form) the forward self-test (H200, B=64 H=768 bf16 gated) read 1K 0.1606 / 0.1626 ms against
// 0.1590 / 0.1599 with 256 threads, 256 within its noise (session 30, two interleaved rounds).
constexpr int kspec_threads(int N) { return N / 32 > 256 ? N / 32 : 256; }

// log2 of a power of two (a compile-time check that it is one).
constexpr int log2_exact(int n) { return n == 1 ? 0 : (n % 2 != 0 ? -1000 : 1 + log2_exact(n / 2)); }

// Which slots a warp's lanes compute in the k-spectrum kernel's last loop. 0: 32 consecutive slots, whose bins
// k0 + N0 f lie N0 * (2 (lane % 4) + RAD (lane / 4)) apart: at N0 >= 16 the 8-byte reads of the spectrum z hit
// one bank per half-warp, 16-way (the CPU bank profiler, cuda/common/emu_banks.h: 16.0x on both z reads, 82-86%
// of the kernel's shared-memory wavefronts beyond the ideal, session 33). 1 (N0 >= 16): 16 consecutive k0 times 2
// consecutive slots of each, so a half-warp reads 16 consecutive bins (conflict-free) and stores 16 runs of two
// slots (32 bytes of fp32 K, 16 of bf16) M / 2 slots apart instead of one contiguous run; N0 = 1, 2: see
// spec_walk_slot. H100, session 40 (results/logs/nvidia-h100-monarch-ab-session40.log, two interleaved rounds):
// the BHL forward 1.5-4.8% faster at 4K-32K (within 1% at 256-2K), the 4K backward 1.2%: 1 by default.
#ifndef JFF_KSPEC_ORDER
#define JFF_KSPEC_ORDER 1
#endif
constexpr bool kKspecLaneOrder = JFF_KSPEC_ORDER != 0;
// The slot that step s of such a walk over a spectrum's N / 2 slots visits (s = tid + i * nth, nth a multiple
// of 32): s itself, or with JFF_KSPEC_ORDER at N0 >= 16 the lane order above (also monarch_dk_reduce_kernel's,
// whose stores into its H table scatter the same way).
template <int N0, int RAD>
__device__ __forceinline__ int spec_walk_slot(int s) {
  constexpr int M = RAD * RAD;
  if constexpr (kKspecLaneOrder && N0 >= 16) {
    constexpr int KW = 16, KB = N0 / KW;
    const int u = s >> 5, l = s & 31;
    return ((u % KB) * KW + l % KW) * (M / 2) + (u / KB) * (32 / KW) + l / KW;
  } else if constexpr (kKspecLaneOrder) {
    // N0 = 1, 2: k0 fastest, then the slot's column pair c (bins 2c, 2c + 1 of row `row` in frag_coords' terms),
    // then the row: a half-warp's first bins k0 + N0 (2c + RAD row) are 2 N0 apart within a row, 2-way at worst
    // (the C-fragment walk: 4-way).
    constexpr int NT = RAD / 8, C = RAD / 2;
    const int k0 = s % N0, w = s / N0, c = w % C, row = w / C;
    const int mt = row / 16, hh = (row / 8) & 1, ln = 4 * (row & 7) + (c & 3), nt = c >> 2;
    return k0 * (M / 2) + 32 * ((mt * NT + nt) * 2 + hh) + ln;
  } else {
    return s;
  }
}

template <int N0, int RAD, typename KElem>
__global__ void __launch_bounds__(kspec_threads(N0 * RAD * RAD)) monarch_kspec_kernel(const float* __restrict__ k,
                                                                                      int64_t Lk,
                                                                                      const float* __restrict__ skip,
                                                                                      KElem* kspec) {
  begin_after_prior_grids();
  constexpr int M = RAD * RAD, N = N0 * M, H2 = N / 2;
  constexpr int LOGH = log2_exact(H2);
  static_assert(LOGH >= 0 && (1 << LOGH) == H2, "log2");
  extern __shared__ float2 zs[];  // z, H2 complex: as floats, k[0 .. N) zero-padded
  const int tid = threadIdx.x, nth = blockDim.x;
  const int64_t gh = blockIdx.x;
  const float* kr = k + gh * Lk;
  float* zf = reinterpret_cast<float*>(zs);
  if (Lk >= N && (reinterpret_cast<uintptr_t>(kr) & 15) == 0) {  // whole 16-byte vectors
    for (int i = tid; i < N / 4; i += nth) reinterpret_cast<float4*>(zf)[i] = reinterpret_cast<const float4*>(kr)[i];
  } else {
    for (int i = tid; i < N; i += nth) zf[i] = i < Lk ? kr[i] : 0.f;
  }
  __syncthreads();
  smem_fft::fft_smem_fixed<LOGH>(zs, false, tid, nth);  // syncs after
  KElem* out = kspec + gh * N * 2;
  const float sk = skip != nullptr ? skip[gh] : 0.f;
  // Bin f of the real signal's spectrum: for f <= H2, E = (Zf + conj Zc) / 2, O = (Zf - conj Zc) / (2i),
  // K = E + w_N^f O (+ skip); above H2 the conjugate of bin N - f.
  auto bin = [&](int f) {
    const int g = f <= H2 ? f : N - f;
    const float2 zg = zs[g & (H2 - 1)];
    const float2 zc = zs[(H2 - g) & (H2 - 1)];
    const float er = 0.5f * (zg.x + zc.x), ei = 0.5f * (zg.y - zc.y);
    const float or_ = 0.5f * (zg.y + zc.y), oi = -0.5f * (zg.x - zc.x);
    float sn, cs;
    sincospif(-2.0f * static_cast<float>(g) / N, &sn, &cs);
    const float ki = ei + (or_ * sn + oi * cs);
    return make_float2(er + (or_ * cs - oi * sn) + sk, f <= H2 ? ki : -ki);
  };
  for (int s = tid; s < N / 2; s += nth) {  // (nth: a multiple of 32, kspec_threads)
    const int slot = spec_walk_slot<N0, RAD>(s);
    const int k0 = slot / (M / 2), idx = slot % (M / 2);
    unsigned f0, f1;
    spec_freqs<RAD>(idx, f0, f1);
    store_k_slot(out + 4 * slot, bin(k0 + N0 * static_cast<int>(f0)), bin(k0 + N0 * static_cast<int>(f1)));
  }
}

template <int N0, int RAD>
constexpr size_t kspec_smem_bytes() {
  return sizeof(float2) * (N0 * RAD * RAD / 2);
}

// Enqueues the k-spectrum kernel for G*H filters ((G, H, N) complex, stored as KSpecOf<T>::Elem
// for data of type T; see above).
template <typename T, int N0, int RAD>
cudaError_t launch_kspec(const float* k, int64_t GH, int64_t Lk, const float* skip, void* kspec_out,
                         cudaStream_t stream) {
  using KElem = typename KSpecOf<T>::Elem;
  KElem* kspec = static_cast<KElem*>(kspec_out);
  auto kern = monarch_kspec_kernel<N0, RAD, KElem>;
  const size_t ksm = kspec_smem_bytes<N0, RAD>();
  cudaError_t err;
  if (ksm > 48 * 1024) {
    err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(ksm));
    if (err != cudaSuccess) return err;
  }
  return launch_kernel(kern, static_cast<unsigned>(GH), kspec_threads(N0 * RAD * RAD), ksm, stream, k, Lk, skip,
                       kspec);
}

// The (N0, RAD) decomposition of each supported N: f(std::integral_constant<int, N0>{},
// std::integral_constant<int, RAD>{}) for N in {256, ..., 32768}; returns false otherwise.
template <int V>
using IC = std::integral_constant<int, V>;
template <typename F>
bool dispatch_n(int64_t N, F&& f) {
  switch (N) {
    case 256: f(IC<1>{}, IC<16>{}); return true;
    case 512: f(IC<2>{}, IC<16>{}); return true;
    case 1024: f(IC<1>{}, IC<32>{}); return true;
    case 2048: f(IC<2>{}, IC<32>{}); return true;
    case 4096: f(IC<16>{}, IC<16>{}); return true;
    case 8192: f(IC<32>{}, IC<16>{}); return true;
    case 16384: f(IC<16>{}, IC<32>{}); return true;
    case 32768: f(IC<32>{}, IC<32>{}); return true;
    default: return false;
  }
}

// RAD of the one-warp-per-pair kernels (N = RAD^2), 0 for other N.
inline int radix_of(int64_t N) { return N == 256 ? 16 : (N == 1024 ? 32 : 0); }

}  // namespace
}  // namespace jff
