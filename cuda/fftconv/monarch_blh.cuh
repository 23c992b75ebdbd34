// Native BLH (channels-last) loads and stores for the big tensor-core kernels: a thread block
// cluster transposes tiles of H through distributed shared memory (sm_90+).
//
// In BLH, row (b, h) is strided by H: consecutive h are what is contiguous. The big kernels keep
// one row pair (b, b+1 of one h) per CTA in shared memory, so a CTA reading its own row would
// touch 2 bytes per 32-byte sector. Instead a tile of TH = CL * HPC consecutive heads (8 or 16) is
// moved as a whole, by a cluster of CL CTAs holding HPC heads' row pairs each (CL = 1: one CTA
// holds the tile; no cluster needed); slot s of the tile, head h0 + s, lives in CTA s / HPC:
//   load:  a thread reads 8 rows l of 8 consecutive h (8 x 16 bytes), multiplies the pre-gate,
//          transposes the 8 x 8 block in registers (byte permutes) and writes each column,
//          8 consecutive l of one h, as 16 bytes into that h's planes (st to a mapped address
//          where they are in another CTA);
//   store: a thread reads the 8 columns back, applies the post-gate and writes 8 rows of 16
//          bytes.
// With TH = 16 two adjacent lanes cover one whole 32-byte sector of a row. The planes keep the
// BHL kernels' layout (sig_off), so everything between load and store is shared code.
//
// Ordering: the tile's threads meet (barrier.cluster, release/acquire; __syncthreads for CL = 1)
// before the load (nobody still reads the planes of the previous item), after it (all columns
// arrived), and before the store (all results final); a cluster once more before exit, since a
// CTA's shared memory must outlive the remote reads of it.
//
// Include after fftconv/monarch_core.cuh (it uses its helpers; the CPU emulation build substitutes a
// host copy of that header, so this one does not include it itself). The emulation runs the
// cluster-free tiles (CL = 1) only.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/env_switch.h"

#ifndef JFF_MONARCH_EMU
#include <cooperative_groups.h>
#endif

namespace jff {
namespace {

__device__ __forceinline__ void cluster_sync_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(JFF_MONARCH_EMU)
  cooperative_groups::this_cluster().sync();
#else
  __trap();
#endif
}

__device__ __forceinline__ unsigned cluster_rank() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(JFF_MONARCH_EMU)
  return cooperative_groups::this_cluster().block_rank();
#else
  return 0;
#endif
}

// `p` (a shared-memory address of this CTA) as the same variable in CTA `rank` of the cluster.
template <typename T>
__device__ __forceinline__ T* cluster_peer(T* p, unsigned rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(JFF_MONARCH_EMU)
  return cooperative_groups::this_cluster().map_shared_rank(p, rank);
#else
  (void)rank;
  __trap();
  return p;
#endif
}

// The barrier of a tile's threads: the cluster's, or the CTA's when one CTA holds the tile.
template <int CL>
__device__ __forceinline__ void tile_sync() {
  if constexpr (CL > 1) {
    cluster_sync_all();
  } else {
    __syncthreads();
  }
}

// Warps per CTA of the big kernel: enough to share the N0 inner rows, few enough that several
// CTAs fit per SM so that their phases overlap; 32768 has room for one CTA (128 KB of signal)
// and gets 8 warps.
constexpr int big_warps(int N0, int RAD) {
  return N0 == 1 ? 1 : (N0 == 2 ? 2 : (N0 * RAD * RAD == 32768 ? 8 : 4));
}

