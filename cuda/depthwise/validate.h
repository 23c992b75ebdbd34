// Validation of the depthwise operands and attributes, shared by the CPU and CUDA handlers.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "common/ffi_util.h"
#include "depthwise/depthwise_args.h"

namespace jff {

constexpr int64_t kMaxTaps = 128;

// x, w and the attributes, shared by both directions; fills `d`.
inline ffi::Error ValidateCommon(const std::string& op, const ffi::AnyBuffer& x, const ffi::AnyBuffer& w,
                          int64_t pad_lo, int64_t pad_hi, int32_t layout, DepthwiseDims* d) {
  const std::string p = op + ": ";
  if (layout != kBHL && layout != kBLH) {
    return InvalidArg(p + "attribute layout is " + std::to_string(layout) +
                      ", expected 0 (BHL) or 1 (BLH)");
  }
  d->layout = layout;
  if (!ToDType(x.element_type(), &d->x_dtype)) {
    return InvalidArg(p + "x has dtype " + DTypeName(x.element_type()) +
                      ", expected float16, bfloat16 or float32");
  }
  const auto xd = x.dimensions();
  if (xd.size() != 3) {
    return InvalidArg(p + "x has shape " + ShapeString(xd) + ", expected rank 3 " +
                      (layout == kBLH ? "(B, L, D)" : "(B, D, L)"));
  }
  d->B = xd[0];
  d->L = layout == kBLH ? xd[1] : xd[2];
  d->D = layout == kBLH ? xd[2] : xd[1];
  if (d->D < 1) return InvalidArg(p + "x has shape " + ShapeString(xd) + ": D must be >= 1");
  const auto wd = w.dimensions();
  if (wd.size() != 2 || wd[1] != d->D) {
    return InvalidArg(p + "w has shape " + ShapeString(wd) + ", expected (K, " +
                      std::to_string(d->D) + ")");
  }
  d->K = wd[0];
  if (d->K < 1 || d->K > kMaxTaps) {
    return InvalidArg(p + "w has " + std::to_string(d->K) + " taps (shape " + ShapeString(wd) +
                      "), expected 1 <= K <= 128");
  }
  if (w.element_type() == ffi::DataType::F32) {
    d->w_dtype = DType::kF32;
  } else if (w.element_type() == x.element_type()) {
    d->w_dtype = d->x_dtype;
  } else {
    return InvalidArg(p + "w has dtype " + DTypeName(w.element_type()) +
                      ", expected float32 or x's dtype " + DTypeName(x.element_type()));
  }
  // Far above any padding whose output fits in memory; keeps L + pad_lo + pad_hi exact.
  constexpr int64_t kMaxPad = std::numeric_limits<int64_t>::max() / 4;
  if (pad_lo < 0 || pad_lo > kMaxPad) {
    return InvalidArg(p + "attribute pad_lo is " + std::to_string(pad_lo) + ", expected >= 0");
  }
  if (pad_hi < 0 || pad_hi > kMaxPad) {
    return InvalidArg(p + "attribute pad_hi is " + std::to_string(pad_hi) + ", expected >= 0");
  }
  d->pad_lo = pad_lo;
  d->pad_hi = pad_hi;
  d->L_out = d->L + pad_lo + pad_hi - d->K + 1;
  if (d->L_out < 1) {
    return InvalidArg(p + "the output would be empty: L + pad_lo + pad_hi - K + 1 = " +
                      std::to_string(d->L) + " + " + std::to_string(pad_lo) + " + " +
                      std::to_string(pad_hi) + " - " + std::to_string(d->K) + " + 1 = " +
                      std::to_string(d->L_out) + ", expected >= 1");
  }
  return ffi::Error::Success();
}

inline bool HasDims(ffi::AnyBuffer::Dimensions dims, std::initializer_list<int64_t> want) {
  if (dims.size() != want.size()) return false;
  size_t i = 0;
  for (int64_t w : want)
    if (dims[i++] != w) return false;
  return true;
}

// An activation-shaped buffer: (B, length, D) for BLH or (B, D, length) for BHL, in x's dtype.
inline ffi::Error ExpectActivation(const std::string& op, const char* name, const ffi::AnyBuffer& buf,
                                   const DepthwiseDims& d, int64_t length, ffi::DataType x_dtype) {
  const bool blh = d.layout == kBLH;
  if (!(blh ? HasDims(buf.dimensions(), {d.B, length, d.D}) : HasDims(buf.dimensions(), {d.B, d.D, length}))) {
    return InvalidArg(op + ": " + name + " has shape " + ShapeString(buf.dimensions()) + ", expected " +
                      (blh ? DimsString({d.B, length, d.D}) : DimsString({d.B, d.D, length})));
  }
  if (buf.element_type() != x_dtype) {
    return InvalidArg(op + ": " + name + " has dtype " + DTypeName(buf.element_type()) +
                      ", expected x's dtype " + DTypeName(x_dtype));
  }
  return ffi::Error::Success();
}

// Everything jff_depthwise_fwd receives; fills `d` and whether a bias was given.
inline ffi::Error ValidateFwd(const std::string& op, const ffi::AnyBuffer& x, const ffi::AnyBuffer& w,
                              const ffi::AnyBuffer& bias, const ffi::AnyBuffer& y, int64_t pad_lo,
                              int64_t pad_hi, int32_t layout, DepthwiseDims* d, bool* has_bias) {
  JFF_RETURN_IF_ERROR(ValidateCommon(op, x, w, pad_lo, pad_hi, layout, d));
  *has_bias = !IsAbsent(bias);
  if (*has_bias) {
    if (!HasDims(bias.dimensions(), {d->D})) {
      return InvalidArg(op + ": bias has shape " + ShapeString(bias.dimensions()) + ", expected " +
                        DimsString({d->D}) + " or (0,) when absent");
    }
    if (bias.element_type() != w.element_type()) {
      return InvalidArg(op + ": bias has dtype " + DTypeName(bias.element_type()) + ", expected w's dtype " +
                        DTypeName(w.element_type()));
    }
  }
  return ExpectActivation(op, "result y", y, *d, d->L_out, x.element_type());
}

// Everything jff_depthwise_bwd receives; fills `d` and whether dbias is wanted (a (D,) float32 result
// rather than (0,)).
inline ffi::Error ValidateBwd(const std::string& op, const ffi::AnyBuffer& dy, const ffi::AnyBuffer& x,
                              const ffi::AnyBuffer& w, const ffi::AnyBuffer& dx, const ffi::AnyBuffer& dw,
                              const ffi::AnyBuffer& dbias, int64_t pad_lo, int64_t pad_hi, int32_t layout,
                              DepthwiseDims* d, bool* want_dbias) {
  JFF_RETURN_IF_ERROR(ValidateCommon(op, x, w, pad_lo, pad_hi, layout, d));
  JFF_RETURN_IF_ERROR(ExpectActivation(op, "dy", dy, *d, d->L_out, x.element_type()));
  JFF_RETURN_IF_ERROR(ExpectActivation(op, "result dx", dx, *d, d->L, x.element_type()));
  if (!HasDims(dw.dimensions(), {d->K, d->D}) || dw.element_type() != ffi::DataType::F32) {
    return InvalidArg(op + ": result dw is " + DTypeName(dw.element_type()) + " " +
                      ShapeString(dw.dimensions()) + ", expected float32 " + DimsString({d->K, d->D}));
  }
  *want_dbias = !IsAbsent(dbias);
  if (*want_dbias && (!HasDims(dbias.dimensions(), {d->D}) || dbias.element_type() != ffi::DataType::F32)) {
    return InvalidArg(op + ": result dbias is " + DTypeName(dbias.element_type()) + " " +
                      ShapeString(dbias.dimensions()) + ", expected float32 " + DimsString({d->D}) +
                      " or (0,) when there is no bias");
  }
  return ffi::Error::Success();
}

}  // namespace jff
