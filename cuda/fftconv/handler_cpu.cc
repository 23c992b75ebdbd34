// CPU handlers of jff_fftconv_fwd / jff_fftconv_bwd / jff_fftconv_filter_spectrum (contract: cuda/README.md).
//
// Work is split by (filter group g, channel h): one item computes k[g, h]'s spectrum once
// and then walks every batch row of group g in ascending order, so dk and dskip are reduced
// inside one item in a fixed order and the result does not depend on the thread count.
//
// Two real rows share one complex FFT: with p = v1 + i v2 and a real filter k,
// conv(p, k) = conv(v1, k) + i conv(v2, k), so the real and imaginary parts of one
// complex transform are the two rows' results (the same holds for the correlation with k
// in the backward). For dk, conj(P) * Q with q = dz1 + i dz2 transforms back to
// (corr(dz1, v1) + corr(dz2, v2)) + i (cross terms): its real part is exactly the sum the
// two rows contribute, so dk accumulates in the frequency domain with one inverse per item.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <cmath>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/ffi_util.h"
#include "fftconv/cpu_fft.h"
#include "fftconv/fftconv_args.h"
#include "fftconv/validate.h"
#include "xla/ffi/api/ffi.h"

namespace jff {
namespace {

using cpu::Cpx;
using cpu::Elem;
using cpu::FftPlan;

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------

// Element (b, h, t) of an activation tensor is at RowBase(b, h) + t * RowStride().
struct RowAddressing {
  int64_t H, L, stride;
  bool bhl;
  explicit RowAddressing(const FftconvDims& d)
      : H(d.H), L(d.L), stride(d.layout == kBHL ? 1 : d.H), bhl(d.layout == kBHL) {}
  int64_t Base(int64_t b, int64_t h) const { return bhl ? (b * H + h) * L : b * L * H + h; }
};

// Calls f(b1, b2) for the batch rows of group g in ascending order, two at a time;
// b2 = -1 when a group has an odd number of rows.
template <typename F>
void ForEachRowPair(const FftconvDims& d, int64_t g, F f) {
  int64_t pending = -1;
  for (int64_t b = 0; b < d.B; ++b) {
    if ((b / d.R) % d.G != g) continue;
    if (pending < 0) {
      pending = b;
    } else {
      f(pending, b);
      pending = -1;
    }
  }
  if (pending >= 0) f(pending, -1);
}

// k[g, h] zero-padded to N, transformed, scaled by 1/N so that Adjoint(X .* K) is the
// convolution itself. k[g, h] is read from the prepared kspec when the call has one (see
// FftconvSpectrumCpu: there it is k's row, zero-padded to the prepared length; bfloat16 for bfloat16 data).
void FilterSpectrum(const FftconvDims& d, const FftPlan& plan, const float* k, const float* kspec, int64_t g,
                    int64_t h, Cpx* out) {
  const double inv_n = 1.0 / static_cast<double>(d.N);
  const bool bf16 = d.dtype == DType::kBF16;
  const float* prepared = kspec ? kspec + (g * d.H + h) * longconv::prepared_spectrum_floats(d.N, bf16) : nullptr;
  if (prepared != nullptr && bf16) {
    const auto* kr = reinterpret_cast<const uint16_t*>(prepared);
    for (int64_t j = 0; j < d.Lk; ++j) out[j] = Cpx{cpu::Bf16ToFloat(kr[j]) * inv_n, 0.0};
  } else {
    const float* kr = prepared != nullptr ? prepared : k + (g * d.H + h) * d.Lk;
    for (int64_t j = 0; j < d.Lk; ++j) out[j] = Cpx{kr[j] * inv_n, 0.0};
  }
  std::fill(out + d.Lk, out + d.N, Cpx{0.0, 0.0});
  plan.Forward(out);
}

struct FwdScratch {
  std::vector<Cpx> kspec, a;
  std::vector<double> v;  // v = pre * u of the two rows of a pair, read once from strided memory
};

template <DType DT>
void FftconvFwdItem(const FftconvFwdArgs& args, const FftPlan& plan, int64_t item, FwdScratch& s) {
  using E = Elem<DT>;
  using T = typename E::Storage;
  const FftconvDims& d = args.d;
  const int64_t g = item / d.H, h = item % d.H;
  const int64_t N = d.N, L = d.L;
  s.kspec.resize(N);
  s.a.resize(N);
  s.v.resize(2 * L);
  FilterSpectrum(d, plan, args.k, args.kspec, g, h, s.kspec.data());
  const T* u = static_cast<const T*>(args.u);
  const T* pre = static_cast<const T*>(args.pre);
  const T* post = static_cast<const T*>(args.post);
  T* y = static_cast<T*>(args.y);
  const double skip = args.skip ? args.skip[g * d.H + h] : 0.0;
  const RowAddressing at(d);
  const int64_t st = at.stride;
  Cpx* a = s.a.data();

  auto v = [&](int64_t i) { return pre ? E::Load(pre, i) * E::Load(u, i) : E::Load(u, i); };

  double* v1 = s.v.data();
  double* v2 = v1 + L;
  ForEachRowPair(d, g, [&](int64_t b1, int64_t b2) {
    const int64_t base1 = at.Base(b1, h);
    const int64_t base2 = b2 >= 0 ? at.Base(b2, h) : 0;
    for (int64_t t = 0; t < L; ++t) {
      v1[t] = v(base1 + t * st);
      v2[t] = b2 >= 0 ? v(base2 + t * st) : 0.0;
      a[t] = Cpx{v1[t], v2[t]};
    }
    std::fill(a + L, a + N, Cpx{0.0, 0.0});
    plan.Forward(a);
    cpu::MulInPlace(a, s.kspec.data(), N);
    plan.Adjoint(a);
    for (int64_t t = 0; t < L; ++t) {
      const int64_t i = base1 + t * st;
      const double out = a[t].re + skip * v1[t];
      E::Store(y, i, post ? E::Load(post, i) * out : out);
    }
    if (b2 >= 0) {
      for (int64_t t = 0; t < L; ++t) {
        const int64_t i = base2 + t * st;
        const double out = a[t].im + skip * v2[t];
        E::Store(y, i, post ? E::Load(post, i) * out : out);
      }
    }
  });
}

struct BwdScratch {
  std::vector<Cpx> kspec, p, q, acc;
  std::vector<double> v, dz;  // per row of a pair, read once from strided memory
};

template <DType DT>
void FftconvBwdItem(const FftconvBwdArgs& args, const FftPlan& plan, int64_t item, BwdScratch& s) {
  using E = Elem<DT>;
  using T = typename E::Storage;
  const FftconvDims& d = args.d;
  const int64_t g = item / d.H, h = item % d.H;
  const int64_t N = d.N, L = d.L;
  s.kspec.resize(N);
  s.p.resize(N);
  s.q.resize(N);
  s.acc.resize(N);
  s.v.resize(2 * L);
  s.dz.resize(2 * L);
  FilterSpectrum(d, plan, args.k, args.kspec, g, h, s.kspec.data());
  std::fill(s.acc.begin(), s.acc.end(), Cpx{0.0, 0.0});
  const T* dy = static_cast<const T*>(args.dy);
  const T* u = static_cast<const T*>(args.u);
  const T* pre = static_cast<const T*>(args.pre);
  const T* post = static_cast<const T*>(args.post);
  T* du = static_cast<T*>(args.du);
  T* dpre = static_cast<T*>(args.dpre);
  T* dpost = static_cast<T*>(args.dpost);
  const double skip = args.skip ? args.skip[g * d.H + h] : 0.0;
  const RowAddressing at(d);
  const int64_t st = at.stride;
  Cpx* P = s.p.data();
  Cpx* Q = s.q.data();
  const Cpx* K = s.kspec.data();
  double dskip = 0.0;

  auto v = [&](int64_t i) { return pre ? E::Load(pre, i) * E::Load(u, i) : E::Load(u, i); };
  auto dz = [&](int64_t i) { return post ? E::Load(dy, i) * E::Load(post, i) : E::Load(dy, i); };

  ForEachRowPair(d, g, [&](int64_t b1, int64_t b2) {
    const int64_t base[2] = {at.Base(b1, h), b2 >= 0 ? at.Base(b2, h) : 0};
    const int rows = b2 >= 0 ? 2 : 1;
    double* vr[2] = {s.v.data(), s.v.data() + L};
    double* dzr[2] = {s.dz.data(), s.dz.data() + L};
    for (int r = 0; r < 2; ++r) {
      for (int64_t t = 0; t < L; ++t) {
        const int64_t i = base[r] + t * st;
        vr[r][t] = r < rows ? v(i) : 0.0;
        dzr[r][t] = r < rows ? dz(i) : 0.0;
      }
    }
    for (int64_t t = 0; t < L; ++t) P[t] = Cpx{vr[0][t], vr[1][t]};
    std::fill(P + L, P + N, Cpx{0.0, 0.0});
    plan.Forward(P);

    if (post) {  // dpost needs z, the pre-gate output: recompute it rather than store it
      std::copy(P, P + N, Q);
      cpu::MulInPlace(Q, K, N);
      plan.Adjoint(Q);
      for (int r = 0; r < rows; ++r) {
        for (int64_t t = 0; t < L; ++t) {
          const int64_t i = base[r] + t * st;
          const double z = r == 0 ? Q[t].re : Q[t].im;
          E::Store(dpost, i, E::Load(dy, i) * (z + skip * vr[r][t]));
        }
      }
    }

    for (int64_t t = 0; t < L; ++t) Q[t] = Cpx{dzr[0][t], dzr[1][t]};
    std::fill(Q + L, Q + N, Cpx{0.0, 0.0});
    if (args.dskip) {
      for (int r = 0; r < rows; ++r)
        for (int64_t t = 0; t < L; ++t) dskip += dzr[r][t] * vr[r][t];
    }
    plan.Forward(Q);
    cpu::AccumulateConjMul(s.acc.data(), P, Q, N);

    // dv = corr(dz, k) + skip * dz: the correlation is the adjoint of the convolution,
    // i.e. multiplication by conj(K).
    cpu::MulConjInPlace(Q, K, N);
    plan.Adjoint(Q);
    for (int r = 0; r < rows; ++r) {
      for (int64_t t = 0; t < L; ++t) {
        const int64_t i = base[r] + t * st;
        const double dv = (r == 0 ? Q[t].re : Q[t].im) + skip * dzr[r][t];
        if (pre) {
          E::Store(du, i, dv * E::Load(pre, i));
          E::Store(dpre, i, dv * E::Load(u, i));
        } else {
          E::Store(du, i, dv);
        }
      }
    }
  });

  // acc = sum over rows of conj(V) .* DZ, unscaled: the inverse needs 1/N.
  plan.Adjoint(s.acc.data());
  const double inv_n = 1.0 / static_cast<double>(N);
  float* dk = args.dk + (g * d.H + h) * d.Lk;
  for (int64_t j = 0; j < d.Lk; ++j) dk[j] = static_cast<float>(s.acc[j].re * inv_n);
  if (args.dskip) args.dskip[g * d.H + h] = static_cast<float>(dskip);
}

// ---------------------------------------------------------------------------------------
// BLH staging
// ---------------------------------------------------------------------------------------
//
// In BLH a row (b, h) is strided by H, so each of its elements sits on its own cache line and
// every line is fetched again by the H - 1 other items that share it: at Hyena sizes that
// doubles the handler's time. BLH calls therefore transpose their activations to BHL once
// (blocked, so both sides stay in cache), run the BHL path and transpose the results back.

// dst (B, C, R) = src (B, R, C) with the last two axes swapped, for one batch index b.
// T only carries the bits (uint16_t or uint32_t).
template <typename T>
void TransposeBatch(const T* src, T* dst, int64_t b, int64_t R, int64_t C) {
  constexpr int64_t kBlock = 32;
  const T* s = src + b * R * C;
  T* d = dst + b * R * C;
  for (int64_t r0 = 0; r0 < R; r0 += kBlock) {
    const int64_t r1 = std::min(R, r0 + kBlock);
    for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
      const int64_t c1 = std::min(C, c0 + kBlock);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) d[c * R + r] = s[r * C + c];
    }
  }
}

