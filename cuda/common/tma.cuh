// Tensor-memory-accelerator (TMA) box loads into shared memory, completed on an mbarrier (sm_90 and
// later), and box stores back to global memory. A box of a 3-D tensor of 16- or 32-bit elements lands densely
// in shared memory ([dim2][dim1][dim0], dim0 fastest) with one instruction and no registers, coordinates
// outside the tensor filled with zeros (a store drops them);
// the issuing thread tells the CTA's mbarrier how many bytes to expect, and every consumer waits on the
// barrier's phase. Used where a CTA reads many short strided pieces (the long path's outer passes:
// 32-byte row pieces N2 elements apart), which plain loads kept too few of in flight
// (benchmarks/notes_long.md, session 31).
//
// The CPU emulation (fftconv_long/emu.h) has host stand-ins with the same names.
#pragma once

#include <cuda.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h>

#include <cstdint>

namespace jff {

// A tensor map, passed to kernels as a __grid_constant__ parameter (its address must be a parameter's).
struct TileMap {
  CUtensorMap map;
};

// Encodes `m` for elements of `elem_bytes` (2 or 4) at `base`: dims (elements, innermost first), strides of
// dims 1 and 2 in bytes (multiples of 16), box extents (box[0] * elem_bytes a multiple of 16, each <= 256).
// swizzle: 0, or the box lands with the 32- or 128-byte swizzle (CU_TENSOR_MAP_SWIZZLE_32B / _128B; box[0] *
// elem_bytes <= swizzle): the 16-byte unit at shared address A goes to A ^ ((A >> 3) & (swizzle - 16)), so that 8
// rows of 32 (128) bytes in a column fill 8 distinct bank groups (tma_swizzle below finds an element's place).
// L2 promotion of 128 bytes: the pieces' neighbours come into L2 with them (in the access benchmark of
// notes_long.md, session 31, it beat none and 256 bytes). cudaErrorInvalidValue where the driver refuses
// the map or has no cuTensorMapEncodeTiled (check tma_encode_available first).
// The driver's cuTensorMapEncodeTiled (looked up once through the runtime: no libcuda link), or nullptr where the
// driver has none; callers then use their plain loads (tma_encode_available).
inline PFN_cuTensorMapEncodeTiled_v12000 tma_encode_fn() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}
inline bool tma_encode_available() { return tma_encode_fn() != nullptr; }

inline cudaError_t make_tile_map(TileMap* m, const void* base, int elem_bytes, const uint64_t (&dims)[3],
                                 const uint64_t (&strides)[2], const uint32_t (&box)[3], int swizzle = 0) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tma_encode_fn();
  if (encode == nullptr || (elem_bytes != 2 && elem_bytes != 4)) return cudaErrorInvalidValue;
  if ((swizzle != 0 && swizzle != 32 && swizzle != 128) || (swizzle != 0 && box[0] * elem_bytes > uint32_t(swizzle)))
    return cudaErrorInvalidValue;
  const cuuint64_t gdim[3] = {dims[0], dims[1], dims[2]};
  const cuuint64_t gstride[2] = {strides[0], strides[1]};
  const cuuint32_t bdim[3] = {box[0], box[1], box[2]};
  const cuuint32_t estride[3] = {1, 1, 1};
  const CUresult r = encode(&m->map, elem_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_UINT16 : CU_TENSOR_MAP_DATA_TYPE_UINT32,
                            3, const_cast<void*>(base), gdim, gstride, bdim, estride, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            swizzle == 32    ? CU_TENSOR_MAP_SWIZZLE_32B
                            : swizzle == 128 ? CU_TENSOR_MAP_SWIZZLE_128B
                                             : CU_TENSOR_MAP_SWIZZLE_NONE,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define JFF_TMA_ASM(...) asm volatile(__VA_ARGS__)
#else
// sm_80 builds compile the callers but never run them (the host enables TMA on sm_90+ only).
#define JFF_TMA_ASM(...) __trap()
#endif

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Byte offset `off` of a tile that a box with `swizzle` (32 or 128) filled, at shared address `tile` (128-byte
// aligned; 1024 for 128): where the byte the unswizzled layout has at `off` is (bits 4.. of the address flipped by
// the bits from 7 up).
__host__ __device__ __forceinline__ uint32_t tma_swizzle(uint32_t tile, uint32_t off, uint32_t swizzle) {
  return off ^ (((tile + off) >> 3) & (swizzle - 16u));
}

// One thread: the barrier expects one arrival per phase (the issuing thread's expect_tx).
__device__ __forceinline__ void mbar_init(uint64_t* bar) {
  JFF_TMA_ASM("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_addr(bar)) : "memory");
  JFF_TMA_ASM("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// The issuing thread's arrival, announcing `bytes` of TMA data for this phase.
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  JFF_TMA_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}

// Blocks until the barrier's phase with this parity has completed (all its bytes have landed).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  JFF_TMA_ASM(
      "{\n .reg .pred done;\n JFF_MBAR_WAIT_%=:\n mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra JFF_MBAR_WAIT_%=;\n}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}

// The box at element coordinates (c0, c1, c2) of `m` into `dst` (128-byte aligned), counted on `bar`.
__device__ __forceinline__ void tma_load_3d(void* dst, const TileMap& m, int c0, int c1, int c2, uint64_t* bar) {
  JFF_TMA_ASM(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];" ::
          "r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(&m.map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
      : "memory");
}

// The box at (c0, c1, c2) of `m` from `src` (128-byte aligned, written by this CTA's threads, each of which ran
// tma_store_fence after its writes, then a barrier), as one bulk group of the issuing thread.
__device__ __forceinline__ void tma_store_3d(const TileMap& m, int c0, int c1, int c2, const void* src) {
  JFF_TMA_ASM("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%1, %2, %3}], [%4];" ::"l"(
                  reinterpret_cast<uint64_t>(&m.map)),
              "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(src))
              : "memory");
  JFF_TMA_ASM("cp.async.bulk.commit_group;" ::: "memory");
}
// Generic-proxy writes to shared memory made visible to a later TMA store (every writing thread).
__device__ __forceinline__ void tma_store_fence() { JFF_TMA_ASM("fence.proxy.async.shared::cta;" ::: "memory"); }
// The issuing thread: its stores have read their shared memory (it may be overwritten) / have completed.
__device__ __forceinline__ void tma_store_wait_read() { JFF_TMA_ASM("cp.async.bulk.wait_group.read 0;" ::: "memory"); }
__device__ __forceinline__ void tma_store_wait_all() { JFF_TMA_ASM("cp.async.bulk.wait_group 0;" ::: "memory"); }

#undef JFF_TMA_ASM

}  // namespace jff
