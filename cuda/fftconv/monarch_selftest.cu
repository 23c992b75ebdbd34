// Standalone check and benchmark of the tensor-core fftconv forward (monarch_fwd.cu).
//
//   nvcc -std=c++17 -O2 -Icuda -I<jaxlib>/include cuda/fftconv/monarch_selftest.cu \
//        cuda/fftconv/monarch_fwd.cu -o monarch_selftest
//   ./monarch_selftest            correctness cases, then the timed workload table
//   ./monarch_selftest --small    small correctness cases only (for compute-sanitizer)
//
// Accuracy: rel-L2 of y against a float64 FFT convolution of the same (rounded) inputs,
// fresh random data per case. y is poisoned (all bits set: a NaN in fp16 and bf16) before
// every run and every element is checked to have been written. Each case runs twice and
// the two outputs must be bitwise equal. Timing: CUDA events around each call, median over
// many calls rotating over several input sets (so L2 holds none of them), next to a
// device-to-device copy measured in the same process for the HBM floor.
#include <cuda_fp16.h>
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

#include "fftconv/monarch.h"

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
uint16_t f2bf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float bf2f(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f2h(float f) {
  // Through the CUDA host conversion would need cuda_fp16.h host paths; do it by hand.
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    uint32_t r = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) ++r;
  return static_cast<uint16_t>(sign | r);
}
float h2f(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400u));
      u = sign | ((127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    u = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t to16(DType t, float f) { return t == DType::kBF16 ? f2bf(f) : f2h(f); }
float from16(DType t, uint16_t h) { return t == DType::kBF16 ? bf2f(h) : h2f(h); }

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
void fft(std::vector<cd>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    const double ang = 2 * M_PI / static_cast<double>(len) * (inverse ? 1 : -1);
    for (size_t i = 0; i < n; i += len)
      for (size_t j = 0; j < len / 2; ++j) {
        const cd w = std::polar(1.0, ang * static_cast<double>(j));
        const cd x = a[i + j], y = a[i + j + len / 2] * w;
        a[i + j] = x + y;
        a[i + j + len / 2] = x - y;
      }
  }
  if (inverse)
    for (auto& x : a) x /= static_cast<double>(n);
}

struct Case {
  const char* name;
  DType dt;
  int64_t B, H, L, Lk, N, G, R;
  bool pre, post, skip;
  bool timed;
};

// Fills a 16-bit device buffer with random values in [-1, 1) (timing sets beyond the first).
__global__ void fill_random16(uint16_t* p, int64_t n, uint64_t seed, int is_bf16) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t x = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const float f = static_cast<float>((x >> 40) * (1.0 / 16777216.0)) * 2.f - 1.f;
    uint32_t u = __float_as_uint(f);
    if (is_bf16) {
      p[i] = static_cast<uint16_t>(u >> 16);
    } else {
      p[i] = __half_as_ushort(__float2half_rn(f));
    }
  }
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Result {
  double rel_l2, max_abs;
  int64_t unwritten;
  bool deterministic;
  double ms;
};