// Owns the BHL copies of a BLH call's activations.
class BhlStaging {
 public:
  // Tries to reserve `count` BHL buffers of the activation shape; false when the call should
  // stay on the strided path (nothing to gain, or the memory is not there).
  bool Reserve(const FftconvDims& d, int count) {
    constexpr int64_t kMaxBytes = int64_t{4} << 30;
    // Below this the strided reads stay in cache and the copies would cost more than they save.
    constexpr int64_t kMinElements = 32768;
    if (d.layout != kBLH || d.H == 1 || d.B * d.H * d.L < kMinElements) return false;
    elem_ = d.dtype == DType::kF32 ? 4 : 2;
    B_ = d.B;
    L_ = d.L;
    H_ = d.H;
    const int64_t bytes = d.B * d.H * d.L * elem_;
    if (bytes > kMaxBytes / count) return false;
    try {
      for (int i = 0; i < count; ++i) bufs_.emplace_back(new uint8_t[bytes]);
    } catch (const std::bad_alloc&) {
      bufs_.clear();
      return false;
    }
    return true;
  }
  void* Buffer(int i) { return bufs_[i].get(); }

  // Points each present (non-null) input at a BHL copy of it, taking buffers from `*next` on.
  ffi::Error StageInputs(ffi::ThreadPool& pool, const char* op, std::initializer_list<const void**> inputs,
                         int* next) {
    for (const void** in : inputs) {
      if (!*in) continue;
      void* buf = Buffer((*next)++);
      JFF_RETURN_IF_ERROR(Copy(pool, op, *in, buf, /*to_bhl=*/true));
      *in = buf;
    }
    return ffi::Error::Success();
  }

