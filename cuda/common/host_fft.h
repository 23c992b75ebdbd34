// Host float64 reference FFT for the self-test programs (plain C++, no CUDA headers).
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <utility>
#include <vector>

namespace jff {
namespace host {

// Radix-2 FFT in float64 (std::complex multiplication is avoided: without -ffast-math it goes through
// a slow library call). Each stage's twiddles are computed directly and stored contiguously.
inline void Fft(std::vector<std::complex<double>>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  double* x = reinterpret_cast<double*>(a.data());
  std::vector<double> tw(std::max<size_t>(n, 2));
  for (size_t len = 2; len <= n; len <<= 1) {
    const size_t half = len / 2;
    for (size_t j = 0; j < half; ++j) {
      const double ang = 2.0 * M_PI * static_cast<double>(j) / static_cast<double>(len);
      tw[2 * j] = std::cos(ang);
      tw[2 * j + 1] = inverse ? std::sin(ang) : -std::sin(ang);
    }
    for (size_t i = 0; i < n; i += len)
      for (size_t j = 0; j < half; ++j) {
        double* p = x + 2 * (i + j);
        double* q = x + 2 * (i + j + half);
        const double wr = tw[2 * j], wi = tw[2 * j + 1];
        const double vr = q[0] * wr - q[1] * wi, vi = q[0] * wi + q[1] * wr;
        const double ur = p[0], ui = p[1];
        p[0] = ur + vr;
        p[1] = ui + vi;
        q[0] = ur - vr;
        q[1] = ui - vi;
      }
  }
  if (inverse)
    for (auto& v : a) v /= static_cast<double>(n);
}

}  // namespace host
}  // namespace jff
