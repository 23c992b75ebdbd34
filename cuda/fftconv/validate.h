// Validation of the fftconv operands, results and attributes, shared by the CPU and CUDA handlers:
// every shape, dtype and attribute is checked here and reported as an ffi::Error that names the
// argument, so no kernel sees a shape it could index out of bounds with.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/ffi_util.h"
#include "fftconv/fftconv_args.h"
#include "fftconv_long/long_plan.h"

namespace jff {

constexpr int64_t kMaxFftSize = int64_t{1} << 24;

// `b` has u's shape and dtype.
inline ffi::Error ExpectLikeU(const std::string& op, const std::string& name, const ffi::AnyBuffer& b,
                              const ffi::AnyBuffer& u) {
  const auto bd = b.dimensions(), ud = u.dimensions();
  bool same = bd.size() == ud.size();
  for (size_t i = 0; same && i < bd.size(); ++i) same = bd[i] == ud[i];
  if (!same) {
    return InvalidArg(op + ": " + name + " has shape " + ShapeString(bd) + ", expected u's shape " +
                      ShapeString(ud));
  }
  if (b.element_type() != u.element_type()) {
    return InvalidArg(op + ": " + name + " has dtype " + DTypeName(b.element_type()) +
                      ", expected u's dtype " + DTypeName(u.element_type()));
  }
  return ffi::Error::Success();
}

// `b` is float32 with exactly the dims `want`.
inline ffi::Error ExpectF32(const std::string& op, const std::string& name, const ffi::AnyBuffer& b,
                            std::initializer_list<int64_t> want) {
  const auto bd = b.dimensions();
  bool ok = bd.size() == want.size();
  size_t i = 0;
  for (int64_t w : want) {
    if (!ok) break;
    ok = bd[i++] == w;
  }
  if (!ok) {
    return InvalidArg(op + ": " + name + " has shape " + ShapeString(bd) + ", expected " + DimsString(want));
  }
  if (b.element_type() != ffi::DataType::F32) {
    return InvalidArg(op + ": " + name + " has dtype " + DTypeName(b.element_type()) + ", expected float32");
  }
  return ffi::Error::Success();
}

// A gradient result exists exactly when its operand does: anything else means the caller and the
// handler disagree about the call, and guessing would write out of bounds or drop a gradient.
inline ffi::Error ExpectAbsent(const std::string& op, const char* result, const ffi::AnyBuffer& b,
                               const char* operand) {
  if (IsAbsent(b)) return ffi::Error::Success();
  return InvalidArg(op + ": result " + result + " has shape " + ShapeString(b.dimensions()) +
                    ", expected (0,) because " + operand + " is absent");
}

// k is (G, d->H, Lk) float32 with G, Lk >= 1 (any H >= 1 when d->H is 0) and skip is (G, H) float32 or
// absent; fills d->G, d->H, d->Lk.
inline ffi::Error ExpectFilters(const std::string& op, const ffi::AnyBuffer& k, const ffi::AnyBuffer& skip,
                                FftconvDims* d) {
  const auto kd = k.dimensions();
  if (kd.size() != 3 || kd[0] < 1 || kd[1] < 1 || kd[2] < 1 || (d->H != 0 && kd[1] != d->H)) {
    return InvalidArg(op + ": k has shape " + ShapeString(kd) + ", expected (G, " +
                      (d->H != 0 ? std::to_string(d->H) : std::string("H")) + ", Lk) with G, H, Lk >= 1");
  }
  if (k.element_type() != ffi::DataType::F32) {
    return InvalidArg(op + ": k has dtype " + DTypeName(k.element_type()) + ", expected float32");
  }
  d->G = kd[0];
  d->H = kd[1];
  d->Lk = kd[2];
  if (!IsAbsent(skip)) JFF_RETURN_IF_ERROR(ExpectF32(op, "skip", skip, {d->G, d->H}));
  return ffi::Error::Success();
}

// The prepared filter spectrum (jff_fftconv_filter_spectrum's result for this k and fft_size), or absent.
inline ffi::Error ExpectSpectrumOrAbsent(const std::string& op, const ffi::AnyBuffer& kspec, const FftconvDims& d) {
  if (IsAbsent(kspec)) return ffi::Error::Success();
  const int64_t floats = longconv::prepared_spectrum_floats(d.N, d.dtype == DType::kBF16);
  if (floats == 0) {
    return InvalidArg(op + ": kspec is given, but fft_size " + std::to_string(d.N) +
                      " is not a long size (2^16 .. 2^24), the only sizes with a prepared filter spectrum");
  }
  return ExpectF32(op, "kspec", kspec, {d.G, d.H, floats});
}

// jff_fftconv_filter_spectrum: k, skip and the result for a long fft_size and the data's dtype (bfloat16_data: a
// bfloat16 K', half the floats); fills d (all but B, L, layout, R; dtype: float32).
inline ffi::Error ValidateSpectrum(const std::string& op, const ffi::AnyBuffer& k, const ffi::AnyBuffer& skip,
                                   const ffi::AnyBuffer& kspec, int64_t fft_size, int32_t bfloat16_data,
                                   FftconvDims* d) {
  d->H = 0;
  JFF_RETURN_IF_ERROR(ExpectFilters(op, k, skip, d));
  if (bfloat16_data != 0 && bfloat16_data != 1) {
    return InvalidArg(op + ": attribute bfloat16_data is " + std::to_string(bfloat16_data) + ", expected 0 or 1");
  }
  if (longconv::prepared_spectrum_floats(fft_size, false) == 0 || fft_size < d->Lk) {
    return InvalidArg(op + ": attribute fft_size is " + std::to_string(fft_size) +
                      ", expected a long size (a power of two 2^16 .. 2^24) >= Lk = " + std::to_string(d->Lk));
  }
  d->N = fft_size;
  d->B = 0;
  d->L = 0;
  d->R = 1;
  d->layout = kBHL;
  d->dtype = DType::kF32;
  return ExpectF32(op, "result kspec", kspec,
                   {d->G, d->H, longconv::prepared_spectrum_floats(fft_size, bfloat16_data == 1)});
}

// Everything the forward and backward share; fills `d`.
inline ffi::Error ValidateOperands(const std::string& op, const ffi::AnyBuffer& u, const ffi::AnyBuffer& k,
                                   const ffi::AnyBuffer& pre, const ffi::AnyBuffer& post,
                                   const ffi::AnyBuffer& skip, const ffi::AnyBuffer& kspec, int64_t fft_size,
                                   int32_t layout, int64_t rows_per_group, FftconvDims* d) {
  const std::string p = op + ": ";
  if (layout != kBHL && layout != kBLH) {
    return InvalidArg(p + "attribute layout is " + std::to_string(layout) + ", expected 0 (BHL) or 1 (BLH)");
  }
  if (!ToDType(u.element_type(), &d->dtype)) {
    return InvalidArg(p + "u has dtype " + DTypeName(u.element_type()) + ", expected float16, bfloat16 or float32");
  }
  const auto ud = u.dimensions();
  if (ud.size() != 3) {
    return InvalidArg(p + "u has shape " + ShapeString(ud) + ", expected rank 3 " +
                      (layout == kBHL ? "(B, H, L)" : "(B, L, H)"));
  }
  d->layout = layout;
  d->B = ud[0];
  d->H = layout == kBHL ? ud[1] : ud[2];
  d->L = layout == kBHL ? ud[2] : ud[1];
  if (d->H < 1 || d->L < 1) {
    return InvalidArg(p + "u has shape " + ShapeString(ud) + ": H and L must be >= 1");
  }
  JFF_RETURN_IF_ERROR(ExpectFilters(op, k, skip, d));
  if (!IsAbsent(pre)) JFF_RETURN_IF_ERROR(ExpectLikeU(op, "pre_gate", pre, u));
  if (!IsAbsent(post)) JFF_RETURN_IF_ERROR(ExpectLikeU(op, "post_gate", post, u));
  if (rows_per_group < 1) {
    return InvalidArg(p + "attribute rows_per_group is " + std::to_string(rows_per_group) + ", expected >= 1");
  }
  d->R = rows_per_group;
  const int64_t need = d->L > d->Lk ? d->L : d->Lk;
  const bool pow2 = fft_size >= 1 && (fft_size & (fft_size - 1)) == 0;
  if (!pow2 || fft_size < need || fft_size > kMaxFftSize) {
    return InvalidArg(p + "attribute fft_size is " + std::to_string(fft_size) +
                      ", expected a power of two with max(L, Lk) = " + std::to_string(need) +
                      " <= fft_size <= 2^24");
  }
  d->N = fft_size;
  return ExpectSpectrumOrAbsent(op, kspec, *d);
}

inline ffi::Error ValidateFwd(const std::string& op, const ffi::AnyBuffer& u, const ffi::AnyBuffer& k,
                              const ffi::AnyBuffer& pre, const ffi::AnyBuffer& post, const ffi::AnyBuffer& skip,
                              const ffi::AnyBuffer& kspec, const ffi::AnyBuffer& y, int64_t fft_size, int32_t layout,
                              int64_t rows_per_group, FftconvDims* d) {
  JFF_RETURN_IF_ERROR(ValidateOperands(op, u, k, pre, post, skip, kspec, fft_size, layout, rows_per_group, d));
  return ExpectLikeU(op, "result y", y, u);
}

inline ffi::Error ValidateBwd(const std::string& op, const ffi::AnyBuffer& dy, const ffi::AnyBuffer& u,
                              const ffi::AnyBuffer& k, const ffi::AnyBuffer& pre, const ffi::AnyBuffer& post,
                              const ffi::AnyBuffer& skip, const ffi::AnyBuffer& kspec, const ffi::AnyBuffer& du,
                              const ffi::AnyBuffer& dk, const ffi::AnyBuffer& dpre, const ffi::AnyBuffer& dpost,
                              const ffi::AnyBuffer& dskip, const ffi::AnyBuffer& kspec_ws, int64_t fft_size,
                              int32_t layout, int64_t rows_per_group, FftconvDims* d) {
  JFF_RETURN_IF_ERROR(ValidateOperands(op, u, k, pre, post, skip, kspec, fft_size, layout, rows_per_group, d));
  // kspec_ws: the backward's scratch result, aliased to kspec by the caller (cuda/README.md).
  JFF_RETURN_IF_ERROR(IsAbsent(kspec) ? ExpectAbsent(op, "kspec_ws", kspec_ws, "kspec")
                                      : ExpectF32(op, "result kspec_ws (kspec is present)", kspec_ws,
                                                  {d->G, d->H, longconv::prepared_spectrum_floats(
                                                                   d->N, d->dtype == DType::kBF16)}));
  JFF_RETURN_IF_ERROR(ExpectLikeU(op, "dy", dy, u));
  JFF_RETURN_IF_ERROR(ExpectLikeU(op, "result du", du, u));
  JFF_RETURN_IF_ERROR(ExpectF32(op, "result dk", dk, {d->G, d->H, d->Lk}));
  JFF_RETURN_IF_ERROR(IsAbsent(pre) ? ExpectAbsent(op, "dpre", dpre, "pre_gate")
                                    : ExpectLikeU(op, "result dpre (pre_gate is present)", dpre, u));
  JFF_RETURN_IF_ERROR(IsAbsent(post) ? ExpectAbsent(op, "dpost", dpost, "post_gate")
                                     : ExpectLikeU(op, "result dpost (post_gate is present)", dpost, u));
  return IsAbsent(skip) ? ExpectAbsent(op, "dskip", dskip, "skip")
                        : ExpectF32(op, "result dskip (skip is present)", dskip, {d->G, d->H});
}

}  // namespace jff