  // Transpose() with its error as an ffi::Error naming the target.
  ffi::Error Copy(ffi::ThreadPool& pool, const char* op, const void* src, void* dst, bool to_bhl) {
    std::string err = Transpose(pool, src, dst, to_bhl);
    if (err.empty()) return ffi::Error::Success();
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("jax_flashfft: ") + op + ": " + err);
  }

  // BLH (B, L, H) -> BHL (B, H, L), or back with to_bhl = false; parallel over the batch.
  std::string Transpose(ffi::ThreadPool& pool, const void* src, void* dst, bool to_bhl) {
    const int64_t R = to_bhl ? L_ : H_, C = to_bhl ? H_ : L_;
    const int64_t workers =
        cpu::ChooseWorkers(pool, B_, static_cast<double>(B_) * L_ * H_, 0);
    struct None {};
    return cpu::ParallelFor<None>(pool, B_, workers, [&](int64_t b, None&) {
      if (elem_ == 4) {
        TransposeBatch(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), b, R, C);
      } else {
        TransposeBatch(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), b, R, C);
      }
    });
  }

 private:
  int64_t elem_ = 4, B_ = 0, L_ = 0, H_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> bufs_;
};

// run(std::integral_constant<DType, DT>{}) for the activation dtype DT.
template <typename Run>
ffi::Error ForDType(DType dtype, Run run) {
  switch (dtype) {
    case DType::kF32: return run(std::integral_constant<DType, DType::kF32>());
    case DType::kBF16: return run(std::integral_constant<DType, DType::kBF16>());
    case DType::kF16: break;
  }
  return run(std::integral_constant<DType, DType::kF16>());
}