Result run_case(const Case& c, double copy_bw, uint64_t seed) {
  Result res{0, 0, 0, true, 0};
  const int64_t elems = c.B * c.H * c.L;
  const int64_t kelems = c.G * c.H * c.Lk;
  Rng rng(seed);
  std::vector<uint16_t> hu(elems), hpre(c.pre ? elems : 0), hpost(c.post ? elems : 0);
  for (auto& x : hu) x = to16(c.dt, rng.uni());
  // Gates away from zero so the check cannot hide errors in z behind tiny factors.
  for (auto& x : hpre) x = to16(c.dt, 0.5f + 0.5f * std::fabs(rng.uni()) * (rng.uni() < 0 ? -1.f : 1.f));
  for (auto& x : hpost) x = to16(c.dt, 0.5f + rng.uni() * 0.4f);
  std::vector<float> hk(kelems), hskip(c.skip ? c.G * c.H : 0);
  for (auto& x : hk) x = rng.uni() / std::sqrt(static_cast<float>(c.Lk) / 4.f);
  for (auto& x : hskip) x = rng.uni();

  jff::FftconvDims d{c.dt, jff::kBHL, c.B, c.H, c.L, c.G, c.Lk, c.R, c.N};
  cudaDeviceProp prop;
  int dev;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  if (!jff::monarch_fwd_supported(d, prop.major, prop.sharedMemPerBlockOptin)) {
    std::printf("%-28s NOT SUPPORTED\n", c.name);
    res.rel_l2 = -1;
    return res;
  }

  const int nsets = c.timed ? 3 : 1;
  const size_t bytes = elems * 2;
  std::vector<uint16_t*> du(nsets), dpre(nsets, nullptr), dpost(nsets, nullptr);
  for (int s = 0; s < nsets; ++s) {
    CK(cudaMalloc(&du[s], bytes));
    if (c.pre) CK(cudaMalloc(&dpre[s], bytes));
    if (c.post) CK(cudaMalloc(&dpost[s], bytes));
    if (s == 0) {
      CK(cudaMemcpy(du[0], hu.data(), bytes, cudaMemcpyHostToDevice));
      if (c.pre) CK(cudaMemcpy(dpre[0], hpre.data(), bytes, cudaMemcpyHostToDevice));
      if (c.post) CK(cudaMemcpy(dpost[0], hpost.data(), bytes, cudaMemcpyHostToDevice));
    } else {
      const int isbf = c.dt == DType::kBF16;
      fill_random16<<<1024, 256>>>(du[s], elems, seed * 31 + s, isbf);
      CK(cudaGetLastError());
      if (c.pre) {
        fill_random16<<<1024, 256>>>(dpre[s], elems, seed * 37 + s, isbf);
        CK(cudaGetLastError());
      }
      if (c.post) {
        fill_random16<<<1024, 256>>>(dpost[s], elems, seed * 41 + s, isbf);
        CK(cudaGetLastError());
      }
    }
  }
  float *dk, *dskip = nullptr;
  uint16_t* dy;
  CK(cudaMalloc(&dk, kelems * 4));
  CK(cudaMemcpy(dk, hk.data(), kelems * 4, cudaMemcpyHostToDevice));
  if (c.skip) {
    CK(cudaMalloc(&dskip, c.G * c.H * 4));
    CK(cudaMemcpy(dskip, hskip.data(), c.G * c.H * 4, cudaMemcpyHostToDevice));
  }
  CK(cudaMalloc(&dy, bytes));
  const size_t sbytes = jff::monarch_fwd_scratch_bytes(d);
  void* scratch;
  CK(cudaMalloc(&scratch, sbytes));

  auto args_for = [&](int s) {
    jff::FftconvFwdArgs a;
    a.d = d;
    a.u = du[s];
    a.k = dk;
    a.pre = dpre[s];
    a.post = dpost[s];
    a.skip = dskip;
    a.y = dy;
    return a;
  };

  // Two poisoned runs on set 0: written-everywhere check and bitwise determinism.
  std::vector<uint16_t> hy(elems), hy2(elems);
  for (int rep = 0; rep < 2; ++rep) {
    CK(cudaMemset(dy, 0xff, bytes));
    CK(jff::monarch_fwd(args_for(0), 0, scratch, sbytes));
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(rep == 0 ? hy.data() : hy2.data(), dy, bytes, cudaMemcpyDeviceToHost));
  }
  res.deterministic = std::memcmp(hy.data(), hy2.data(), bytes) == 0;
  for (int64_t i = 0; i < elems; ++i) {
    const float f = from16(c.dt, hy[i]);
    if (hy[i] == 0xffff || !std::isfinite(f)) ++res.unwritten;
  }

  // Reference on all rows of small cases, a random sample of large ones.
  std::vector<int64_t> rows;
  const int64_t nrows = c.B * c.H;
  if (nrows <= 512) {
    for (int64_t r = 0; r < nrows; ++r) rows.push_back(r);
  } else {
    rows.push_back(0);
    rows.push_back(1);
    rows.push_back(nrows - 1);
    for (int i = 0; i < 125; ++i) rows.push_back(static_cast<int64_t>(rng.next() % nrows));
  }
  double num = 0, den = 0, maxabs = 0;
  int64_t worst_row = -1, worst_t = -1;
  std::vector<cd> a(c.N), kf(c.N);
  for (int64_t row : rows) {
    const int64_t b = row / c.H, h = row % c.H, g = (b / c.R) % c.G;
    std::fill(kf.begin(), kf.end(), cd(0));
    for (int64_t j = 0; j < c.Lk; ++j) kf[j] = hk[(g * c.H + h) * c.Lk + j];
    fft(kf, false);
    std::fill(a.begin(), a.end(), cd(0));
    std::vector<double> v(c.L);
    for (int64_t t = 0; t < c.L; ++t) {
      const int64_t i = row * c.L + t;
      v[t] = static_cast<double>(from16(c.dt, hu[i])) * (c.pre ? from16(c.dt, hpre[i]) : 1.0);
      a[t] = v[t];
    }
    fft(a, false);
    for (int64_t f = 0; f < c.N; ++f) a[f] *= kf[f];
    fft(a, true);
    const double sk = c.skip ? hskip[g * c.H + h] : 0.0;
    for (int64_t t = 0; t < c.L; ++t) {
      const int64_t i = row * c.L + t;
      double ref = a[t].real() + sk * v[t];
      if (c.post) ref *= from16(c.dt, hpost[i]);
      const double got = from16(c.dt, hy[i]);
      const double e = got - ref;
      num += e * e;
      den += ref * ref;
      if (std::fabs(e) > maxabs || std::isnan(e)) {
        maxabs = std::fabs(e);
        worst_row = row;
        worst_t = t;
      }
    }
  }
  res.rel_l2 = std::sqrt(num / den);
  res.max_abs = maxabs;
  if (!(res.rel_l2 < 1e-1)) std::printf("    worst at row %lld t %lld\n", (long long)worst_row, (long long)worst_t);

  if (c.timed) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int w = 0; w < 5; ++w) CK(jff::monarch_fwd(args_for(w % nsets), 0, scratch, sbytes));
    std::vector<float> t;
    for (int it = 0; it < 30; ++it) {
      CK(cudaEventRecord(e0));
      CK(jff::monarch_fwd(args_for(it % nsets), 0, scratch, sbytes));
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      t.push_back(ms);
    }
    CK(cudaGetLastError());
    res.ms = median(t);
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
  }

  for (int s = 0; s < nsets; ++s) {
    CK(cudaFree(du[s]));
    if (dpre[s]) CK(cudaFree(dpre[s]));
    if (dpost[s]) CK(cudaFree(dpost[s]));
  }
  CK(cudaFree(dk));
  if (dskip) CK(cudaFree(dskip));
  CK(cudaFree(dy));
  CK(cudaFree(scratch));
  (void)copy_bw;
  return res;
}

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

