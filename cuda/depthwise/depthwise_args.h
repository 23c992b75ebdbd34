// The canonical depthwise-conv problem as the handlers hand it to the CPU and CUDA code.
// See cuda/README.md for the FFI contract these fields come from.
#pragma once

#include <cstdint>

#include "common/ffi_util.h"

namespace jff {

struct DepthwiseDims {
  DType x_dtype;    // of x, y, dy, dx
  DType w_dtype;    // of w and bias: float32 or x_dtype
  int32_t layout;   // kBLH: x is (B, L, D); kBHL: x is (B, D, L)
  int64_t B, L, D, K;
  int64_t pad_lo, pad_hi;
  int64_t L_out;    // L + pad_lo + pad_hi - K + 1 >= 1
};

struct DepthwiseFwdArgs {
  DepthwiseDims d;
  const void* x;
  const void* w;     // (K, D)
  const void* bias;  // (D,), nullptr when absent
  void* y;
};

struct DepthwiseBwdArgs {
  DepthwiseDims d;
  const void* dy;
  const void* x;
  const void* w;
  void* dx;
  float* dw;         // (K, D) float32, reduced over batch and length in a fixed order
  float* dbias;      // (D,) float32, nullptr when bias is absent
};

}  // namespace jff