// Builds the plan and runs `item_fn<DT>` over all (g, h) items; maps allocation failure and
// anything unexpected to an ffi::Error instead of letting it escape into XLA.
template <typename Scratch, typename ItemFn>
ffi::Error RunItems(const char* op, ffi::ThreadPool& pool, const FftconvDims& d, int buffers,
                    ItemFn item_fn) {
  const int64_t items = d.G * d.H;
  std::unique_ptr<FftPlan> plan;
  try {
    plan = std::make_unique<FftPlan>(d.N);
  } catch (const std::bad_alloc&) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      std::string("jax_flashfft: ") + op + ": out of memory for the FFT plan of size " +
                          std::to_string(d.N));
  }
  const double log_n = std::max(1.0, std::log2(static_cast<double>(d.N)));
  const double work = static_cast<double>(std::max<int64_t>(d.B, 1)) * d.H * d.N * log_n * 5.0;
  const int64_t scratch = static_cast<int64_t>(buffers) * d.N * static_cast<int64_t>(sizeof(Cpx));
  const int64_t workers = cpu::ChooseWorkers(pool, items, work, scratch);
  const FftPlan& p = *plan;
  std::string err = cpu::ParallelFor<Scratch>(
      pool, items, workers, [&](int64_t item, Scratch& s) { item_fn(p, item, s); });
  if (!err.empty()) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      std::string("jax_flashfft: ") + op + ": " + err +
                          " (scratch of " + std::to_string(scratch) + " bytes per thread)");
  }
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

