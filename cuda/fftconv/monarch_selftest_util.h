// Host-side pieces shared by the tensor-core fftconv self-tests (monarch_selftest.cu,
// monarch_bwd_selftest.cu): a checked-CUDA-call macro, 16-bit conversions done by hand
// (round to nearest even), a small RNG, a float64 reference FFT and the median of timings.
// Included by those test programs only, each a single translation unit.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/host_half.h"
#include "fftconv/fftconv_args.h"

#define CK(x)                                                                        \
  do {                                                                               \
    cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, \
                   __LINE__, cudaGetErrorString(e_));                                \
      std::exit(2);                                                                  \
    }                                                                                \
  } while (0)

using jff::DType;
using cd = std::complex<double>;

namespace {

// ---- 16-bit conversions (round to nearest even) ----
uint16_t to16(DType t, float f) { return t == DType::kBF16 ? jff::host::F32ToBF16(f) : jff::host::F32ToF16(f); }
float from16(DType t, uint16_t h) { return t == DType::kBF16 ? jff::host::BF16ToF32(h) : jff::host::F16ToF32(h); }

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float uni() { return static_cast<float>((next() >> 40) * (1.0 / 16777216.0)) * 2.f - 1.f; }
};

// ---- float64 reference ----
void fft(std::vector<cd>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double ang = 2 * M_PI / static_cast<double>(len) * (inverse ? 1 : -1);
    for (size_t i = 0; i < n; i += len)
      for (size_t j = 0; j < len / 2; ++j) {
        const cd w = std::polar(1.0, ang * static_cast<double>(j));
        const cd x = a[i + j], y = a[i + j + len / 2] * w;
        a[i + j] = x + y;
        a[i + j + len / 2] = x - y;
      }
  }
  if (inverse)
    for (auto& x : a) x /= static_cast<double>(n);
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace
