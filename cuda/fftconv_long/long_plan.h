// Index maps of the long fftconv (N = 64K .. 16M): one four-step level N = N1 * N2 around the
// fused <= 32K kernel. Plain C++ usable on host and device, so the kernels, the self-test's
// float64 inner step and the g++ math test (long_math_test.cc) share one definition.
// The math is in benchmarks/notes_long.md; the short version:
//
//   n = N2*n1 + n2 (n1 < N1 strided, n2 < N2 contiguous), f = k1 + N1*k2.
//   C[k1][n2] = N1^-1/2 sum_n1 v[N2 n1 + n2] w_N1^(k1 n1)          (outer forward, real input)
//   P[k1][n2] = C[k1][n2] w_N^(k1 n2)         1 <= k1 < N1/2          (twiddled rows)
//   P[0][n2]  = C[0][n2] + i C[N1/2][n2]      (both real: one packed row, no twiddle)
// Rows N1/2 < k1 < N1 are never formed: C[N1-k1] = conj(C[k1]) because v is real.
// The intermediate ("workspace") holds N1/2 complex rows of N2 per signal row: exactly N reals.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define JFF_HD __host__ __device__ __forceinline__
#else
#define JFF_HD inline
#endif

namespace jff {
namespace longconv {

constexpr int kMinN1 = 2, kMaxN1 = 512;
constexpr int64_t kMaxN2 = 32768;  // the largest fused (inner) size

JFF_HD constexpr bool is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

JFF_HD constexpr int ilog2(int64_t x) {
  int l = 0;
  while ((int64_t{1} << l) < x) ++l;
  return l;
}

// Default split of a long N into outer N1 x inner N2 (0 when N is not a long size). The inner
// size stays small where possible because the fused kernel is fastest per element at 4K-8K
// (notes_monarch.md v4: 4K 2.1x, 8K 2.4x, 16K 3.3x, 32K 3.7x of its floor) and the outer size
// stays in the tensor-core set {16, 32, 256, 512}. Tunable; see notes_long.md "open questions".
JFF_HD constexpr int default_n1(int64_t N) {
  switch (N) {
    case int64_t{1} << 16: return 16;   // 16 x 4K
    case int64_t{1} << 17: return 32;   // 32 x 4K
    case int64_t{1} << 18: return 32;   // 32 x 8K
    case int64_t{1} << 19: return 32;   // 32 x 16K
    case int64_t{1} << 20: return 256;  // 256 x 4K
    case int64_t{1} << 21: return 512;  // 512 x 4K
    case int64_t{1} << 22: return 512;  // 512 x 8K
    case int64_t{1} << 23: return 512;  // 512 x 16K
    case int64_t{1} << 24: return 512;  // 512 x 32K
    default: return 0;
  }
}

// Floats per filter of the prepared filter spectrum K' (jff_fftconv_filter_spectrum's last axis): the
// N1/2 + 1 slices of N2 complex values the inner step reads (inner_pass.cuh), in float32, or for bfloat16 data
// in bfloat16 (CUDA: kspec_bf16; the CPU keeps k rounded to bfloat16), two to a float; 0 when N is not a long size.
JFF_HD constexpr int64_t prepared_spectrum_floats(int64_t N, bool bf16_data) {
  return default_n1(N) == 0 ? 0 : int64_t{default_n1(N) / 2 + 1} * (N / default_n1(N)) * (bf16_data ? 1 : 2);
}

// Workspace element offset of (signal row r, packed row k1 < N1/2, plane 0 = re / 1 = im,
// column n2): each (r, k1) is one contiguous complex row of N2 stored as two planes, so the
// inner kernel reads a row with the same 16-byte plane loads as the fused kernel, and the
// outer passes write T contiguous columns of each row (full 32-byte sectors at T >= 16).
JFF_HD int64_t ws_offset(int64_t r, int k1, int plane, int64_t n2, int N1, int64_t N2) {
  return ((r * (N1 / 2) + k1) * 2 + plane) * N2 + n2;
}

// Exponent e of the outer twiddle w_N^e for row k1, column n2: e = k1 * n2 < N/2 <= 2^23, so
// it is exact in int32 and in float (sincospif(-2e/N) then has one rounding).
JFF_HD int64_t twiddle_exp(int k1, int64_t n2) { return static_cast<int64_t>(k1) * n2; }

// Hermitian partner of spectrum row k1 in the four-step order: for real v,
// xhat[N - f] = conj(xhat[f]) with f = k1 + N1 k2, so (k1, k2) pairs with
// (N1 - k1, N2 - 1 - k2) for 1 <= k1 < N1, and row 0 / row N1/2 pair with themselves:
// (0, k2) <-> (0, (N2 - k2) mod N2), (N1/2, k2) <-> (N1/2, N2 - 1 - k2).
JFF_HD void spectrum_partner(int k1, int64_t k2, int N1, int64_t N2, int* pk1, int64_t* pk2) {
  if (k1 == 0) {
    *pk1 = 0;
    *pk2 = (N2 - k2) % N2;
  } else {
    *pk1 = N1 - k1;
    *pk2 = N2 - 1 - k2;
  }
}

// Filter group of batch index b (cuda/README.md: rows_per_group R, G groups).
JFF_HD int64_t group_of(int64_t b, int64_t R, int64_t G) { return (b / R) % G; }

// Two-level outer DFT of the tensor-core path: N1 = P * Q with P = 16 (Q = N1 / 16 = 16 or 32),
// n1 = Q p + q, k1 = kp + P kq. Single level (N1 = 16, 32): P = N1, Q = 1.
JFF_HD constexpr int tc_p(int N1) { return N1 <= 32 ? N1 : 16; }
JFF_HD constexpr int tc_q(int N1) { return N1 <= 32 ? 1 : N1 / 16; }
JFF_HD constexpr bool tc_supported_n1(int N1) { return N1 == 16 || N1 == 32 || N1 == 256 || N1 == 512; }


// Real-input half-length trick of the CUDA-core path (M = N1/2): with Z = DFT_M(x[2m] + i x[2m+1])
// and Zc = Z[(M - k) mod M], the real signal's spectrum at 0 <= k <= M is
//   X[k] = (Z[k] + conj Zc)/2 + w_N1^k (Z[k] - conj Zc)/(2i).
// (zr, zi) = Z[k], (cr, ci) = Zc, (wr, wi) = w_N1^k.
template <typename R>
JFF_HD void r2c_split(R zr, R zi, R cr, R ci, R wr, R wi, R* xr, R* xi) {
  const R er = R(0.5) * (zr + cr), ei = R(0.5) * (zi - ci);
  const R orr = R(0.5) * (zi + ci), oi = R(-0.5) * (zr - cr);
  *xr = er + (wr * orr - wi * oi);
  *xi = ei + (wr * oi + wi * orr);
}

// Its inverse: from the half spectrum X[k], Xc = X[M - k] (0 <= k < M) and (wr, wi) = w_N1^-k,
//   Z[k] = (X[k] + conj Xc)/2 + i w_N1^-k (X[k] - conj Xc)/2,
// whose M-point inverse DFT (normalised 1/M) is x[2m] + i x[2m+1] for x = IDFT_N1(X) (1/N1).
template <typename R>
JFF_HD void c2r_merge(R xr, R xi, R cr, R ci, R wr, R wi, R* zr, R* zi) {
  const R er = R(0.5) * (xr + cr), ei = R(0.5) * (xi - ci);
  const R dr = R(0.5) * (xr - cr), di = R(0.5) * (xi + ci);
  const R orr = wr * dr - wi * di, oi = wr * di + wi * dr;  // w^-k (X - conj Xc)/2
  *zr = er - oi;                                           // + i * o
  *zi = ei + orr;
}

// Row 0's two real signals of two batch rows in one transform (inner items 0 and M1): the workspace's row 0 packs
// C[0] + i C[N1/2] of one signal row, two real signals that each took a whole complex transform with a zero imaginary
// part (M1 + 1 transforms per signal row: +12.5% inner work at N1 = 16). Both of their convolutions (cyclic with a
// real filter; negacyclic, i.e. twisted, cyclic, untwisted, with a real filter) map real signals to real ones, so
// batch rows b and b + 1 of one channel (one filter) go in as the real and the imaginary part of one transform and
// come out the same way: M1 transforms per signal row. dk's spectrum then adds conj(Xv) Xg of the pair, whose cross
// terms transform to purely imaginary values after the untwist, which dk's inverse drops with the imaginary part
// (inner_pass.cuh item_store). JFF_LONG_PAIR_ROWS=0 keeps one row per transform (A/B runs).
#ifndef JFF_LONG_PAIR_ROWS
#define JFF_LONG_PAIR_ROWS 1
#endif

// Whether the inner step may pair batch rows b, b + 1 (ws rows r, r + H) for rows row0 .. row0 + nrows - 1: whole
// batch entries, and every pair inside one filter group (group_of: G = 1, or runs of even R starting at even b).
JFF_HD bool pairable_rows(int64_t row0, int64_t nrows, int64_t H, int64_t G, int64_t R) {
  if (!JFF_LONG_PAIR_ROWS || nrows % H != 0 || row0 % H != 0) return false;
  return G == 1 || (R % 2 == 0 && (row0 / H) % 2 == 0);
}

// Inner-step work item -> (workspace row r, item j, partner row r2 or -1; inner_pass.cuh). With nrows = nb * H
// (whole batch entries), the batch rows of one channel and item follow each other:
//   channel h: item 0's units, items 1 .. M1 - 1 (nb each, b fastest), item M1's units; r = b * H + h,
// where item 0's and M1's units are single rows, or pairs (b, b + 1) when `pair` (r2 = r + H; the last of an odd
// nb alone). The CTAs that multiply by one filter slice of K' then run together and all but the first read it from
// L2; in row-major order each batch row re-read all of K' from DRAM (64K at B = 16: 3.6 GB of K' for 3.2 GB of
// workspace traffic). nb = 0 (rows not whole batch entries): row-major (r = item / (M1 + 1)), no pairs.
struct ItemOrder {
  int64_t nb, H;
  int M1;
  bool pair;
  static JFF_HD ItemOrder make(int64_t nrows, int64_t H, int N1, bool pair = false) {
    const int64_t nb = nrows % H == 0 ? nrows / H : 0;
    return {nb, H, N1 / 2, pair && nb > 0};
  }
  // Units of item 0 (and of item M1) per channel.
  JFF_HD int64_t special_units() const { return pair ? (nb + 1) / 2 : nb; }
  // Work items in all (nrows as given to make).
  JFF_HD int64_t count(int64_t nrows) const {
    return nb == 0 ? nrows * (M1 + 1) : H * ((M1 - 1) * nb + 2 * special_units());
  }
  JFF_HD void operator()(int64_t item, int64_t* r, int* j, int64_t* r2) const {
    *r2 = -1;
    if (nb == 0) {
      *r = item / (M1 + 1);
      *j = static_cast<int>(item - *r * (M1 + 1));
      return;
    }
    const int64_t ns = special_units(), per = (M1 - 1) * nb + 2 * ns, h = item / per;
    int64_t q = item - h * per, b;
    bool special = true;
    if (q < ns) {
      *j = 0;
      b = q;
    } else if ((q -= ns) < (M1 - 1) * nb) {
      *j = 1 + static_cast<int>(q / nb);
      b = q % nb;
      special = false;
    } else {
      *j = M1;
      b = q - (M1 - 1) * nb;
    }
    if (special && pair) {
      b *= 2;
      if (b + 1 < nb) *r2 = (b + 1) * H + h;
    }
    *r = b * H + h;
  }
};

}  // namespace longconv
}  // namespace jff
