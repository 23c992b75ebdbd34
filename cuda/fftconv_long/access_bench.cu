// Bandwidth of the long path's outer-pass access pattern alone, without any DFT: which way of moving the
// tiles reaches copy speed? A development benchmark (benchmarks/device_access_bench.sh), not part of the
// package.
//
// The pattern (outer_tc.cuh): signal row r of N = N1 * N2 16-bit elements is viewed as N1 rows of N2; one
// CTA owns TW contiguous columns n2 and loops over signal rows. Per row it reads the N1 x TW tile of two
// inputs (u and the pre-gate: N1 pieces of 2 TW bytes, N2 elements apart), multiplies them, and writes an
// N1 x TW tile of the workspace (ws_offset's layout: the M packed rows x two planes, each a piece of
// 2 TW bytes in a contiguous row of N2). Bytes moved per row: 3 x 2N.
//
// Ways of moving a tile, each timed over the same buffers:
// - reg:   16-byte register loads, UNR chunks per thread in flight, then st.shared, barrier, ld.shared, 16-byte
//          st.global, barrier (the passes' form today);
// - cpa:   cp.async of the next row's tile into a second buffer while this row is stored (two buffers);
// - tma:   cp.async.bulk.tensor boxes (TW x up to 256 rows) into S buffers, an mbarrier per buffer, the next
//          rows in flight while this one is stored; the store either 16-byte st.global (tma) or a TMA box
//          store from a dense tile (tmas);
// - copy:  a contiguous copy of the same bytes (the reference).
// `work` adds that many dependent FMAs per element between load and store (a stand-in for the DFT stages).
#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fftconv_long/selftest_util.h"  // CK, time_ms

namespace {

struct Geo {
  int N1, N2, TW;
  int64_t rows;
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Element-wise product of 8 bf16 pairs plus `work` dependent FMAs on each (kept, so not optimized away).
__device__ __forceinline__ uint4 combine(uint4 a, uint4 b, int work) {
  uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w}, o[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    float x0 = __uint_as_float(av[j] << 16) * __uint_as_float(bv[j] << 16);
    float x1 = __uint_as_float(av[j] & 0xffff0000u) * __uint_as_float(bv[j] & 0xffff0000u);
    for (int w = 0; w < work; ++w) {
      x0 = fmaf(x0, 0.999f, 1e-3f);
      x1 = fmaf(x1, 0.999f, 1e-3f);
    }
    o[j] = (__float_as_uint(x0) >> 16) | (__float_as_uint(x1) & 0xffff0000u);
  }
  return make_uint4(o[0], o[1], o[2], o[3]);
}

__device__ __forceinline__ uint4 ld16(const uint16_t* p, bool hint) {
  return hint ? __ldcs(reinterpret_cast<const uint4*>(p)) : __ldg(reinterpret_cast<const uint4*>(p));
}
__device__ __forceinline__ void st16(uint16_t* p, uint4 v, bool hint) {
  if (hint) {
    __stcs(reinterpret_cast<uint4*>(p), v);
  } else {
    *reinterpret_cast<uint4*>(p) = v;
  }
}

// Store phase shared by reg / cpa / tma: the tile (N1 x TW, dense in `tile`) to the workspace rows.
__device__ __forceinline__ void store_tile(const uint16_t* tile, uint16_t* ws, const Geo g, int64_t r, int n2_0,
                                           bool hint) {
  const int CH = g.TW / 8;
  for (int i = threadIdx.x; i < g.N1 * CH; i += blockDim.x) {
    const int k = i / CH, ch = i - k * CH;
    st16(ws + (r * g.N1 + k) * g.N2 + n2_0 + 8 * ch, *reinterpret_cast<const uint4*>(tile + 8 * i), hint);
  }
}

template <int UNR>
__global__ void reg_kernel(const uint16_t* __restrict__ u, const uint16_t* __restrict__ pre, uint16_t* ws,
                           const Geo g, int work, bool hint) {
  extern __shared__ __align__(16) uint16_t sm[];
  const int CH = g.TW / 8, n2_0 = blockIdx.x * g.TW, nth = blockDim.x;
  const int64_t N = int64_t(g.N1) * g.N2;
  for (int64_t r = blockIdx.y; r < g.rows; r += gridDim.y) {
    for (int i0 = threadIdx.x; i0 < g.N1 * CH; i0 += UNR * nth) {
      uint4 a[UNR], b[UNR];
#pragma unroll
      for (int j = 0; j < UNR; ++j) {
        const int i = min(i0 + j * nth, g.N1 * CH - 1), n1 = i / CH, ch = i - n1 * CH;
        const int64_t off = r * N + int64_t(n1) * g.N2 + n2_0 + 8 * ch;
        a[j] = ld16(u + off, hint);
        b[j] = ld16(pre + off, hint);
      }
#pragma unroll
      for (int j = 0; j < UNR; ++j)
        if (i0 + j * nth < g.N1 * CH) *reinterpret_cast<uint4*>(sm + 8 * (i0 + j * nth)) = combine(a[j], b[j], work);
    }
    __syncthreads();
    store_tile(sm, ws, g, r, n2_0, hint);
    __syncthreads();
  }
}

// 16-byte cp.async, evict-first in L2 when `hint`.
__device__ __forceinline__ void cp16(void* dst, const void* src, bool hint) {
  if (hint) {
    uint64_t policy;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src),
                 "l"(policy)
                 : "memory");
  } else {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_u32(dst)), "l"(src) : "memory");
  }
}