int main(int argc, char** argv) {
  const bool small = argc > 1 && std::string(argv[1]) == "--small";
  // --only SUBSTR: run just the cases whose name contains SUBSTR (for ncu).
  const std::string only = argc > 2 && std::string(argv[1]) == "--only" ? argv[2] : "";
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, smem opt-in %zu B\n", prop.name, prop.multiProcessorCount,
              prop.sharedMemPerBlockOptin);
  const DType BF = DType::kBF16, HF = DType::kF16;
  std::vector<Case> cases = {
      // name, dtype, B, H, L, Lk, N, G, R, pre, post, skip, timed
      {"bf16 N256 full gated", BF, 3, 5, 256, 256, 256, 1, 1, true, true, true, false},
      {"bf16 N1024 full gated", BF, 3, 5, 1024, 1024, 1024, 1, 1, true, true, true, false},
      {"bf16 N1024 causal L=N/2", BF, 4, 3, 512, 512, 1024, 1, 1, true, true, true, false},
      {"bf16 N1024 L=200 Lk=37 G2R2", BF, 5, 3, 200, 37, 1024, 2, 2, true, false, true, false},
      {"bf16 N256 nogate noskip", BF, 2, 4, 256, 100, 256, 1, 1, false, false, false, false},
      {"bf16 N256 post only G3R4", BF, 9, 2, 136, 256, 256, 3, 4, false, true, false, false},
      {"fp16 N256 full gated", HF, 3, 5, 256, 256, 256, 1, 1, true, true, true, false},
      {"fp16 N1024 full gated", HF, 3, 5, 1024, 1024, 1024, 1, 1, true, true, true, false},
      {"fp16 N1024 causal", HF, 2, 3, 512, 512, 1024, 1, 1, true, true, false, false},
  };
  if (!small) {
    cases.push_back({"bf16 N256 B64 H768 gated", BF, 64, 768, 256, 256, 256, 1, 1, true, true, true, true});
    cases.push_back({"bf16 N1024 B64 H768 gated", BF, 64, 768, 1024, 1024, 1024, 1, 1, true, true, true, true});
    cases.push_back({"bf16 N1024 causal L512", BF, 64, 768, 512, 512, 1024, 1, 1, true, true, true, true});
    cases.push_back({"fp16 N1024 B64 H768 gated", HF, 64, 768, 1024, 1024, 1024, 1, 1, true, true, true, true});
  }
  const double bw = small ? 0 : measure_copy_bw();
  if (!small) std::printf("copy bandwidth (read+write): %.2f TB/s\n", bw / 1e12);
  bool ok = true;
  std::printf("%-30s %10s %10s %6s %6s %9s %9s %6s\n", "case", "rel_l2", "max_abs", "unwr", "det",
              "ms", "floor_ms", "ratio");
  uint64_t seed = 12345;
  for (const Case& c : cases) {
    if (!only.empty() && std::string(c.name).find(only) == std::string::npos) continue;
    Result r = run_case(c, bw, ++seed);
    if (r.rel_l2 < 0) continue;
    const double tol = c.dt == DType::kBF16 ? 1e-2 : 2e-3;
    const bool pass = r.rel_l2 <= tol && r.unwritten == 0 && r.deterministic;
    ok = ok && pass;
    const double floor_ms = 4.0 * c.B * c.H * c.L * 2 / bw * 1e3;
    if (c.timed)
      std::printf("%-30s %10.3e %10.3e %6lld %6s %9.4f %9.4f %6.2f %s\n", c.name, r.rel_l2, r.max_abs,
                  (long long)r.unwritten, r.deterministic ? "yes" : "NO", r.ms, floor_ms, r.ms / floor_ms,
                  pass ? "PASS" : "FAIL");
    else
      std::printf("%-30s %10.3e %10.3e %6lld %6s %9s %9s %6s %s\n", c.name, r.rel_l2, r.max_abs,
                  (long long)r.unwritten, r.deterministic ? "yes" : "NO", "-", "-", "-", pass ? "PASS" : "FAIL");
  }
  std::printf("%s\n", ok ? "ALL PASS" : "SOME FAILED");
  return ok ? 0 : 1;
}