template <int N0, int RAD>
struct BlhShape {
  static constexpr int N = N0 * RAD * RAD;
  // 4096: a cluster of 8 CTAs x 2 heads (half the cluster barriers per head, a quarter of the
  // slots local) beat 16 x 1: H200 1.27 -> 1.17 ms at L = N, 1.13 -> 0.90 at L = N/2; at 8192 the
  // same went 2.76 -> 4.50 ms (153 registers, 72 KB of shared memory: 3 CTAs per SM). Clusters of 8
  // single-head CTAs at 8K-32K (more clusters resident: 16 x 8 = 128 SMs against 7 x 16 = 112) were
  // 2.1-4.3x slower on the H100 (session 45; likely cause, not profiled: a tile row is 16 bytes, half a sector).
  static constexpr bool kTwoHeads = N == 4096;
  static constexpr int CL = N >= 4096 ? (kTwoHeads ? 8 : 16) : 1;
  static constexpr int HPC = N >= 4096 ? (kTwoHeads ? 2 : 1) : (N == 2048 ? 8 : 16);
  static constexpr int TH = CL * HPC;
  static constexpr int TPL = TH >= 64 ? 1 : 64 / TH;
  static constexpr int WARPS = N >= 4096 ? big_warps(N0, RAD) : 4;
  // 256 / 4096: at most 128 registers, for 4 CTAs per SM (136 / 124 unbounded). At 8192 the same
  // cap (140 -> 128 registers, 8 B of spill) went with 2.70 -> 2.87 ms (H200, one run each, other
  // changes in between): none there.
  static constexpr int MIN_CTAS = N == 256 || N == 4096 ? 4 : 1;
  // One set of planes. Two (the store of one item and the load of the next in one phase, 2
  // barriers per item instead of 3) were slower at 256 / 4K / 8K: H200 0.0585 -> 0.061,
  // 1.265 -> 1.49, 2.76 -> 3.82 ms (more registers, and each thread's store and load in series).
  static constexpr size_t kSmem = BigShape<N0, RAD>::kSmem + size_t(HPC - 1) * BigShape<N0, RAD>::kSig;
};

// The BLH forward's grid: one persistent wave of CTAs (N <= 2048) or clusters looping over the work items, except
// at N = 4096, where each CTA takes one item and the grid holds all of them (more than fit at once; the hardware
// starts them in order as others finish). Why it can matter: the TPL tiles of a tile group read neighbouring
// 32-byte pieces of the same rows and DRAM pages, and over a long loop the CTAs that hold them drift apart (the
// long path's passes, which read the same way, ran up to 1.8x faster with short loops: fftconv_long/outer_pass.cuh
// outer_cta_rows). Measured (H100, B=64 H=768 bf16 gated, forward kernel ms, one wave / one item per unit, two
// rounds; notes_monarch.md, session 44): 1K 0.268 / 0.264, 2K 0.693 0.692 / 0.768 0.769, 4K 1.267 1.254 /
// 1.115 1.113, 8K 2.703 2.591 / 2.641 2.644, 16K 5.818 5.736 / 5.848 5.841, 32K 14.09 14.03 / 14.24 14.24.
// JFF_MONARCH_BLH_ITEMS=<n> (an A/B switch, read once per process): at most n items per CTA / cluster at every N;
// 0: one persistent wave at every N. Returns the grid units `items` need at FFT size n_fft (0: no such minimum).
inline int64_t blh_min_units(int64_t items, int64_t n_fft) {
  static const int64_t forced = env_int("JFF_MONARCH_BLH_ITEMS", -1);
  const int64_t cap = forced >= 0 ? forced : (n_fft == 4096 ? 1 : 0);
  return cap > 0 ? (items + cap - 1) / cap : 0;
}

#ifndef JFF_MONARCH_EMU  // no thread block clusters in the CPU emulation
// The launch configuration of kernel `Kern` in clusters of CL CTAs (THREADS threads, SMEM bytes of
// dynamic shared memory each; gridDim is left to the caller) and how many of its clusters fit on
// the current device at once (0 when none does, e.g. on a GPU partition whose processing
// clusters are smaller than the cluster).
template <auto Kern, int CL, int THREADS, size_t SMEM>
cudaError_t cluster_config(cudaLaunchConfig_t& cfg, cudaLaunchAttribute (&attr)[1], int* resident) {
  cudaError_t err = cudaFuncSetAttribute(Kern, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(SMEM));
  if (err != cudaSuccess) return err;
  // Beyond the portable cluster size (8): opt in.
  if (CL > 8 && (err = cudaFuncSetAttribute(Kern, cudaFuncAttributeNonPortableClusterSizeAllowed, 1)) != cudaSuccess)
    return err;
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CL;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg = {};
  cfg.gridDim = dim3(CL);
  cfg.blockDim = dim3(THREADS);
  cfg.dynamicSmemBytes = SMEM;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaOccupancyMaxActiveClusters(resident, Kern, &cfg);
}