// cp.async into two buffers: row r + gy's tile is requested once row r's has been combined.
__global__ void cpa_kernel(const uint16_t* __restrict__ u, const uint16_t* __restrict__ pre, uint16_t* ws, const Geo g,
                          int work, bool hint) {
  extern __shared__ __align__(16) uint16_t sm[];
  const int CH = g.TW / 8, n2_0 = blockIdx.x * g.TW, nth = blockDim.x, T = g.N1 * g.TW;
  const int64_t N = int64_t(g.N1) * g.N2;
  uint16_t* in = sm;        // u, pre: 2 x T
  uint16_t* out = sm + 2 * T;  // T
  auto issue = [&](int64_t r) {
    for (int i = threadIdx.x; i < g.N1 * CH; i += nth) {
      const int n1 = i / CH, ch = i - n1 * CH;
      const int64_t off = r * N + int64_t(n1) * g.N2 + n2_0 + 8 * ch;
      cp16(in + 8 * i, u + off, hint);
      cp16(in + T + 8 * i, pre + off, hint);
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
  };
  if (blockIdx.y < g.rows) issue(blockIdx.y);
  for (int64_t r = blockIdx.y; r < g.rows; r += gridDim.y) {
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    for (int i = threadIdx.x; i < g.N1 * CH; i += nth)  // each thread reads the chunks it copied itself
      *reinterpret_cast<uint4*>(out + 8 * i) = combine(*reinterpret_cast<const uint4*>(in + 8 * i),
                                                       *reinterpret_cast<const uint4*>(in + T + 8 * i), work);
    if (r + gridDim.y < g.rows) issue(r + gridDim.y);
    __syncthreads();
    store_tile(out, ws, g, r, n2_0, hint);
    __syncthreads();
  }
}

// ---- TMA
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n .reg .pred p;\n WAIT_%=:\n mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n @!p bra WAIT_%=;\n}\n" ::
          "r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          smem_u32(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_u32(bar))
      : "memory");
}
__device__ __forceinline__ void tma_store(const CUtensorMap* map, int c0, int c1, const void* src) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1), "r"(smem_u32(src))
               : "memory");
}

// S buffers of (u, pre) tiles; thread 0 keeps S rows in flight. TMA_STORE: the output tile leaves by TMA box
// stores (ws's 2-D view), else by 16-byte st.global.
template <int S, bool TMA_STORE>
__global__ void tma_kernel(const __grid_constant__ CUtensorMap mu, const __grid_constant__ CUtensorMap mp,
                           const __grid_constant__ CUtensorMap mw, uint16_t* ws, const Geo g, int work, bool hint) {
  extern __shared__ __align__(16) uint16_t sm[];  // the dynamic base is 1 KB aligned (no static smem)
  const int CH = g.TW / 8, n2_0 = blockIdx.x * g.TW, nth = blockDim.x, T = g.N1 * g.TW;
  const int box = min(g.N1, 256), nbox = g.N1 / box;
  uint16_t* out = sm + 2 * S * T;
  uint64_t* bar = reinterpret_cast<uint64_t*>(out + T);
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) mbar_init(bar + s, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  auto issue = [&](int64_t r, int s) {  // thread 0
    mbar_expect_tx(bar + s, 2u * 2u * T);
    for (int b = 0; b < nbox; ++b) {
      const int c1 = static_cast<int>(r * g.N1) + b * box;
      tma_load(sm + 2 * s * T + b * box * g.TW, &mu, n2_0, c1, bar + s);
      tma_load(sm + (2 * s + 1) * T + b * box * g.TW, &mp, n2_0, c1, bar + s);
    }
  };
  if (threadIdx.x == 0)
    for (int s = 0; s < S; ++s)
      if (blockIdx.y + int64_t(s) * gridDim.y < g.rows) issue(blockIdx.y + int64_t(s) * gridDim.y, s);
  int it = 0;
  for (int64_t r = blockIdx.y; r < g.rows; r += gridDim.y, ++it) {
    const int s = it % S;
    mbar_wait(bar + s, (it / S) & 1);
    if (TMA_STORE) {  // the previous row's box store has read `out`
      if (threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
      __syncthreads();
    }
    const uint16_t* a = sm + 2 * s * T;
    for (int i = threadIdx.x; i < g.N1 * CH; i += nth)
      *reinterpret_cast<uint4*>(out + 8 * i) =
          combine(*reinterpret_cast<const uint4*>(a + 8 * i), *reinterpret_cast<const uint4*>(a + T + 8 * i), work);
    if (TMA_STORE) asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();  // buffer s is read; out is written
    if (threadIdx.x == 0) {
      const int64_t rn = r + int64_t(S) * gridDim.y;
      if (rn < g.rows) issue(rn, s);
      if (TMA_STORE) {
        for (int b = 0; b < nbox; ++b)
          tma_store(&mw, n2_0, static_cast<int>(r * g.N1) + b * box, out + b * box * g.TW);
        asm volatile("cp.async.bulk.commit_group;" ::: "memory");
      }
    }
    if (!TMA_STORE) {
      store_tile(out, ws, g, r, n2_0, hint);
      __syncthreads();
    }
  }
  if (TMA_STORE && threadIdx.x == 0) asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

__global__ void copy_kernel(const uint4* __restrict__ u, const uint4* __restrict__ pre, uint4* ws, int64_t n,
                            int work) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    __stcs(ws + i, combine(__ldcs(u + i), __ldcs(pre + i), work));
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  if (fn == nullptr) {
    cudaDriverEntryPointQueryResult q;
    CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&fn), 12000,
                                           cudaEnableDefault, &q));
    if (q != cudaDriverEntryPointSuccess || fn == nullptr) {
      std::fprintf(stderr, "cuTensorMapEncodeTiled not available\n");
      std::exit(1);
    }
  }
  return fn;
}

CUtensorMap make_map(void* base, const Geo& g, CUtensorMapL2promotion promo) {
  CUtensorMap m;
  const cuuint64_t dims[2] = {cuuint64_t(g.N2), cuuint64_t(g.rows * g.N1)};
  const cuuint64_t strides[1] = {cuuint64_t(g.N2) * 2};
  const cuuint32_t box[2] = {cuuint32_t(g.TW), cuuint32_t(std::min(g.N1, 256))};
  const cuuint32_t estr[2] = {1, 1};
  const CUresult res = encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, base, dims, strides, box, estr,
                                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, promo,
                                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (res != CUDA_SUCCESS) {
    std::fprintf(stderr, "cuTensorMapEncodeTiled failed: %d\n", int(res));
    std::exit(1);
  }
  return m;
}

