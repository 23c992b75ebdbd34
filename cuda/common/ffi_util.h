// Helpers shared by every FFI handler: argument validation that turns bad shapes into
// ffi::Error (never a crash or an out-of-bounds kernel), and the element-type enum the
// kernels dispatch on.
#pragma once

#include <cstdint>
#include <initializer_list>
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

// "(a, b, c)", or "(a,)" for one dimension. Built from std::string and std::to_string only: a
// std::ostringstream here segfaulted inside the GPU process (jax's CUDA plugin loaded; the CPU-only
// process was fine), so no handler uses iostreams.
template <typename Dims>
inline std::string DimsString(const Dims& dims) {
  std::string s = "(";
  size_t i = 0;
  for (int64_t d : dims) s += (i++ ? ", " : "") + std::to_string(d);
  return s + (i == 1 ? ",)" : ")");
}
inline std::string DimsString(std::initializer_list<int64_t> dims) {
  return DimsString<std::initializer_list<int64_t>>(dims);
}
inline std::string ShapeString(ffi::AnyBuffer::Dimensions dims) { return DimsString(dims); }

inline ffi::Error InvalidArg(const std::string& what) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jax_flashfft: " + what);
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