// jff_fftconv_filter_spectrum on the CPU: K'[g, h] is k[g, h] itself, zero-padded to the prepared length; for
// bfloat16 data rounded to bfloat16 (two values to a float of the half-size array, as the CUDA slices are bfloat16
// there; the data's own precision, next to which the rounding of k is small).
// The CPU handlers keep transforming each filter per call: their FFT's spectrum (N complex doubles in the
// plan's permuted order) does not fit K''s N + 2 N2 floats, and one filter transform per (g, h) item is small
// next to the item's 2-4 transforms per batch row. The target exists so that every platform runs the same
// program (the custom VJP's residual, vmap and sharding rules are exercised on the CPU too).
ffi::Error FftconvSpectrumCpu(ffi::AnyBuffer k, ffi::AnyBuffer skip, ffi::Result<ffi::AnyBuffer> kspec,
                              int64_t fft_size, int32_t bfloat16_data) {
  FftconvDims d;
  JFF_RETURN_IF_ERROR(
      ValidateSpectrum("jff_fftconv_filter_spectrum", k, skip, *kspec, fft_size, bfloat16_data, &d));
  const int64_t floats = longconv::prepared_spectrum_floats(d.N, bfloat16_data == 1);
  const float* src = static_cast<const float*>(k.untyped_data());
  if (bfloat16_data == 1) {
    const int64_t slots = 2 * floats;  // bfloat16 values per filter
    auto* dst = static_cast<uint16_t*>(kspec->untyped_data());
    for (int64_t gh = 0; gh < d.G * d.H; ++gh) {
      for (int64_t j = 0; j < d.Lk; ++j) dst[gh * slots + j] = cpu::FloatToBf16(src[gh * d.Lk + j]);
      std::fill(dst + gh * slots + d.Lk, dst + (gh + 1) * slots, uint16_t{0});
    }
    return ffi::Error::Success();
  }
  float* dst = static_cast<float*>(kspec->untyped_data());
  for (int64_t gh = 0; gh < d.G * d.H; ++gh) {
    std::copy(src + gh * d.Lk, src + (gh + 1) * d.Lk, dst + gh * floats);
    std::fill(dst + gh * floats + d.Lk, dst + (gh + 1) * floats, 0.0f);
  }
  return ffi::Error::Success();
}

