// The long path's names for the fp32 register DFTs and twiddles of common/smem_fft.cuh (the column FFTs of the
// CUDA-core outer passes in outer_pass.cuh, the shared-memory FFT's users in inner_pass.cuh and long_bwd.cuh), and
// dispatch_lg.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "common/smem_fft.cuh"

namespace jff {
namespace longconv {
namespace inner {

// (tw_mul, w_exp, w16, dft_reg: common/smem_fft.cuh, shared with the fused path's k-spectrum kernel.)
using smem_fft::dft_reg;
using smem_fft::tw_mul;
using smem_fft::w16;
using smem_fft::w_exp;

// Calls f(std::integral_constant<int, LG>{}) for LG == lg, LO <= lg <= HI (the sizes a kernel with a
// compile-time transform size is instantiated for); cudaErrorInvalidValue for any other lg.
template <int LO, int HI, typename F>
cudaError_t dispatch_lg(int lg, F&& f) {
  if constexpr (LO > HI) {
    return cudaErrorInvalidValue;
  } else {
    if (lg == LO) return f(std::integral_constant<int, LO>{});
    return dispatch_lg<LO + 1, HI>(lg, f);
  }
}

}  // namespace inner
}  // namespace longconv
}  // namespace jff
