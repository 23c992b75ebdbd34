// Host-side helpers shared by the long-N self-tests (outer_selftest.cu, long_bwd_selftest.cu):
// checked CUDA calls (or their host versions under the CPU emulation), element-typed host
// buffers, rel-L2 accumulation and the PASS/FAIL line with its counters.
#pragma once

#ifdef JFF_LONG_EMU
#include "fftconv_long/emu.h"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/host_half.h"
#include "fftconv_long/outer_pass.cuh"

namespace {

using namespace jff::longconv;

#define CK(x)                                                                                              \
  do {                                                                                                     \
    cudaError_t e_ = (x);                                                                                  \
    if (e_ != cudaSuccess) {                                                                               \
      std::fprintf(stderr, "CUDA error %d (%s) at %s:%d\n", static_cast<int>(e_), err_name(e_), __FILE__, \
                   __LINE__);                                                                              \
      std::exit(2);                                                                                        \
    }                                                                                                      \
  } while (0)

#ifdef JFF_LONG_EMU
const char* err_name(cudaError_t) { return "emulated"; }
void* dev_alloc(size_t n) { return std::aligned_alloc(256, (std::max<size_t>(n, 1) + 255) / 256 * 256); }
void dev_free(void* p) { std::free(p); }
void up(void* d, const void* h, size_t n) { std::memcpy(d, h, n); }
void down(void* h, const void* d, size_t n) { std::memcpy(h, d, n); }
void poison(void* d, size_t n) { std::memset(d, 0xFF, n); }
void sync() {}
#else
const char* err_name(cudaError_t e) { return cudaGetErrorName(e); }
void* dev_alloc(size_t n) {
  void* p = nullptr;
  CK(cudaMalloc(&p, std::max<size_t>(n, 1)));
  return p;
}
void dev_free(void* p) { CK(cudaFree(p)); }
void up(void* d, const void* h, size_t n) { CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice)); }
void down(void* h, const void* d, size_t n) { CK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); }
void poison(void* d, size_t n) { CK(cudaMemset(d, 0xFF, n)); }
void sync() { CK(cudaDeviceSynchronize()); }
#endif

// Host values in the element type (rounded to nearest even on set).
struct HostBuf {
  Elem e;
  std::vector<uint8_t> raw;
  HostBuf(Elem e_, size_t n) : e(e_), raw(n * elem_bytes(e_)) {}
  size_t size() const { return raw.size() / elem_bytes(e); }
  double get(size_t i) const {
    if (e == Elem::kF32) {
      float f;
      std::memcpy(&f, raw.data() + 4 * i, 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, raw.data() + 2 * i, 2);
    return e == Elem::kBF16 ? jff::host::BF16ToF32(h) : jff::host::F16ToF32(h);
  }
  void set(size_t i, double v) {
    const float f = static_cast<float>(v);
    if (e == Elem::kF32) {
      std::memcpy(raw.data() + 4 * i, &f, 4);
      return;
    }
    const uint16_t h = e == Elem::kBF16 ? jff::host::F32ToBF16(f) : jff::host::F32ToF16(f);
    std::memcpy(raw.data() + 2 * i, &h, 2);
  }
  bool is_nan(size_t i) const { return std::isnan(get(i)); }
};

const char* ename(Elem e) { return e == Elem::kF32 ? "f32" : (e == Elem::kBF16 ? "bf16" : "f16"); }

// One case of the long-N inner-step and backward self-tests: dtype, split N = N1 * N2, shape, filter groups
// (G groups, R batch entries per group), which gates, and a skip term (folded into the filter slices).
struct LongCase {
  Elem e;
  int N1;
  int64_t N2, B, H, L, Lk, G, R;
  bool pre, post, skip;
};

inline std::string long_case_name(const LongCase& c) {
  char b[220];
  std::snprintf(b, sizeof b, "%s N1=%d N2=%lld B=%lld H=%lld L=%lld Lk=%lld G=%lld R=%lld%s%s%s", ename(c.e), c.N1,
                static_cast<long long>(c.N2), static_cast<long long>(c.B), static_cast<long long>(c.H),
                static_cast<long long>(c.L), static_cast<long long>(c.Lk), static_cast<long long>(c.G),
                static_cast<long long>(c.R), c.pre ? " pre" : "", c.post ? " post" : "", c.skip ? " skip" : "");
  return b;
}

struct ErrAcc {
  double num = 0, den = 0;
  int64_t nan = 0;
  void add(double got, double want) {
    if (std::isnan(got)) {
      ++nan;
      return;
    }
    num += (got - want) * (got - want);
    den += want * want;
  }
  double rel() const { return nan ? INFINITY : std::sqrt(num / (den > 0 ? den : 1e-300)); }
};

int g_fail = 0, g_cases = 0;

void line(bool ok, const std::string& what, const std::string& detail) {
  ++g_cases;
  if (!ok) ++g_fail;
  std::printf("%s %-62s %s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.c_str());
  std::fflush(stdout);
}

#ifndef JFF_LONG_EMU
__global__ void fill_kernel(uint16_t* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t x = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    // bf16 / fp16 bit patterns of moderate numbers: sign, exponent near 1, random mantissa
    p[i] = static_cast<uint16_t>(0x3C00u | (x & 0x03FFu) | ((x >> 16) & 0x8000u));
  }
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ms (median of `reps` after warm-up) of fn() on the default stream.
template <typename F>
double time_ms(F&& fn, int reps) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < 3; ++i) fn();
  CK(cudaDeviceSynchronize());
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(e0));
    fn();
    CK(cudaEventRecord(e1));
    CK(cudaEventSynchronize(e1));
    float ms;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(ms);
  }
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return median(t);
}
#endif

}  // namespace