const float* SpectrumOrNull(const ffi::AnyBuffer& kspec) {
  return IsAbsent(kspec) ? nullptr : static_cast<const float*>(kspec.untyped_data());
}

ffi::Error FftconvFwdCpu(ffi::ThreadPool pool, ffi::AnyBuffer u, ffi::AnyBuffer k,
                         ffi::AnyBuffer pre, ffi::AnyBuffer post, ffi::AnyBuffer skip, ffi::AnyBuffer kspec,
                         ffi::Result<ffi::AnyBuffer> y, int64_t fft_size, int32_t layout,
                         int64_t rows_per_group) {
  constexpr const char* kOp = "jff_fftconv_fwd";
  FftconvFwdArgs a;
  JFF_RETURN_IF_ERROR(ValidateFwd(kOp, u, k, pre, post, skip, kspec, *y, fft_size, layout, rows_per_group, &a.d));
  a.u = u.untyped_data();
  a.k = static_cast<const float*>(k.untyped_data());
  a.kspec = SpectrumOrNull(kspec);
  a.pre = IsAbsent(pre) ? nullptr : pre.untyped_data();
  a.post = IsAbsent(post) ? nullptr : post.untyped_data();
  a.skip = IsAbsent(skip) ? nullptr : static_cast<const float*>(skip.untyped_data());
  a.y = y->untyped_data();
  if (a.d.B == 0) return ffi::Error::Success();
  if (a.d.layout == kBLH && a.d.H == 1) a.d.layout = kBHL;  // the same memory order

  // BLH: run on BHL copies of u and the gates, writing y's BHL copy (see BhlStaging).
  BhlStaging staging;
  const int n_in = 1 + (a.pre != nullptr) + (a.post != nullptr);
  const bool staged = staging.Reserve(a.d, n_in + 1);
  if (staged) {
    int next = 0;
    JFF_RETURN_IF_ERROR(staging.StageInputs(pool, kOp, {&a.u, &a.pre, &a.post}, &next));
    a.y = staging.Buffer(next);
    a.d.layout = kBHL;
  }

  auto run = [&](auto dt_tag) {
    constexpr DType DT = decltype(dt_tag)::value;
    return RunItems<FwdScratch>(kOp, pool, a.d, 2, [&](const FftPlan& p, int64_t item, FwdScratch& s) {
      FftconvFwdItem<DT>(a, p, item, s);
    });
  };
  const ffi::Error status = ForDType(a.d.dtype, run);
  if (status.failure() || !staged) return status;
  return staging.Copy(pool, kOp, a.y, y->untyped_data(), /*to_bhl=*/false);
}

