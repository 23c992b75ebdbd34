// CPU building blocks for the CPU handlers: a power-of-two complex FFT in double precision,
// the 16-bit float conversions, and a parallel-for over XLA's intra-op thread pool.
//
// The FFT never reorders its output. A convolution only multiplies spectra pointwise, so
// the forward transform may leave the spectrum in any fixed permutation (here: digit
// reversed) as long as every spectrum of one call uses the same one, and the inverse is
// the exact adjoint of the forward stages, which consumes that permutation and returns
// natural order. That removes the bit-reversal pass, the least cache-friendly part of an
// iterative FFT.
//
// Everything is double: fp32 results must stay within 1e-5 (rel-L2) of a float64
// reference up to N = 2^22, which single-precision FFTs of that size do not reliably meet.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/ffi_util.h"

namespace jff {
namespace cpu {

// ---------------------------------------------------------------------------------------
// 16-bit floats. Inputs are widened exactly; outputs are rounded once from double.
// ---------------------------------------------------------------------------------------

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline float Bf16ToFloat(uint16_t h) { return BitsFloat(static_cast<uint32_t>(h) << 16); }

// Round to nearest even; NaNs stay NaN (quieted) rather than rounding into infinity.
inline uint16_t FloatToBf16(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // Subnormal (or zero): man * 2^-24 is exact in float.
    const float mag = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -mag : mag;
  }
  if (exp == 31) return BitsFloat(sign | 0x7f800000u | (man << 13));
  return BitsFloat(sign | ((exp + 112u) << 23) | (man << 13));
}

// IEEE binary16, round to nearest even, including the subnormal range and overflow to inf.
inline uint16_t FloatToHalf(float f) {
  uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u);
  // 65520 is the midpoint between 65504 (largest half) and 2^16; ties go to the even
  // neighbour, which is infinity.
  if (x >= 0x477ff000u) return sign | 0x7c00u;
  if (x < 0x38800000u) {  // below 2^-14: a half subnormal, counted in units of 2^-24
    if (x <= 0x33000000u) return sign;  // <= 2^-25 rounds to zero (2^-25 is a tie to even 0)
    const uint32_t exp = x >> 23;
    const uint32_t man = (x & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - exp;  // 14..24
    uint32_t h = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u))) ++h;  // may carry into the smallest normal
    return sign | static_cast<uint16_t>(h);
  }
  uint32_t h = (x - 0x38000000u) >> 13;  // rebias the exponent 127 -> 15, keep 10 mantissa bits
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry bumps the exponent, as it should
  return sign | static_cast<uint16_t>(h);
}

// double -> float rounding to odd. Rounding the result once more to a format with at least
// two fewer significand bits (bf16, f16) then equals rounding the double directly, so a
// 16-bit output is rounded once, not twice.
inline float DoubleToFloatRoundOdd(double d) {
  float f = static_cast<float>(d);
  if (std::isnan(d)) return f;
  if (std::isinf(f) && !std::isinf(d)) return std::copysign(3.40282346638528859812e+38f, f);
  const double back = static_cast<double>(f);
  if (back == d) return f;
  uint32_t u = FloatBits(f);
  if ((u & 1u) == 0) {
    // f is the even neighbour; the odd one lies on d's side of f.
    const bool f_beyond_d = std::fabs(back) > std::fabs(d);
    if (f_beyond_d) {
      u -= 1;  // towards zero (magnitude bits; f != 0 here because d != 0)
    } else {
      u += 1;
    }
    f = BitsFloat(u);
  }
  return f;
}

// Load/store of one activation element by dtype; all arithmetic happens in double.
template <DType DT>
struct Elem;
template <>
struct Elem<DType::kF32> {
  using Storage = float;
  static double Load(const Storage* p, int64_t i) { return p[i]; }
  static void Store(Storage* p, int64_t i, double v) { p[i] = static_cast<float>(v); }
};
template <>
struct Elem<DType::kBF16> {
  using Storage = uint16_t;
  static double Load(const Storage* p, int64_t i) { return Bf16ToFloat(p[i]); }
  static void Store(Storage* p, int64_t i, double v) { p[i] = FloatToBf16(DoubleToFloatRoundOdd(v)); }
};
template <>
struct Elem<DType::kF16> {
  using Storage = uint16_t;
  static double Load(const Storage* p, int64_t i) { return HalfToFloat(p[i]); }
  static void Store(Storage* p, int64_t i, double v) { p[i] = FloatToHalf(DoubleToFloatRoundOdd(v)); }
};

