// One 16-byte global store that stays one store instruction.
//
// ptxas may split a plain 16-byte store (a uint4 assignment) into four 4-byte stores when its four
// registers are not an aligned quad, rather than move them: seen in the depthwise BHL K = 7 forward
// under its 64-register cap (sm_90a, CUDA 13), where it quadruples the store requests. The same store
// written as PTX stayed one STG.128 there. Off the GPU (CPU emulation) it is a plain store.
#pragma once

#include <cuda_runtime.h>

namespace jff {

__device__ __forceinline__ void StoreGlobal16(void* p, unsigned a, unsigned b, unsigned c, unsigned d) {
#if defined(__CUDA_ARCH__)
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(__cvta_generic_to_global(p)), "r"(a), "r"(b),
               "r"(c), "r"(d));
#else
  *static_cast<uint4*>(p) = make_uint4(a, b, c, d);
#endif
}

}  // namespace jff
