// Host-side pieces shared by the tensor-core fftconv self-tests (monarch_selftest.cu,
// monarch_bwd_selftest.cu): a checked-CUDA-call macro, 16-bit conversions done by hand
// (round to nearest even), a small RNG, a float64 reference FFT and the median of timings.
// Included by those test programs only, each a single translation unit.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/host_fft.h"
#include "common/host_half.h"
#include "fftconv/fftconv_args.h"

#define CK(x)                                                                        \
  do {                                                                               \
    cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                         \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, \
                   __LINE__, cudaGetErrorString(e_));                                \
      std::exit(2);                                                                  \
    }                                                                                \
  } while (0)

using jff::DType;
using cd = std::complex<double>;

namespace {

// ---- 16-bit conversions (round to nearest even) ----
uint16_t to16(DType t, float f) { return t == DType::kBF16 ? jff::host::F32ToBF16(f) : jff::host::F32ToF16(f); }
float from16(DType t, uint16_t h) { return t == DType::kBF16 ? jff::host::BF16ToF32(h) : jff::host::F16ToF32(h); }

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float uni() { return static_cast<float>((next() >> 40) * (1.0 / 16777216.0)) * 2.f - 1.f; }
};

// ---- float64 reference ----
using jff::host::Fft;

// (B, R, C) -> (B, C, R) per batch row, on the host: BLH copies of BHL data ((B, H, L) -> (B, L, H)) and back.
std::vector<uint16_t> transposed(const std::vector<uint16_t>& x, int64_t B, int64_t R, int64_t C) {
  std::vector<uint16_t> y(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) y[(b * C + c) * R + r] = x[(b * R + r) * C + c];
  return y;
}

// The self-tests' flags: --small (the small correctness cases only, e.g. for compute-sanitizer) and
// --only SUBSTR (the cases whose name contains SUBSTR); the two combine. --time-only (the backward's self-test):
// the timed cases without their checks (A/B rounds after a checked one: a 32K row's checks take ~40 s).
struct SelftestArgs {
  bool small = false, time_only = false;
  std::string only;
  SelftestArgs(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--small") small = true;
      if (arg == "--time-only") time_only = true;
      if (arg == "--only" && i + 1 < argc) only = argv[++i];
    }
  }
  // --only A|B|...: the cases whose names contain one of the alternatives.
  bool skip(const char* name) const {
    if (only.empty()) return false;
    const std::string n(name);
    for (size_t start = 0;;) {
      const size_t bar = only.find('|', start);
      if (n.find(only.substr(start, bar == std::string::npos ? std::string::npos : bar - start)) != std::string::npos)
        return false;
      if (bar == std::string::npos) return true;
      start = bar + 1;
    }
  }
};

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device-to-device copy bandwidth, bytes read + written per second (the HBM floor's divisor).
double measure_copy_bw() {
  const size_t bytes = size_t(1) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  std::vector<float> t;
  for (int i = 0; i < 10; ++i) {
    CK(cudaEventRecord(e0));
    CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms);
  }
  CK(cudaFree(a));
  CK(cudaFree(b));
  return 2.0 * bytes / (median(t) * 1e-3);
}

}  // namespace