// Whether at least one cluster of `Kern` fits the current device; asked once per device.
template <auto Kern, int CL, int THREADS, size_t SMEM>
bool clusters_fit() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int8_t> cached[kMaxDevices] = {};  // 0 unknown, 1 fits, 2 does not
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return false;
  int8_t state = cached[dev].load(std::memory_order_relaxed);
  if (state == 0) {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[1];
    int resident = 0;
    const cudaError_t err = cluster_config<Kern, CL, THREADS, SMEM>(cfg, attr, &resident);
    if (err != cudaSuccess) (void)cudaGetLastError();  // a failed query is an answer, not a sticky error
    state = err == cudaSuccess && resident >= 1 ? 1 : 2;
    cached[dev].store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

// Launches `Kern(p)` as a persistent grid of clusters: as many as fit the device at once, at most
// max_clusters (at least one must fit: the callers' supported() checks that); at least min_clusters
// (then more than fit at once: the hardware starts the rest as clusters finish).
template <auto Kern, int CL, int THREADS, size_t SMEM, typename Params>
cudaError_t launch_clusters(const Params& p, int64_t max_clusters, cudaStream_t stream, int64_t min_clusters = 0) {
  cudaLaunchConfig_t cfg;
  cudaLaunchAttribute attr[1];
  int clusters = 0;  // co-resident clusters
  cudaError_t err = cluster_config<Kern, CL, THREADS, SMEM>(cfg, attr, &clusters);
  if (err != cudaSuccess) return err;
  if (clusters < 1) return cudaErrorInvalidConfiguration;
  int64_t n = clusters < min_clusters ? min_clusters : clusters;
  if (n > max_clusters) n = max_clusters;
  cfg.gridDim = dim3(static_cast<unsigned>(n * CL));
  cfg.stream = stream;
  return cudaLaunchKernelEx(&cfg, Kern, p);
}
#endif

// Whether the clustered BLH kernel of a direction fits the current device at (T, N); false at N
// without clusters and in the CPU emulation. `Kernels` names the direction's kernel and its dynamic
// shared memory: `Kernels::kern<T, N0, RAD>()` and `Kernels::smem<N0, RAD>()` (constexpr functions: as static
// variable templates nvcc warned that they were referenced but not defined, #114-D).
template <typename Kernels, typename T>
bool blh_clusters_fit_for(int64_t N) {
#ifdef JFF_MONARCH_EMU
  (void)N;
  return false;
#else
  bool fits = false;
  dispatch_n(N, [&](auto n0, auto rad) {
    using B = BlhShape<n0(), rad()>;
    constexpr size_t kSmem = Kernels::template smem<n0(), rad()>();
    if constexpr (B::CL > 1) {
      fits = clusters_fit<Kernels::template kern<T, n0(), rad()>(), B::CL, B::WARPS * 32, kSmem>();
    }
  });
  return fits;
#endif
}

// The same for a run-time dtype (instantiates the kernels of both element types).
template <typename Kernels>
bool blh_clusters_fit(DType dtype, int64_t N) {
  return dtype == DType::kBF16 ? blh_clusters_fit_for<Kernels, __nv_bfloat16>(N)
                               : blh_clusters_fit_for<Kernels, __half>(N);
}

// 8 x 8 transpose of 16-bit elements: a[i] holds row i (element e in 16-bit half e & 1 of
// word e >> 1); afterwards a[j] holds column j.
__device__ __forceinline__ void transpose8x8(uint4 (&a)[8]) {
  uint32_t w[8][4];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    w[i][0] = a[i].x;
    w[i][1] = a[i].y;
    w[i][2] = a[i].z;
    w[i][3] = a[i].w;
  }
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    uint32_t o[4];
#pragma unroll
    for (int q = 0; q < 4; ++q)  // rows 2q, 2q+1 of column j: low or high halves of word j/2
      o[q] = __byte_perm(w[2 * q][j >> 1], w[2 * q + 1][j >> 1], (j & 1) ? 0x7632 : 0x5410);
    a[j] = make_uint4(o[0], o[1], o[2], o[3]);
  }
}

