// Helpers shared by every FFI handler: argument validation that turns bad shapes into
// ffi::Error (never a crash or an out-of-bounds kernel), and the element-type enum the
// kernels dispatch on.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

#include "xla/ffi/api/ffi.h"

namespace jff {

namespace ffi = xla::ffi;

// Element types of activations (u, gates, x, y). Weights/filters are float32 unless noted.
enum class DType : int { kF16 = 0, kBF16 = 1, kF32 = 2 };

// Layout attribute shared by both ops: 0 = channels before length ("BHL"),
// 1 = length before channels ("BLH", Flax's channels-last).
enum Layout : int32_t { kBHL = 0, kBLH = 1 };

inline bool ToDType(ffi::DataType t, DType* out) {
  switch (t) {
    case ffi::DataType::F16: *out = DType::kF16; return true;
    case ffi::DataType::BF16: *out = DType::kBF16; return true;
    case ffi::DataType::F32: *out = DType::kF32; return true;
    default: return false;
  }
}

inline const char* DTypeName(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F16: return "float16";
    case ffi::DataType::BF16: return "bfloat16";
    case ffi::DataType::F32: return "float32";
    case ffi::DataType::F64: return "float64";
    default: return "unsupported";
  }
}

inline std::string ShapeString(ffi::AnyBuffer::Dimensions dims) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << (dims.size() == 1 ? ",)" : ")");
  return s.str();
}

inline ffi::Error InvalidArg(const std::string& what) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jax_flashfft: " + what);
}

// Checks that `buf` has exactly the given dims; `name` is used in the message.
template <size_t R>
inline ffi::Error ExpectShape(const char* name, ffi::AnyBuffer::Dimensions dims,
                              const int64_t (&want)[R]) {
  bool ok = dims.size() == R;
  for (size_t i = 0; ok && i < R; ++i) ok = dims[i] == want[i];
  if (ok) return ffi::Error::Success();
  std::ostringstream s;
  s << name << " has shape " << ShapeString(dims) << ", expected (";
  for (size_t i = 0; i < R; ++i) s << (i ? ", " : "") << want[i];
  s << (R == 1 ? ",)" : ")");
  return InvalidArg(s.str());
}

// An optional operand is passed as an empty (0,) array when absent.
inline bool IsAbsent(const ffi::AnyBuffer& b) {
  return b.dimensions().size() == 1 && b.dimensions()[0] == 0;
}
inline bool IsAbsent(ffi::Result<ffi::AnyBuffer>& b) {
  return b->dimensions().size() == 1 && b->dimensions()[0] == 0;
}

}  // namespace jff

// Propagates an ffi::Error from a validation helper.
#define JFF_RETURN_IF_ERROR(expr)          \
  do {                                     \
    ::xla::ffi::Error _jff_err = (expr);   \
    if (_jff_err.failure()) return _jff_err; \
  } while (0)