template <typename K>
dim3 grid_for(K kernel, int threads, size_t smem, int tiles, int64_t rows, int waves, int* per_sm_out) {
  if (smem > 48 * 1024) CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  int dev = 0, nsm = 0, per_sm = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev));
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
  *per_sm_out = per_sm;
  int64_t gy = (int64_t(waves) * nsm * per_sm + tiles - 1) / tiles;
  gy = std::max<int64_t>(1, std::min<int64_t>(gy, rows));
  return dim3(tiles, unsigned(gy));
}

// Host check of a few sampled workspace elements against u * pre (work = 0 only).
bool check_sample(const std::vector<uint16_t>& hu, const std::vector<uint16_t>& hp, const uint16_t* dws, const Geo& g) {
  for (int s = 0; s < 64; ++s) {
    const int64_t r = (s * 7919) % g.rows;
    const int n1 = (s * 131) % g.N1, n2 = (s * 977) % g.N2;
    const int64_t off = (r * g.N1 + n1) * g.N2 + n2;
    uint16_t got;
    CK(cudaMemcpy(&got, dws + off, 2, cudaMemcpyDeviceToHost));
    const int64_t hoff = off % int64_t(hu.size());
    uint32_t a = uint32_t(hu[hoff]) << 16, b = uint32_t(hp[hoff]) << 16;
    float x;
    std::memcpy(&x, &a, 4);
    float y;
    std::memcpy(&y, &b, 4);
    float z = x * y;
    uint32_t zb;
    std::memcpy(&zb, &z, 4);
    if (uint16_t(zb >> 16) != got) {
      std::fprintf(stderr, "mismatch at r %lld n1 %d n2 %d: %04x vs %04x\n", (long long)r, n1, n2, unsigned(zb >> 16),
                   unsigned(got));
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // access_bench N1 N2 TW rows [work]
  if (argc < 5) {
    std::fprintf(stderr, "usage: access_bench N1 N2 TW rows [work]\n");
    return 2;
  }
  Geo g{std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoll(argv[4])};
  const int work = argc > 5 ? std::atoi(argv[5]) : 0;
  if (g.N1 > 256 && g.N1 % 256 != 0) return 2;
  const int64_t n = g.rows * g.N1 * g.N2;
  const double gb = 3.0 * 2.0 * double(n) / 1e9;
  uint16_t *u, *pre, *ws;
  CK(cudaMalloc(&u, n * 2));
  CK(cudaMalloc(&pre, n * 2));
  CK(cudaMalloc(&ws, n * 2));
  // Random bf16 in [0.5, 2): a host pattern of 1M elements tiled over the buffers.
  const int64_t pat = std::min<int64_t>(n, 1 << 20);
  std::vector<uint16_t> hu(pat), hp(pat);
  uint32_t st = 12345;
  auto rnd = [&]() { return st = st * 1664525u + 1013904223u; };
  for (int64_t i = 0; i < pat; ++i) {
    hu[i] = uint16_t(0x3f00 + (rnd() >> 24) % 0x100);
    hp[i] = uint16_t(0x3f00 + (rnd() >> 24) % 0x100);
  }
  for (int64_t o = 0; o < n; o += pat) {
    CK(cudaMemcpy(u + o, hu.data(), std::min(pat, n - o) * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(pre + o, hp.data(), std::min(pat, n - o) * 2, cudaMemcpyHostToDevice));
  }
  const int tiles = g.N2 / g.TW, T = g.N1 * g.TW;
  std::printf("N1 %d N2 %d TW %d rows %lld work %d: %.2f GB per pass\n", g.N1, g.N2, g.TW, (long long)g.rows, work, gb);
  auto report = [&](const std::string& name, float ms, int per_sm, dim3 grid) {
    CK(cudaGetLastError());
    bool ok = work != 0 || check_sample(hu, hp, ws, g);
    std::printf("  %-34s %8.3f ms %7.0f GB/s  %2d CTAs/SM  grid %ux%u%s\n", name.c_str(), ms, gb / ms * 1e3, per_sm,
                grid.x, grid.y, ok ? "" : "  WRONG");
    CK(cudaMemset(ws, 0xff, n * 2));
  };
  CK(cudaMemset(ws, 0xff, n * 2));
  {
    const float ms = time_ms([&] { copy_kernel<<<132 * 8, 512>>>(reinterpret_cast<const uint4*>(u),
                                                               reinterpret_cast<const uint4*>(pre),
                                                               reinterpret_cast<uint4*>(ws), n / 8, work); }, 7);
    CK(cudaGetLastError());
    std::printf("  %-34s %8.3f ms %7.0f GB/s\n", "copy (contiguous)", ms, gb / ms * 1e3);
    CK(cudaMemset(ws, 0xff, n * 2));
  }
  // reg: the passes' form; `pad` extra shared memory bounds the CTAs per SM (the real passes: 4-5).
  for (int hint = 1; hint >= 0; --hint)
    for (int per : {4, 8, 16}) {
      const size_t smem = std::max<size_t>(size_t(T) * 2, 227 * 1024 / per - 1024);
      int ps;
      dim3 grid = grid_for(reg_kernel<4>, 128, smem, tiles, g.rows, 2, &ps);
      const float ms = time_ms([&] { reg_kernel<4><<<grid, 128, smem>>>(u, pre, ws, g, work, hint); }, 7);
      report("reg UNR4 hint " + std::to_string(hint) + " want " + std::to_string(per), ms, ps, grid);
    }
  {
    const size_t smem = std::max<size_t>(size_t(T) * 2, 227 * 1024 / 4 - 1024);
    int ps;
    dim3 grid = grid_for(reg_kernel<8>, 128, smem, tiles, g.rows, 2, &ps);
    const float ms = time_ms([&] { reg_kernel<8><<<grid, 128, smem>>>(u, pre, ws, g, work, true); }, 7);
    report("reg UNR8 hint 1 want 4", ms, ps, grid);
  }
  for (int hint = 1; hint >= 0; --hint) {
    const size_t smem = size_t(3) * T * 2;
    int ps;
    dim3 grid = grid_for(cpa_kernel, 128, smem, tiles, g.rows, 2, &ps);
    const float ms = time_ms([&] { cpa_kernel<<<grid, 128, smem>>>(u, pre, ws, g, work, hint); }, 7);
    report("cpa hint " + std::to_string(hint), ms, ps, grid);
  }
  const CUtensorMapL2promotion promos[3] = {CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B};
  const char* promo_names[3] = {"none", "128B", "256B"};
  for (int pi = 0; pi < 3; ++pi) {
    const CUtensorMap mu = make_map(u, g, promos[pi]), mp = make_map(pre, g, promos[pi]),
                      mw = make_map(ws, g, promos[pi]);
    auto run_tma = [&](auto kern, int S, const char* form) {
      const size_t smem = size_t(2 * S + 1) * T * 2 + 8 * S;
      int ps;
      dim3 grid = grid_for(kern, 128, smem, tiles, g.rows, 2, &ps);
      const float ms = time_ms([&] { kern<<<grid, 128, smem>>>(mu, mp, mw, ws, g, work, true); }, 7);
      report(std::string(form) + " S" + std::to_string(S) + " promo " + promo_names[pi], ms, ps, grid);
    };
    run_tma(tma_kernel<2, false>, 2, "tma");
    run_tma(tma_kernel<3, false>, 3, "tma");
    run_tma(tma_kernel<2, true>, 2, "tmas");
    run_tma(tma_kernel<4, true>, 4, "tmas");
  }
  CK(cudaFree(u));
  CK(cudaFree(pre));
  CK(cudaFree(ws));
  return 0;
}