// Head slot s's real plane (row b0; the imaginary plane, row b0+1, follows at + N): `planes` is
// this CTA's slot-0 real plane, head j of a CTA at planes + 2N j.
template <typename T, int N, int CL, int HPC>
__device__ __forceinline__ T* blh_slot(T* planes, int s) {
  T* p = planes + (s % HPC) * 2 * N;
  if constexpr (CL > 1) {
    return cluster_peer(p, static_cast<unsigned>(s / HPC));
  } else {
    return p;
  }
}

// Geometry of one tile: rows b0 (real planes) and b0+1 (imaginary planes, absent past B) of the
// TH heads h0 .. h0+TH-1 (those >= H absent), element (b, l, h) at (b*L + l)*H + h.
struct BlhTile {
  int64_t base0, base1;  // element offsets of (b0, 0, h0) and (b0 + 1, 0, h0)
  int L, L1;             // valid rows of the two batch rows (L1 = 0 when b0 + 1 >= B)
  int H, h0;
  int g;     // filter group of the row pair
  bool vec;  // H % 8 == 0: 16-byte accesses (then every 8-head group is whole and aligned)
  // Heads of 8-head group `g8` that exist.
  __device__ __forceinline__ int heads(int g8) const { return max(0, min(8, H - h0 - 8 * g8)); }
};

// Columns of stream s at rows t .. t+7 of batch row rr, 8-head group g8: c[j] = the 8 values of
// head 8 g8 + j (zeros past the row's length and for missing heads).
__device__ __forceinline__ void blh_load_cols(const uint16_t* s, const BlhTile& tl, int rr, int g8, int t,
                                              uint4 (&c)[8]) {
  const int64_t base = (rr ? tl.base1 : tl.base0) + 8 * g8;
  const int Lr = rr ? tl.L1 : tl.L, nh = tl.heads(g8);
#pragma unroll
  for (int i = 0; i < 8; ++i) c[i] = load8(s + base + int64_t(t + i) * tl.H, 0, t + i < Lr ? nh : 0, tl.vec);
  transpose8x8(c);
}

// The inverse: columns c (head-major) stored as rows t .. t+7 (those < the row's length).
__device__ __forceinline__ void blh_store_cols(uint16_t* d, const BlhTile& tl, int rr, int g8, int t,
                                               uint4 (&c)[8]) {
  const int64_t base = (rr ? tl.base1 : tl.base0) + 8 * g8;
  const int Lr = rr ? tl.L1 : tl.L, nh = tl.heads(g8);
  transpose8x8(c);
#pragma unroll
  for (int i = 0; i < 8; ++i)
    if (t + i < Lr) store8(d + base + int64_t(t + i) * tl.H, 0, nh, tl.vec, c[i]);
}

// Unit w of a tile's load / store loops: 8-head group g8 (< G8), batch row rr, 16-byte chunk c of the row (t = 8 c).
// JFF_BLH_UNIT_ORDER = 0: g8 fastest, then rr, then c. The planes of every head slot and row are 128-byte aligned
// apart, so only c places a unit's 16-byte plane access in a bank group: the 8 lanes of a shared-memory phase touch
// 2 (G8 = 2) or 4 (G8 = 1) groups, a 4- or 2-way conflict on every plane write of the load and read of the store
// (remote CTAs' planes alike). 1: c fastest in runs of 8 (8 consecutive chunks: 128 contiguous bytes of a plane
// under sig_off, conflict-free), then g8, then rr; the g8 = 0 / 1 lanes of one 32-byte row piece stay in one warp
// instruction on the global side. The loops run blh_units<G8>(nchunk) units and skip c >= nchunk. Timed on an H100
// (session 40, results/logs/nvidia-h100-monarch-ab-session40.log, with JFF_KSPEC_ORDER=1 alongside): the BLH forward
// within -1.2..+3.1% of 0 at 256-32K, i.e. the bank conflicts are not what keeps BLH at 1.3-2.1x the BHL time: 0.
#ifndef JFF_BLH_UNIT_ORDER
#define JFF_BLH_UNIT_ORDER 0
#endif
template <int G8>
__host__ __device__ __forceinline__ int blh_units(int nchunk) {
  return JFF_BLH_UNIT_ORDER == 0 ? nchunk * 2 * G8 : (nchunk + 7) / 8 * 8 * 2 * G8;
}
template <int G8>
__host__ __device__ __forceinline__ void blh_unit(int w, int* g8, int* rr, int* c) {
  if constexpr (JFF_BLH_UNIT_ORDER == 0) {
    *g8 = w % G8;
    *rr = (w / G8) & 1;
    *c = w / (2 * G8);
  } else {
    const int run = w >> 3;
    *g8 = run % G8;
    *rr = (run / G8) & 1;
    *c = 8 * (run / (2 * G8)) + (w & 7);
  }
}

