// Float64 check (plain g++, no GPU) of the long fftconv's math and index maps as written in
// benchmarks/notes_long.md and long_plan.h:
//   1. the spectrum of each packed workspace row is the stated slice of xhat (k1 >= 1: row k1;
//      row 0: two real signals for the slices k1 = 0 and k1 = N1/2, the latter with w_2N2);
//   2. the Hermitian relations: row N1-k1 = w_N2^n2 conj(row k1) and spectrum_partner();
//   3. outer forward -> inner step -> outer inverse == the circular convolution
//      irfft(rfft(v, N) * (rfft(k, N) + skip), N)[:L] (any L <= N, Lk <= N);
//   4. the half-length real/complex tricks (r2c_split / c2r_merge) the CUDA-core kernels use;
//   5. the inner step's work-item order (ItemOrder): a bijection whose runs share one filter slice.
//
//   g++ -std=c++17 -O2 -Icuda -o /tmp/long_math_test cuda/fftconv_long/long_math_test.cc
//   /tmp/long_math_test            (exit status 0 when every line says PASS; `make emulate` runs it)
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "fftconv_long/host_inner.h"
#include "fftconv_long/long_plan.h"

namespace {

using namespace jff::longconv;
using host::cd;

int g_fail = 0;

void report(const char* what, int N1, int64_t N2, double err, double tol) {
  const bool ok = err <= tol;
  if (!ok) ++g_fail;
  std::printf("%s %-34s N1=%3d N2=%5lld err=%.2e (tol %.0e)\n", ok ? "PASS" : "FAIL", what, N1,
              static_cast<long long>(N2), err, tol);
}

double rel_l2(const std::vector<cd>& a, const std::vector<cd>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += std::norm(a[i] - b[i]);
    den += std::norm(b[i]);
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

void check_case(int N1, int64_t N2, int64_t L, int64_t Lk, std::mt19937_64& rng) {
  const int64_t N = N1 * N2;
  std::uniform_real_distribution<double> U(-1, 1);
  std::vector<double> v(N, 0.0), k(Lk);
  for (int64_t t = 0; t < L; ++t) v[t] = U(rng);
  for (auto& x : k) x = U(rng);
  const double skip = U(rng);

  std::vector<cd> vh(v.begin(), v.end());
  jff::host::Fft(vh, false);
  const double isn = 1.0 / std::sqrt(static_cast<double>(N));

  // 1. Spectrum slices of the packed rows.
  std::vector<cd> P = host::outer_forward(v, N1, N2);
  {
    std::vector<cd> got, want;
    std::vector<cd> y(N2), a(N2), b(N2);
    for (int k1 = 1; k1 < N1 / 2; ++k1) {
      for (int64_t n2 = 0; n2 < N2; ++n2) y[n2] = P[k1 * N2 + n2];
      host::unitary_fft(y, false);
      for (int64_t k2 = 0; k2 < N2; ++k2) {
        got.push_back(y[k2]);
        want.push_back(vh[k1 + N1 * k2] * isn);
      }
    }
    for (int64_t n2 = 0; n2 < N2; ++n2) {
      a[n2] = P[n2].real();
      b[n2] = P[n2].imag() * host::wpow(n2, 2 * N2);
    }
    host::unitary_fft(a, false);
    host::unitary_fft(b, false);
    for (int64_t k2 = 0; k2 < N2; ++k2) {
      got.push_back(a[k2]);
      want.push_back(vh[N1 * k2] * isn);
      got.push_back(b[k2]);
      want.push_back(vh[N1 / 2 + N1 * k2] * isn);
    }
    report("spectrum slices of packed rows", N1, N2, rel_l2(got, want), 1e-12);
  }

  // 2. Hermitian relations. Full twiddled rows c[k1] for all k1, then
  //    c[N1 - k1][n2] = w_N2^n2 conj(c[k1][n2]) and xhat at spectrum_partner() = conj.
  {
    std::vector<cd> got, want, col(N1);
    for (int64_t n2 = 0; n2 < N2; ++n2) {
      for (int n1 = 0; n1 < N1; ++n1) col[n1] = v[N2 * n1 + n2];
      host::unitary_fft(col, false);
      for (int k1 = 1; k1 < N1; ++k1) {
        const cd c = col[k1] * host::wpow(twiddle_exp(k1, n2), N);
        const cd cp = col[N1 - k1] * host::wpow(twiddle_exp(N1 - k1, n2), N);
        got.push_back(cp);
        want.push_back(host::wpow(n2, N2) * std::conj(c));
      }
    }
    for (int k1 = 0; k1 < N1; ++k1)
      for (int64_t k2 = 0; k2 < N2; ++k2) {
        int pk1;
        int64_t pk2;
        spectrum_partner(k1, k2, N1, N2, &pk1, &pk2);
        got.push_back(vh[pk1 + N1 * pk2]);
        want.push_back(std::conj(vh[k1 + N1 * k2]));
      }
    report("row/partner conjugate relations", N1, N2, rel_l2(got, want), 1e-12);
  }

  // 3. End to end.
  {
    std::vector<cd> kh = host::filter_spectrum(k.data(), Lk, skip, N);
    std::vector<cd> ref(N);
    for (int64_t f = 0; f < N; ++f) ref[f] = vh[f] * kh[f];
    jff::host::Fft(ref, true);
    host::inner_step(P, kh, N1, N2);
    std::vector<double> z = host::outer_inverse(P, N1, N2);
    std::vector<cd> got(z.begin(), z.begin() + L), want(ref.begin(), ref.begin() + L);
    // The direct definition for one output (independent of every FFT above).
    const int64_t t = L - 1;
    double direct = skip * v[t];
    for (int64_t j = 0; j < Lk; ++j) direct += k[j] * v[((t - j) % N + N) % N];
    got.push_back(z[t]);
    want.push_back(direct);
    report("outer fwd -> inner -> outer inv", N1, N2, rel_l2(got, want), 1e-12);
  }

  // 4. Half-length tricks on each column (as the CUDA-core kernels do them, float64 here).
  {
    const int M = N1 / 2;
    std::vector<cd> got, want, col(N1), z(M), X(N1);
    for (int64_t n2 = 0; n2 < N2; ++n2) {
      for (int n1 = 0; n1 < N1; ++n1) col[n1] = v[N2 * n1 + n2];
      std::vector<cd> ref = col;
      jff::host::Fft(ref, false);
      for (int m = 0; m < M; ++m) z[m] = cd(col[2 * m].real(), col[2 * m + 1].real());
      jff::host::Fft(z, false);
      for (int kk = 0; kk <= M; ++kk) {
        const cd Z = z[kk % M], Zc = z[(M - kk) % M], w = host::wpow(kk, N1);
        double xr, xi;
        r2c_split(Z.real(), Z.imag(), Zc.real(), Zc.imag(), w.real(), w.imag(), &xr, &xi);
        got.push_back(cd(xr, xi));
        want.push_back(ref[kk]);
        X[kk] = cd(xr, xi);
      }
      // Back: X[0..M] -> z -> x.
      for (int kk = 0; kk < M; ++kk) {
        const cd Xc = X[M - kk], w = std::conj(host::wpow(kk, N1));
        double zr, zi;
        c2r_merge(X[kk].real(), X[kk].imag(), Xc.real(), Xc.imag(), w.real(), w.imag(), &zr, &zi);
        z[kk] = cd(zr, zi);
      }
      jff::host::Fft(z, true);  // 1/M
      for (int m = 0; m < M; ++m) {
        // x = IDFT_N1(X) = the column itself (X is its unnormalised DFT)
        got.push_back(cd(z[m].real(), 0));
        want.push_back(col[2 * m]);
        got.push_back(cd(z[m].imag(), 0));
        want.push_back(col[2 * m + 1]);
      }
    }
    report("r2c_split / c2r_merge", N1, N2, rel_l2(got, want), 1e-12);
  }
}

}  // namespace

int main() {
  std::mt19937_64 rng(20261201);
  // Index-map sanity: the workspace offsets tile [0, rows * N) exactly once.
  {
    const int N1 = 8;
    const int64_t N2 = 16, rows = 3;
    std::vector<int> hit(rows * N1 * N2, 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int k1 = 0; k1 < N1 / 2; ++k1)
        for (int pl = 0; pl < 2; ++pl)
          for (int64_t n2 = 0; n2 < N2; ++n2) ++hit[ws_offset(r, k1, pl, n2, N1, N2)];
    bool ok = true;
    for (int h : hit) ok = ok && h == 1;
    if (!ok) ++g_fail;
    std::printf("%s workspace offsets are a bijection onto rows*N\n", ok ? "PASS" : "FAIL");
    bool plan_ok = true;
    for (int lg = 16; lg <= 24; ++lg) {
      const int64_t N = int64_t{1} << lg;
      const int n1 = default_n1(N);
      plan_ok = plan_ok && tc_supported_n1(n1) && N / n1 <= kMaxN2 && N / n1 >= 256;
    }
    if (!plan_ok) ++g_fail;
    std::printf("%s default split: N1 in the tensor-core set, N2 a fused size, for 64K..16M\n",
                plan_ok ? "PASS" : "FAIL");
  }
  // The inner step's work-item order: a bijection onto (row, item) pairs, where a paired unit covers its rows r and
  // r2 = r + H (same channel, next batch entry); with whole batch entries (nrows = nb * H) each item's units of one
  // channel follow each other, i.e. share one K' slice.
  {
    bool ok = true;
    for (bool pair : {false, true})
      for (int N1 : {2, 16, 512})
        for (int64_t H : {1, 3, 8})
          for (int64_t nrows : {H, 2 * H, 5 * H, 5 * H + 1, int64_t{7}}) {
            const ItemOrder order = ItemOrder::make(nrows, H, N1, pair);
            const int M1 = N1 / 2;
            const int64_t items = order.count(nrows);
            ok = ok && (order.nb > 0) == (nrows % H == 0) && order.pair == (pair && order.nb > 0);
            std::vector<int> hit(nrows * (M1 + 1), 0);
            int64_t prev_key = -1;  // (channel, item) of the previous unit: non-decreasing
            for (int64_t it = 0; it < items; ++it) {
              int64_t r, r2;
              int j;
              order(it, &r, &j, &r2);
              if (r < 0 || r >= nrows || j < 0 || j > M1 || r2 >= nrows) {
                ok = false;
                continue;
              }
              ++hit[r * (M1 + 1) + j];
              const bool special = j == 0 || j == M1;
              if (r2 >= 0) {
                ok = ok && order.pair && special && r2 == r + H && (r / H) % 2 == 0;
                ++hit[r2 * (M1 + 1) + j];
              } else if (order.pair && special) {
                ok = ok && r / H == order.nb - 1 && order.nb % 2 == 1;  // only an odd nb's last entry is alone
              }
              if (order.nb > 0) {
                const int64_t key = (r % H) * (M1 + 1) + j;
                ok = ok && key >= prev_key;
                prev_key = key;
              }
            }
            for (int h : hit) ok = ok && h == 1;
          }
    if (!ok) ++g_fail;
    std::printf("%s inner item order: a bijection (pairs included); a channel's units of one item run together\n",
                ok ? "PASS" : "FAIL");
    // Pairs only inside one filter group.
    bool pok = true;
    for (int64_t G : {1, 2, 3})
      for (int64_t R : {1, 2, 3, 4})
        for (int64_t b0 : {0, 1, 2, 4})
          for (int64_t nb : {1, 2, 5, 6}) {
            const int64_t H = 3;
            if (!pairable_rows(b0 * H, nb * H, H, G, R)) continue;
            for (int64_t b = b0; b + 1 < b0 + nb; b += 2) pok = pok && group_of(b, R, G) == group_of(b + 1, R, G);
          }
    pok = pok && !pairable_rows(0, 5, 3, 1, 1) && !pairable_rows(1, 3, 3, 1, 1);  // not whole batch entries
    if (!pok) ++g_fail;
    std::printf("%s paired rows share their filter group\n", pok ? "PASS" : "FAIL");
  }
  for (int N1 = 2; N1 <= 512; N1 *= 2) {
    for (int64_t N2 : {16, 64, 256}) {
      if (N1 * N2 > (int64_t{1} << 17)) continue;
      const int64_t N = N1 * N2;
      check_case(N1, N2, N, N, rng);                 // full length, full filter (circular)
      check_case(N1, N2, N / 2 + 3, N / 2 - 1, rng);  // causal-style padding, odd L
      check_case(N1, N2, 1 + N / 3, 7, rng);          // short filter, L not a multiple of N2
    }
  }
  std::printf(g_fail ? "FAILED: %d\n" : "ALL PASS\n", g_fail);
  return g_fail ? 1 : 0;
}