// ---------------------------------------------------------------------------------------
// FFT
// ---------------------------------------------------------------------------------------

struct Cpx {
  double re, im;
};

// a *= b, written out: std::complex's operator* goes through __muldc3 (inf/NaN recovery)
// without -ffast-math, several times slower in the pointwise loops.
inline void MulInPlace(Cpx* a, const Cpx* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double re = a[i].re * b[i].re - a[i].im * b[i].im;
    const double im = a[i].re * b[i].im + a[i].im * b[i].re;
    a[i].re = re;
    a[i].im = im;
  }
}
// a *= conj(b)
inline void MulConjInPlace(Cpx* a, const Cpx* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double re = a[i].re * b[i].re + a[i].im * b[i].im;
    const double im = a[i].im * b[i].re - a[i].re * b[i].im;
    a[i].re = re;
    a[i].im = im;
  }
}
// acc += conj(a) * b
inline void AccumulateConjMul(Cpx* acc, const Cpx* a, const Cpx* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    acc[i].re += a[i].re * b[i].re + a[i].im * b[i].im;
    acc[i].im += a[i].re * b[i].im - a[i].im * b[i].re;
  }
}

// Complex FFT of a power-of-two size n. Forward() is a radix-4 decimation-in-frequency
// transform (one radix-2 stage last when log2(n) is odd) whose output is the DFT
// (sign -1) in a fixed permuted order. Adjoint() applies the conjugate transposes of the
// same stages in reverse order, so Adjoint(Forward(x)) = n * x and
// Adjoint(Forward(a) .* Forward(b)) = n * (a circularly convolved with b), in natural order.
// Read-only after construction: one plan is shared by all worker threads of a call.
class FftPlan {
 public:
  static constexpr int64_t kMaxSize = int64_t{1} << 24;

  // Throws std::bad_alloc when the twiddle table cannot be allocated.
  explicit FftPlan(int64_t n) : n_(n) {
    log2n_ = 0;
    while ((int64_t{1} << log2n_) < n) ++log2n_;
    offset_.assign(log2n_ + 1, -1);
    if (n < 8) return;  // stages of size 2 and 4 need no twiddles
    const Octant oct(n);
    int64_t total = 0;
    for (int64_t s = n; s >= 8; s /= 4) total += 3 * (s / 4);
    tw_.resize(total);
    int64_t pos = 0;
    // Stage s multiplies its output m (m = 1..3) by w_s^(m j) = W_n^(m j n/s), j < s/4.
    // Each stage gets its own contiguous table so the butterfly loop reads it linearly.
    for (int64_t s = n; s >= 8; s /= 4) {
      offset_[Log2(s)] = pos;
      const int64_t q = s / 4, stride = n / s;
      for (int64_t j = 0; j < q; ++j)
        for (int64_t m = 1; m <= 3; ++m) tw_[pos++] = oct.W(m * j * stride);
    }
  }

  int64_t size() const { return n_; }

  void Forward(Cpx* x) const {
    if (n_ >= 2) ForwardBlock(x, n_);
  }
  void Adjoint(Cpx* x) const {
    if (n_ >= 2) AdjointBlock(x, n_);
  }

 private:
  // Blocks up to this many points (256 KiB) run their remaining stages breadth-first, in
  // cache; larger ones recurse depth-first into their quarters after their own stage.
  static constexpr int64_t kInCacheBlock = int64_t{1} << 14;

  // exp(-2 pi i t / n) from cos/sin evaluated only on the first octant, so every twiddle
  // carries one rounding of an accurate sin/cos and the table costs n/8 evaluations.
  class Octant {
   public:
    explicit Octant(int64_t n) : n_(n), e_(n / 8), c_(e_ + 1), s_(e_ + 1) {
      constexpr double kTwoPi = 6.283185307179586476925286766559;
      const double step = kTwoPi / static_cast<double>(n);
      for (int64_t t = 0; t <= e_; ++t) {
        c_[t] = std::cos(step * static_cast<double>(t));
        s_[t] = std::sin(step * static_cast<double>(t));
      }
    }
    Cpx W(int64_t t) const {
      t %= n_;
      const int64_t quarter = n_ / 4;
      const int64_t quad = t / quarter, r = t % quarter;
      double c, s;  // cos and sin of 2 pi r / n, r in [0, n/4)
      if (r <= e_) {
        c = c_[r];
        s = s_[r];
      } else {
        c = s_[quarter - r];
        s = c_[quarter - r];
      }
      double cq, sq;  // rotate by quad * pi/2
      switch (quad) {
        case 0: cq = c; sq = s; break;
        case 1: cq = -s; sq = c; break;
        case 2: cq = -c; sq = -s; break;
        default: cq = s; sq = -c; break;
      }
      return Cpx{cq, -sq};
    }