// Load phase: every head's planes get v = pre * u (16-bit products, as the BHL load) at positions
// t < nt (a multiple of 8; zeros at t >= L). Work is spread over the tile's threads, one unit
// being 8 rows l of one batch row and 8 heads, numbered by blh_unit.
template <typename T, int N, int RAD, int CL, int HPC>
__device__ __forceinline__ void blh_push_tile(const uint16_t* u, const uint16_t* pre, const BlhTile& tl,
                                              int nt, T* planes, int gthread, int gthreads) {
  constexpr int M = RAD * RAD, G8 = CL * HPC / 8;
#pragma unroll 1
  for (int w = gthread; w < blh_units<G8>(nt / 8); w += gthreads) {
    int g8, rr, c;
    blh_unit<G8>(w, &g8, &rr, &c);
    if (c >= nt / 8) continue;
    const int t = 8 * c, nh = tl.heads(g8);
    const int64_t base = (rr ? tl.base1 : tl.base0) + 8 * g8;
    const int Lr = rr ? tl.L1 : tl.L;
    const int off = sig_off<RAD>(t / M, (t % M) / RAD, t % RAD) + rr * N;
    if (t >= Lr) {  // the row's zero padding (half the units of a causal row at 4K / 16K): nothing to load
#pragma unroll
      for (int j = 0; j < 8; ++j)
        *reinterpret_cast<uint4*>(blh_slot<T, N, CL, HPC>(planes, 8 * g8 + j) + off) = make_uint4(0u, 0u, 0u, 0u);
      continue;
    }
    uint4 x[8], g[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) x[i] = load8(u + base + int64_t(t + i) * tl.H, 0, t + i < Lr ? nh : 0, tl.vec);
    if (pre != nullptr) {
#pragma unroll
      for (int i = 0; i < 8; ++i) g[i] = load8(pre + base + int64_t(t + i) * tl.H, 0, t + i < Lr ? nh : 0, tl.vec);
#pragma unroll
      for (int i = 0; i < 8; ++i) x[i] = mul8<T>(x[i], g[i]);
    }
    transpose8x8(x);
#pragma unroll
    for (int j = 0; j < 8; ++j) *reinterpret_cast<uint4*>(blh_slot<T, N, CL, HPC>(planes, 8 * g8 + j) + off) = x[j];
  }
}

// The 16-bit columns of chunk c (positions t = 8c, or m = 8c of both outer halves for N0 = 2)
// of batch row rr's plane for the heads of 8-head group g8: col[k0][j] for head slot 8 g8 + j.
template <typename T, int N0, int RAD, int CL, int HPC>
__device__ __forceinline__ void blh_read_plane_cols(T* planes, int rr, int g8, int c,
                                                    uint4 (&col)[N0 == 2 ? 2 : 1][8]) {
  constexpr int M = RAD * RAD, N = N0 * M, NH = N0 == 2 ? 2 : 1;
#pragma unroll
  for (int k0 = 0; k0 < NH; ++k0) {
    const int t = k0 * M + 8 * c;
    const int off = sig_off<RAD>(t / M, (t % M) / RAD, t % RAD) + rr * N;
#pragma unroll
    for (int j = 0; j < 8; ++j)
      col[k0][j] = *reinterpret_cast<const uint4*>(blh_slot<T, N, CL, HPC>(planes, 8 * g8 + j) + off);
  }
}

