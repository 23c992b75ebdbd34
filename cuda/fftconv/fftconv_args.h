// The canonical fftconv problem as the handlers hand it to the CPU and CUDA code.
// See cuda/README.md for the FFI contract these fields come from.
#pragma once

#include <cstdint>

#include "common/ffi_util.h"

namespace jff {

struct FftconvDims {
  DType dtype;      // of u, gates, y, dy, du, dgates
  int32_t layout;   // kBHL: u is (B, H, L); kBLH: u is (B, L, H)
  int64_t B, H, L;  // rows = B * H
  int64_t G, Lk;    // k is (G, H, Lk) float32, skip is (G, H) float32
  int64_t R;        // rows_per_group: batch index b uses filter group (b / R) % G
  int64_t N;        // FFT size, a power of two >= max(L, Lk)
};

struct FftconvFwdArgs {
  FftconvDims d;
  const void* u;
  const float* k;
  const void* pre;   // nullptr when absent
  const void* post;  // nullptr when absent
  const float* skip; // nullptr when absent
  void* y;
  const float* kspec = nullptr;  // jff_fftconv_filter_spectrum(k, skip) (G, H, S), nullptr when absent
};

struct FftconvBwdArgs {
  FftconvDims d;
  const void* dy;
  const void* u;
  const float* k;
  const void* pre;   // nullptr when absent
  const void* post;  // nullptr when absent
  const float* skip; // nullptr when absent
  void* du;
  float* dk;         // (G, H, Lk): sum over the batch rows of each group, float32, fixed order
  void* dpre;        // nullptr when pre is absent
  void* dpost;       // nullptr when post is absent
  float* dskip;      // (G, H), nullptr when skip is absent
  const float* kspec = nullptr;  // as in FftconvFwdArgs
  // With kspec: a result of kspec's shape that the caller aliases to it (XLA copies kspec first where it is
  // still needed afterwards), so the long backward's dk workspace reuses K''s memory once K' is read.
  float* kspec_ws = nullptr;
};

}  // namespace jff
