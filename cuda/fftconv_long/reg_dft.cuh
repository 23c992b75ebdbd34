// fp32 complex helpers of the long path's CUDA-core code (the shared-memory FFT in inner_pass.cuh
// and the column FFTs of the outer passes in outer_pass.cuh): twiddles and R-point DFTs in
// registers (R = 1 .. 16).
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

namespace jff {
namespace longconv {
namespace inner {

__device__ __forceinline__ float2 tw_mul(float2 x, float2 w) {
  return make_float2(x.x * w.x - x.y * w.y, x.x * w.y + x.y * w.x);
}

// w_n^e = exp(-2 pi i e / n) (conjugated for the inverse), 0 <= e < n <= 2^14: e / n is exact in
// float, so sincospif rounds once.
__device__ __forceinline__ float2 w_exp(int e, int n, bool inverse) {
  float s, c;
  sincospif(-2.0f * static_cast<float>(e) / static_cast<float>(n), &s, &c);
  return make_float2(c, inverse ? -s : s);
}

// w_16^e for 0 <= e < 8 as constants (the register DFTs' twiddles; e is a compile-time constant
// after unrolling, so the switch folds away).
__device__ __forceinline__ float2 w16(int e, bool inverse) {
  float c = 1.f, s = 0.f;
  switch (e) {
    case 1: c = 0.923879533f; s = 0.382683432f; break;
    case 2: c = 0.707106781f; s = 0.707106781f; break;
    case 3: c = 0.382683432f; s = 0.923879533f; break;
    case 4: c = 0.f; s = 1.f; break;
    case 5: c = -0.382683432f; s = 0.923879533f; break;
    case 6: c = -0.707106781f; s = 0.707106781f; break;
    case 7: c = -0.923879533f; s = 0.382683432f; break;
    default: break;
  }
  return make_float2(c, inverse ? s : -s);
}

// R-point DFT (R = 1, 2, 4, 8, 16; 1 is the identity) of v in registers, natural order in and out: radix-2 DIT on the
// bit-reversed copy, every index a compile-time constant once unrolled.
template <int R>
__device__ __forceinline__ void dft_reg(float2 (&v)[R], bool inverse) {
  constexpr int LG = R == 1 ? 0 : (R == 2 ? 1 : (R == 4 ? 2 : (R == 8 ? 3 : 4)));
  static_assert((1 << LG) == R && R <= 16, "R must be 1, 2, 4, 8 or 16");
#pragma unroll
  for (int i = 0; i < R; ++i) {
    int j = 0;
#pragma unroll
    for (int b = 0; b < LG; ++b) j |= ((i >> b) & 1) << (LG - 1 - b);
    if (j > i) {
      const float2 t = v[i];
      v[i] = v[j];
      v[j] = t;
    }
  }
#pragma unroll
  for (int half = 1; half < R; half <<= 1) {
#pragma unroll
    for (int i = 0; i < R / 2; ++i) {
      const int pos = i & (half - 1), a = ((i - pos) << 1) + pos, b = a + half;
      const float2 t = tw_mul(v[b], w16(pos * (8 / half), inverse));  // w_(2 half)^pos
      v[b] = make_float2(v[a].x - t.x, v[a].y - t.y);
      v[a] = make_float2(v[a].x + t.x, v[a].y + t.y);
    }
  }
}

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