   private:
    int64_t n_, e_;
    std::vector<double> c_, s_;
  };

  static int Log2(int64_t s) {
    int l = 0;
    while ((int64_t{1} << l) < s) ++l;
    return l;
  }

  // One radix-4 DIF stage of size s over every size-s block of [x, x + len).
  void Stage4Forward(Cpx* x, int64_t len, int64_t s) const {
    const int64_t q = s / 4;
    const Cpx* tw = s >= 8 ? tw_.data() + offset_[Log2(s)] : nullptr;
    for (int64_t b = 0; b < len; b += s) {
      Cpx* p = x + b;
      for (int64_t j = 0; j < q; ++j) {
        const Cpx a0 = p[j], a1 = p[j + q], a2 = p[j + 2 * q], a3 = p[j + 3 * q];
        const double t0r = a0.re + a2.re, t0i = a0.im + a2.im;
        const double t1r = a0.re - a2.re, t1i = a0.im - a2.im;
        const double t2r = a1.re + a3.re, t2i = a1.im + a3.im;
        // t3 = -i (a1 - a3)
        const double t3r = a1.im - a3.im, t3i = a3.re - a1.re;
        const double y0r = t0r + t2r, y0i = t0i + t2i;
        const double y1r = t1r + t3r, y1i = t1i + t3i;
        const double y2r = t0r - t2r, y2i = t0i - t2i;
        const double y3r = t1r - t3r, y3i = t1i - t3i;
        p[j] = Cpx{y0r, y0i};
        if (tw) {
          const Cpx w1 = tw[3 * j], w2 = tw[3 * j + 1], w3 = tw[3 * j + 2];
          p[j + q] = Cpx{y1r * w1.re - y1i * w1.im, y1r * w1.im + y1i * w1.re};
          p[j + 2 * q] = Cpx{y2r * w2.re - y2i * w2.im, y2r * w2.im + y2i * w2.re};
          p[j + 3 * q] = Cpx{y3r * w3.re - y3i * w3.im, y3r * w3.im + y3i * w3.re};
        } else {
          p[j + q] = Cpx{y1r, y1i};
          p[j + 2 * q] = Cpx{y2r, y2i};
          p[j + 3 * q] = Cpx{y3r, y3i};
        }
      }
    }
  }

  // Conjugate transpose of Stage4Forward.
  void Stage4Adjoint(Cpx* x, int64_t len, int64_t s) const {
    const int64_t q = s / 4;
    const Cpx* tw = s >= 8 ? tw_.data() + offset_[Log2(s)] : nullptr;
    for (int64_t b = 0; b < len; b += s) {
      Cpx* p = x + b;
      for (int64_t j = 0; j < q; ++j) {
        Cpx t0 = p[j], t1 = p[j + q], t2 = p[j + 2 * q], t3 = p[j + 3 * q];
        if (tw) {  // multiply by conj(w)
          const Cpx w1 = tw[3 * j], w2 = tw[3 * j + 1], w3 = tw[3 * j + 2];
          t1 = Cpx{t1.re * w1.re + t1.im * w1.im, t1.im * w1.re - t1.re * w1.im};
          t2 = Cpx{t2.re * w2.re + t2.im * w2.im, t2.im * w2.re - t2.re * w2.im};
          t3 = Cpx{t3.re * w3.re + t3.im * w3.im, t3.im * w3.re - t3.re * w3.im};
        }
        const double u0r = t0.re + t2.re, u0i = t0.im + t2.im;
        const double u1r = t0.re - t2.re, u1i = t0.im - t2.im;
        const double u2r = t1.re + t3.re, u2i = t1.im + t3.im;
        // u3 = +i (t1 - t3)
        const double u3r = t3.im - t1.im, u3i = t1.re - t3.re;
        p[j] = Cpx{u0r + u2r, u0i + u2i};
        p[j + q] = Cpx{u1r + u3r, u1i + u3i};
        p[j + 2 * q] = Cpx{u0r - u2r, u0i - u2i};
        p[j + 3 * q] = Cpx{u1r - u3r, u1i - u3i};
      }
    }
  }

  // The radix-2 stage of size 2 is its own adjoint.
  static void Stage2(Cpx* x, int64_t len) {
    for (int64_t b = 0; b < len; b += 2) {
      const Cpx a = x[b], c = x[b + 1];
      x[b] = Cpx{a.re + c.re, a.im + c.im};
      x[b + 1] = Cpx{a.re - c.re, a.im - c.im};
    }
  }