ffi::Error FftconvBwdCpu(ffi::ThreadPool pool, ffi::AnyBuffer dy, ffi::AnyBuffer u,
                         ffi::AnyBuffer k, ffi::AnyBuffer pre, ffi::AnyBuffer post,
                         ffi::AnyBuffer skip, ffi::AnyBuffer kspec, ffi::Result<ffi::AnyBuffer> du,
                         ffi::Result<ffi::AnyBuffer> dk, ffi::Result<ffi::AnyBuffer> dpre,
                         ffi::Result<ffi::AnyBuffer> dpost, ffi::Result<ffi::AnyBuffer> dskip,
                         ffi::Result<ffi::AnyBuffer> kspec_ws, int64_t fft_size, int32_t layout,
                         int64_t rows_per_group) {
  // kspec_ws (kspec's alias) is the CUDA backward's scratch: the CPU needs none and leaves it as it is.
  constexpr const char* kOp = "jff_fftconv_bwd";
  FftconvBwdArgs a;
  JFF_RETURN_IF_ERROR(ValidateBwd(kOp, dy, u, k, pre, post, skip, kspec, *du, *dk, *dpre, *dpost, *dskip,
                                  *kspec_ws, fft_size, layout, rows_per_group, &a.d));
  const bool has_pre = !IsAbsent(pre);
  const bool has_post = !IsAbsent(post);
  const bool has_skip = !IsAbsent(skip);
  a.dy = dy.untyped_data();
  a.u = u.untyped_data();
  a.k = static_cast<const float*>(k.untyped_data());
  a.kspec = SpectrumOrNull(kspec);
  a.pre = has_pre ? pre.untyped_data() : nullptr;
  a.post = has_post ? post.untyped_data() : nullptr;
  a.skip = has_skip ? static_cast<const float*>(skip.untyped_data()) : nullptr;
  a.du = du->untyped_data();
  a.dk = static_cast<float*>(dk->untyped_data());
  a.dpre = has_pre ? dpre->untyped_data() : nullptr;
  a.dpost = has_post ? dpost->untyped_data() : nullptr;
  a.dskip = has_skip ? static_cast<float*>(dskip->untyped_data()) : nullptr;
  if (a.d.layout == kBLH && a.d.H == 1) a.d.layout = kBHL;  // the same memory order

  // BLH: run on BHL copies of dy, u and the gates, writing BHL copies of du and the gate
  // gradients (see BhlStaging).
  BhlStaging staging;
  const int n_io = 2 + 2 * has_pre + 2 * has_post;  // inputs dy, u, pre, post; outputs du, dpre, dpost
  const bool staged = staging.Reserve(a.d, n_io + 1);
  void* outputs[3] = {a.du, a.dpre, a.dpost};
  if (staged) {
    int next = 0;
    JFF_RETURN_IF_ERROR(staging.StageInputs(pool, kOp, {&a.dy, &a.u, &a.pre, &a.post}, &next));
    void** outs[3] = {&a.du, &a.dpre, &a.dpost};
    for (void** out : outs) {
      if (*out) *out = staging.Buffer(next++);
    }
    a.d.layout = kBHL;
  }

  auto run = [&](auto dt_tag) {
    constexpr DType DT = decltype(dt_tag)::value;
    return RunItems<BwdScratch>(kOp, pool, a.d, 4, [&](const FftPlan& p, int64_t item, BwdScratch& s) {
      FftconvBwdItem<DT>(a, p, item, s);
    });
  };
  const ffi::Error status = ForDType(a.d.dtype, run);
  if (status.failure() || !staged) return status;
  const void* staged_outs[3] = {a.du, a.dpre, a.dpost};
  for (int i = 0; i < 3; ++i) {
    if (outputs[i]) JFF_RETURN_IF_ERROR(staging.Copy(pool, kOp, staged_outs[i], outputs[i], /*to_bhl=*/false));
  }
  return ffi::Error::Success();
}

}  // namespace
}  // namespace jff

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffFftconvFwdCpu, jff::FftconvFwdCpu,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()  // u
                                  .Arg<xla::ffi::AnyBuffer>()  // k
                                  .Arg<xla::ffi::AnyBuffer>()  // pre_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // post_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // skip or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // kspec or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // y
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("layout")
                                  .Attr<int64_t>("rows_per_group"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffFftconvBwdCpu, jff::FftconvBwdCpu,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()  // dy
                                  .Arg<xla::ffi::AnyBuffer>()  // u
                                  .Arg<xla::ffi::AnyBuffer>()  // k
                                  .Arg<xla::ffi::AnyBuffer>()  // pre_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // post_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // skip or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // kspec or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // du
                                  .Ret<xla::ffi::AnyBuffer>()  // dk
                                  .Ret<xla::ffi::AnyBuffer>()  // dpre or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // dpost or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // dskip or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // kspec_ws (kspec's alias) or (0,)
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("layout")
                                  .Attr<int64_t>("rows_per_group"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffFftconvSpectrumCpu, jff::FftconvSpectrumCpu,
                              xla::ffi::Ffi::Bind()
                                  .Arg<xla::ffi::AnyBuffer>()  // k
                                  .Arg<xla::ffi::AnyBuffer>()  // skip or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // kspec
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("bfloat16_data"));