// Head j's values at output half n0 from those columns, in float: for N0 = 2 the inverse outer
// butterfly (scaled by 1/sqrt 2) of the two halves, as the BHL kernels do in their stores.
template <typename T, int N0>
__device__ __forceinline__ void blh_col_values(const uint4 (&col)[N0 == 2 ? 2 : 1][8], int j, int n0,
                                               float (&z)[8]) {
  if constexpr (N0 == 2) {
    constexpr float kS = 0.70710678118654752f;
    float a[8], b[8];
    unpack8<T>(col[0][j], a);
    unpack8<T>(col[1][j], b);
#pragma unroll
    for (int e = 0; e < 8; ++e) z[e] = n0 == 0 ? kS * (a[e] + b[e]) : kS * (a[e] - b[e]);
  } else {
    unpack8<T>(col[0][j], z);
  }
}

// The outer N0 = 2 level's butterfly and twiddle on the planes of a CTA's HPC heads, in place: what
// the BHL kernels fold into their element-order writes (heads hc + j >= H skipped; the caller
// synchronises after).
template <typename T, int RAD, int HPC>
__device__ __forceinline__ void blh_outer_butterfly2(T* planes, int hc, int H, const TwN<2 * RAD * RAD>& twN,
                                                     int tid, int nth) {
  constexpr int M = RAD * RAD, N = 2 * M;
  for (int c = tid; c < HPC * (M / 8); c += nth) {
    const int j = c / (M / 8), m = 8 * (c % (M / 8));
    if (hc + j >= H) continue;
    T* re = planes + j * 2 * N;
    T* im = re + N;
    const int off0 = sig_off<RAD>(0, m / RAD, m % RAD), off1 = sig_off<RAD>(1, m / RAD, m % RAD);
    float xr[2][8], xi[2][8];
    unpack8<T>(*reinterpret_cast<const uint4*>(re + off0), xr[0]);
    unpack8<T>(*reinterpret_cast<const uint4*>(re + off1), xr[1]);
    unpack8<T>(*reinterpret_cast<const uint4*>(im + off0), xi[0]);
    unpack8<T>(*reinterpret_cast<const uint4*>(im + off1), xi[1]);
    store_outer_butterfly2<T, RAD>(re, im, xr, xi, m, twN);
  }
}

// z *= the 8 values of a 16-bit column (a gate), in float.
template <typename T>
__device__ __forceinline__ void times_col(float (&z)[8], uint4 q) {
  float g[8];
  unpack8<T>(q, g);
#pragma unroll
  for (int e = 0; e < 8; ++e) z[e] *= g[e];
}

// Store phase: y = post * out at rows t < L of both batch rows, out read from the heads' planes
// (units as in the load; for N0 = 2 a unit covers both outer halves). The post-gate is
// transposed to columns rather than the result to rows, so each output element is rounded once,
// from the same float product as the BHL kernel: the two layouts give the same bits.
template <typename T, int N0, int RAD, int CL, int HPC>
__device__ __forceinline__ void blh_pull_tile(uint16_t* y, const uint16_t* post, const BlhTile& tl, T* planes,
                                              int gthread, int gthreads) {
  constexpr int M = RAD * RAD, G8 = CL * HPC / 8;
  constexpr int NH = N0 == 2 ? 2 : 1;  // outer halves a unit reads (N0 = 2: t = m and M + m)
  const int nchunk = N0 == 2 ? M / 8 : (tl.L + 7) / 8;
#pragma unroll 1
  for (int w = gthread; w < blh_units<G8>(nchunk); w += gthreads) {
    int g8, rr, c;
    blh_unit<G8>(w, &g8, &rr, &c);
    const int Lr = rr ? tl.L1 : tl.L;
    if (Lr == 0 || c >= nchunk) continue;  // no row b0 + 1; past the chunks
#pragma unroll
    for (int n0 = 0; n0 < NH; ++n0) {
      const int t = n0 * M + 8 * c;
      if (t >= Lr) continue;
      uint4 g[8], col[NH][8];
      if (post != nullptr) blh_load_cols(post, tl, rr, g8, t, g);  // first: global latency is the longer one
      blh_read_plane_cols<T, N0, RAD, CL, HPC>(planes, rr, g8, c, col);
      uint4 out[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float z[8];
        blh_col_values<T, N0>(col, j, n0, z);
        if (post != nullptr) times_col<T>(z, g[j]);
        out[j] = pack8<T>(z);
      }
      blh_store_cols(y, tl, rr, g8, t, out);
    }
  }
}

}  // namespace
}  // namespace jff
