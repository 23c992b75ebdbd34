// Float64 host model of the long fftconv's three steps on one signal row, in the workspace's
// packed row format (long_plan.h): the outer forward and inverse (the reference the CUDA outer
// passes are checked against) and the inner step (what the fused inner kernel will compute;
// the self-test runs it on the host between the two device passes). Plain C++, no CUDA.
#pragma once

#include <cmath>
#include <complex>
#include <cstdint>
#include <vector>

#include "common/host_fft.h"
#include "fftconv_long/long_plan.h"

namespace jff {
namespace longconv {
namespace host {

using cd = std::complex<double>;

inline cd wpow(int64_t e, int64_t n) {  // w_n^e = exp(-2 pi i e / n), e reduced first for accuracy
  e %= n;
  if (e < 0) e += n;
  const double a = -2.0 * M_PI * static_cast<double>(e) / static_cast<double>(n);
  return cd(std::cos(a), std::sin(a));
}

// Unitary N-point DFT (sign -1) or its inverse (sign +1) in place.
inline void unitary_fft(std::vector<cd>& a, bool inverse) {
  jff::host::Fft(a, inverse);
  const double s = inverse ? std::sqrt(static_cast<double>(a.size())) : 1.0 / std::sqrt(static_cast<double>(a.size()));
  for (auto& x : a) x *= s;
}

// Outer forward of one real row v (length N, already zero beyond L): packed rows P (N1/2 x N2,
// row-major [k1][n2]).
inline std::vector<cd> outer_forward(const std::vector<double>& v, int N1, int64_t N2) {
  const int64_t N = static_cast<int64_t>(N1) * N2;
  std::vector<cd> P(static_cast<size_t>(N / 2));
  std::vector<cd> col(N1);
  for (int64_t n2 = 0; n2 < N2; ++n2) {
    for (int n1 = 0; n1 < N1; ++n1) col[n1] = v[N2 * n1 + n2];
    unitary_fft(col, false);
    P[n2] = cd(col[0].real(), col[N1 / 2].real());
    for (int k1 = 1; k1 < N1 / 2; ++k1) P[k1 * N2 + n2] = col[k1] * wpow(twiddle_exp(k1, n2), N);
  }
  return P;
}

// Outer inverse: packed rows Q (the inner step's output) -> real row z (length N).
inline std::vector<double> outer_inverse(const std::vector<cd>& Q, int N1, int64_t N2) {
  const int64_t N = static_cast<int64_t>(N1) * N2;
  std::vector<double> z(static_cast<size_t>(N));
  std::vector<cd> col(N1);
  for (int64_t n2 = 0; n2 < N2; ++n2) {
    col[0] = Q[n2].real();
    col[N1 / 2] = Q[n2].imag();
    for (int k1 = 1; k1 < N1 / 2; ++k1) {
      const cd e = Q[k1 * N2 + n2] * std::conj(wpow(twiddle_exp(k1, n2), N));
      col[k1] = e;
      col[N1 - k1] = std::conj(e);  // z is real: E[N1 - k1] = conj(E[k1])
    }
    unitary_fft(col, true);
    for (int n1 = 0; n1 < N1; ++n1) z[N2 * n1 + n2] = col[n1].real();
  }
  return z;
}

// Inner step on the packed rows of one signal row, in place. khat: the full N-point DFT of the
// filter row (unnormalised, skip already added to every bin when the skip is folded).
//   rows 1 <= k1 < N1/2: unitary DFT_N2, times khat[k1 + N1 k2], unitary inverse;
//   row 0 holds two real signals: a = Re (spectrum row 0, filter khat[N1 k2]) and
//   b = Im (spectrum row N1/2: the twiddle w_N^(N1/2 n2) = w_2N2^n2 applied here, filter
//   khat[N1/2 + N1 k2], conjugate twiddle after); both results are real and go back packed.
inline void inner_step(std::vector<cd>& rows, const std::vector<cd>& khat, int N1, int64_t N2) {
  std::vector<cd> y(static_cast<size_t>(N2));
  for (int k1 = 1; k1 < N1 / 2; ++k1) {
    for (int64_t n2 = 0; n2 < N2; ++n2) y[n2] = rows[k1 * N2 + n2];
    unitary_fft(y, false);
    for (int64_t k2 = 0; k2 < N2; ++k2) y[k2] *= khat[k1 + N1 * k2];
    unitary_fft(y, true);
    for (int64_t n2 = 0; n2 < N2; ++n2) rows[k1 * N2 + n2] = y[n2];
  }
  std::vector<cd> a(static_cast<size_t>(N2)), b(static_cast<size_t>(N2));
  for (int64_t n2 = 0; n2 < N2; ++n2) {
    a[n2] = rows[n2].real();
    b[n2] = rows[n2].imag() * wpow(n2, 2 * N2);
  }
  unitary_fft(a, false);
  unitary_fft(b, false);
  for (int64_t k2 = 0; k2 < N2; ++k2) {
    a[k2] *= khat[N1 * k2];
    b[k2] *= khat[N1 / 2 + N1 * k2];
  }
  unitary_fft(a, true);
  unitary_fft(b, true);
  for (int64_t n2 = 0; n2 < N2; ++n2) rows[n2] = cd(a[n2].real(), (b[n2] * std::conj(wpow(n2, 2 * N2))).real());
}

// khat = DFT_N(k zero-padded) + skip (the skip term skip*v is a circular convolution with
// skip*delta, so it is one more constant in every bin).
inline std::vector<cd> filter_spectrum(const double* k, int64_t Lk, double skip, int64_t N) {
  std::vector<cd> kh(static_cast<size_t>(N), cd(0, 0));
  for (int64_t j = 0; j < Lk; ++j) kh[j] = k[j];
  jff::host::Fft(kh, false);
  for (auto& x : kh) x += skip;
  return kh;
}

}  // namespace host
}  // namespace longconv
}  // namespace jff
