// fp32 complex FFTs on the CUDA cores, shared by the fused and the long fftconv: twiddles and R-point DFTs in
// registers (R = 1 .. 16), and a CTA-wide FFT of a shared-memory array (radix-16 Stockham passes). Users: the
// k-spectrum pre-kernel of the fused kernels (fftconv/monarch_core.cuh) and their backward's dk reduce
// (fftconv/monarch_bwd.cu), the long path's fp32 inner step, dk's inverse and the column FFTs of its CUDA-core outer
// passes (fftconv_long/).
#pragma once

#include <cuda_runtime.h>

namespace jff {
namespace smem_fft {

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

// ---------------------------------------------------------------------------------------
// A CTA-wide FFT in shared memory.
// ---------------------------------------------------------------------------------------

// Values per thread the shared-memory FFT holds in registers (per transformed array).
constexpr int kFftValsPerThread = 16;  // 32 floats held across each pass's barrier

// Where element i of the passes' intermediate arrays lives in shared memory: i with its low four bits
// XORed by the next four. The early passes write each thread's R outputs to R consecutive elements
// (thread j at j R + r), which in natural order puts a half-warp's stores 16 R bytes apart, in the
// same banks: 2-3.5x the minimum shared-memory wavefronts per transform (4-16-way conflicts at
// Ns < 16). Swizzled, every half-warp's access of every pass touches 16 distinct 8-byte bank
// pairs. The XOR stays inside a 16-element block, so any n >= 16 is fine; the transform's input
// and output stay in natural order (the first pass reads and the last pass writes unswizzled).
__device__ __forceinline__ int swizzled(int i, int mask) { return i ^ ((i >> 4) & mask); }

// One Stockham pass of radix R over the n points of z (sub-transforms of length Ns done): for
// j < n/R, k = j mod Ns, the R inputs z[j + r n/R] times w_(Ns R)^(r k), an R-point DFT, outputs
// to (j - k) R + k + r Ns. All inputs are read before the barrier and written after
// it, so the pass runs in place. in_mask / out_mask: 15 where that side is swizzled, 0 where natural.
template <int R>
__device__ __forceinline__ void stockham_pass(float2* z, int n, int Ns, bool inverse, int tid, int nth, int in_mask,
                                              int out_mask) {
  constexpr int kJ = kFftValsPerThread / R > 0 ? kFftValsPerThread / R : 1;
  const int nj = n / R, step = n / (Ns * R);
  float2 v[kJ][R];
#pragma unroll
  for (int q = 0; q < kJ; ++q) {
    const int j = tid + q * nth;
    if (j < nj) {
      const int k = j & (Ns - 1);
#pragma unroll
      for (int r = 0; r < R; ++r) v[q][r] = z[swizzled(j + r * nj, in_mask)];
      if (Ns > 1) {
        // w^r for r < R from w, w^2, w^4, w^8 (one sincospif, squarings, at most three products:
        // a few float roundings, not r of them as a running product would accumulate).
        float2 p2[4];
        p2[0] = w_exp(k * step, n, inverse);
#pragma unroll
        for (int b = 1; b < 4; ++b) p2[b] = tw_mul(p2[b - 1], p2[b - 1]);
#pragma unroll
        for (int r = 1; r < R; ++r) {
          float2 w = make_float2(1.f, 0.f);
          bool first = true;
#pragma unroll
          for (int b = 0; b < 4; ++b)
            if ((r >> b) & 1) {
              w = first ? p2[b] : tw_mul(w, p2[b]);
              first = false;
            }
          v[q][r] = tw_mul(v[q][r], w);
        }
      }
      dft_reg<R>(v[q], inverse);
    }
  }
  __syncthreads();
#pragma unroll
  for (int q = 0; q < kJ; ++q) {
    const int j = tid + q * nth;
    if (j < nj) {
      const int k = j & (Ns - 1), base = (j - k) * R + k;
#pragma unroll
      for (int r = 0; r < R; ++r) z[swizzled(base + r * Ns, out_mask)] = v[q][r];
    }
  }
  __syncthreads();
}

// In-place FFT of a shared-memory array of n = 2^m points (16 <= n <= 16384), natural order in
// and out, unnormalised; `inverse` uses w^-1. One radix-2/4/8 pass for the leftover factor, then
// radix-16 Stockham passes in registers: log16(n) barriers pairs instead of log2(n). The caller syncs
// before; this syncs after. Needs n <= kFftValsPerThread * nth (else it traps: a launch error,
// never a half-done transform).
__device__ __forceinline__ void fft_smem(float2* z, int n, bool inverse, int tid, int nth) {
  if (n > kFftValsPerThread * nth) __trap();
  // The small radix first, at Ns = 1 where it needs no twiddles; then radix 16.
  int Ns = 1 << ((__ffs(n) - 1) & 3);  // the leftover factor 1, 2, 4 or 8 (n = it * 16^m)
  // Swizzled in between (see swizzled): every pass but the last writes swizzled, every pass but the first reads so.
  const int first_out = Ns < n ? 15 : 0;
  switch (Ns) {
    case 2: stockham_pass<2>(z, n, 1, inverse, tid, nth, 0, first_out); break;
    case 4: stockham_pass<4>(z, n, 1, inverse, tid, nth, 0, first_out); break;
    case 8: stockham_pass<8>(z, n, 1, inverse, tid, nth, 0, first_out); break;
    default: break;
  }
  for (; Ns < n; Ns *= 16)
    stockham_pass<16>(z, n, Ns, inverse, tid, nth, Ns > 1 ? 15 : 0, Ns * 16 < n ? 15 : 0);
}

// The same with the size a compile-time constant, 2^LGN. Kernels that run two transforms, or one
// in a loop, need it: with a run-time size ptxas keeps the passes' register arrays in local
// memory there (200-1100 bytes of spills at 64-80 registers), with a constant one it needs ~72
// registers and no spill. (One transform with a run-time size compiles well: 64, no spill.)
template <int LGN>
__device__ __forceinline__ void fft_smem_fixed(float2* z, bool inverse, int tid, int nth) {
  fft_smem(z, 1 << LGN, inverse, tid, nth);
}

}  // namespace smem_fft
}  // namespace jff