  // All stages of sizes s, s/4, ... on one block of s points.
  void ForwardBlock(Cpx* x, int64_t s) const {
    if (s > kInCacheBlock) {
      Stage4Forward(x, s, s);
      const int64_t q = s / 4;
      for (int m = 0; m < 4; ++m) ForwardBlock(x + m * q, q);
      return;
    }
    int64_t st = s;
    for (; st >= 4; st /= 4) Stage4Forward(x, s, st);
    if (st == 2) Stage2(x, s);
  }

  void AdjointBlock(Cpx* x, int64_t s) const {
    if (s > kInCacheBlock) {
      const int64_t q = s / 4;
      for (int m = 0; m < 4; ++m) AdjointBlock(x + m * q, q);
      Stage4Adjoint(x, s, s);
      return;
    }
    int64_t st = (Log2(s) % 2) ? 2 : 1;
    if (st == 2) Stage2(x, s);
    for (st *= 4; st <= s; st *= 4) Stage4Adjoint(x, s, st);
  }

  int64_t n_;
  int log2n_;
  std::vector<Cpx> tw_;
  std::vector<int64_t> offset_;  // start of stage s's table in tw_, by log2(s)
};

// ---------------------------------------------------------------------------------------
// Parallel-for on XLA's intra-op thread pool.
// ---------------------------------------------------------------------------------------
//
// Runs body(item, scratch) for every item in [0, n) on up to `workers` threads: the caller
// and workers-1 pool tasks, each with its own default-constructed Scratch that lives for
// that thread's share of the items (so buffers are allocated once per thread, not per item).
// Items are claimed from an atomic counter. The caller works too and then waits only for
// items already claimed, never for a task to start, so a saturated pool cannot deadlock it;
// a task that starts after the call returned finds no item left and touches nothing but the
// shared counter it co-owns. Results must not depend on which thread ran an item: callers
// give each item its own outputs and do every reduction inside one item, in a fixed order.
// Returns an empty string, or the message of the first exception a body threw.
namespace detail {
struct ForState {
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  int64_t n = 0;
  std::mutex mu;
  std::condition_variable cv;
  int64_t done = 0;    // guarded by mu
  std::string error;   // guarded by mu
};
}  // namespace detail

template <typename Scratch, typename Body>
std::string ParallelFor(ffi::ThreadPool& pool, int64_t n, int64_t workers, const Body& body) {
  if (n <= 0) return std::string();
  auto state = std::make_shared<detail::ForState>();
  state->n = n;
  const Body* body_ptr = &body;
  auto work = [state, body_ptr]() {
    Scratch scratch;
    for (;;) {
      const int64_t i = state->next.fetch_add(1);
      if (i >= state->n) break;
      if (!state->failed.load(std::memory_order_relaxed)) {
        try {
          (*body_ptr)(i, scratch);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(state->mu);
          if (!state->failed.exchange(true)) state->error = e.what();
        } catch (...) {
          std::lock_guard<std::mutex> lock(state->mu);
          if (!state->failed.exchange(true)) state->error = "unknown exception";
        }
      }
      std::lock_guard<std::mutex> lock(state->mu);
      if (++state->done == state->n) state->cv.notify_all();
    }
  };
  workers = std::max<int64_t>(1, std::min(workers, n));
  for (int64_t w = 1; w < workers; ++w) pool.Schedule([work]() { work(); });
  work();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done == state->n; });
  return state->error;
}

// How many threads to use for a job of `items` independent items costing about `work`
// flops in total and `scratch_bytes` per thread: one thread for small jobs (scheduling
// costs more than it saves) and never more scratch than about 2 GiB in all.
inline int64_t ChooseWorkers(ffi::ThreadPool& pool, int64_t items, double work,
                             int64_t scratch_bytes) {
  constexpr double kMinWorkPerThread = 2e5;
  constexpr int64_t kScratchBudget = int64_t{2} << 30;
  int64_t w = pool.num_threads();
  if (w <= 1 || items <= 1 || work < 2 * kMinWorkPerThread) return 1;
  w = std::min<int64_t>(w, items);
  w = std::min<int64_t>(w, static_cast<int64_t>(work / kMinWorkPerThread));
  if (scratch_bytes > 0) w = std::min<int64_t>(w, std::max<int64_t>(1, kScratchBudget / scratch_bytes));
  return std::max<int64_t>(1, w);
}

}  // namespace cpu
}  // namespace jff
