// Standalone check and benchmark of the tensor-core fftconv backward (monarch_bwd.cu).
//
//   nvcc -std=c++17 -O2 -Icuda -I<jaxlib>/include cuda/fftconv/monarch_bwd_selftest.cu \
//        cuda/fftconv/monarch_bwd.cu -o monarch_bwd_selftest
//   (add -DJFF_WITH_FWD cuda/fftconv/monarch_fwd.cu to time the forward next to it)
//   ./monarch_bwd_selftest            correctness cases, then the timed workload table
//   ./monarch_bwd_selftest --small    small correctness cases only (for compute-sanitizer)
//   ./monarch_bwd_selftest --only S   just the cases whose name contains S
//
// Accuracy: rel-L2 of each of du, dpre, dpost, dk, dskip against a float64 FFT reference
// computed from the same (rounded) inputs, fresh random data per case (never zeros). Every
// output is poisoned (all bits set: NaN in fp16, bf16 and float32) before every run and
// checked to have been written. Each case runs twice; all outputs must be bitwise equal.
// Timing: CUDA events around each call, median over many calls rotating over several input
// sets (so L2 holds none of them), next to a device-to-device copy measured in the same
// process for the HBM floor.
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

#include "fftconv/monarch_bwd.h"
#include "fftconv/monarch_selftest_util.h"
#ifdef JFF_WITH_FWD
#include "fftconv/monarch.h"
#endif

namespace {
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

// Accumulates ||got - ref||^2 and ||ref||^2.
struct Err {
  double num = 0, den = 0;
  void add(double got, double ref) {
    const double e = got - ref;
    num += std::isnan(e) ? 1e300 : e * e;
    den += ref * ref;
  }
  double rel() const { return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0); }
};

enum { kDu = 0, kDpre, kDpost, kDk, kDskip, kOuts };

struct Result {
  bool supported = true;
  double rel[kOuts] = {-1, -1, -1, -1, -1};  // -1: output absent in this case
  int64_t unwritten = 0;
  bool deterministic = true;
  bool checked = true;  // false: timed only (--time-only), no outputs checked
  double ms_bwd = 0, ms_fwd = -1;
};

// One case in `layout`. Inputs are generated in BHL order (timed cases: on the device, in the
// layout's order). Small BLH cases use the BHL case's data transposed, so both layouts check the same
// numbers. Host copies and results stay in the layout's order (no host transposes of the timed
// cases' ~GB arrays); the reference addresses them through `at`.
Result run_case(const Case& c, uint64_t seed, int32_t layout = jff::kBHL, bool time_only = false) {
  Result res;
  res.checked = !(c.timed && time_only);
  const bool blh = layout == jff::kBLH;
  const int64_t elems = c.B * c.H * c.L, helems = res.checked ? elems : 0;
  const int64_t kelems = c.G * c.H * c.Lk, gh = c.G * c.H;
  Rng rng(seed);
  std::vector<uint16_t> hu(helems), hdy(helems), hpre(c.pre ? helems : 0), hpost(c.post ? helems : 0);
  if (!c.timed) {
    for (auto& x : hu) x = to16(c.dt, rng.uni());
    for (auto& x : hdy) x = to16(c.dt, rng.uni());
    // Gates away from zero so the check cannot hide errors behind tiny factors.
    for (auto& x : hpre) x = to16(c.dt, 0.5f + 0.5f * std::fabs(rng.uni()) * (rng.uni() < 0 ? -1.f : 1.f));
    for (auto& x : hpost) x = to16(c.dt, 0.5f + rng.uni() * 0.4f);
  }
  std::vector<float> hk(kelems), hskip(c.skip ? gh : 0);
  for (auto& x : hk) x = rng.uni() / std::sqrt(static_cast<float>(c.Lk) / 4.f);
  for (auto& x : hskip) x = rng.uni();

  jff::FftconvDims d{c.dt, layout, c.B, c.H, c.L, c.G, c.Lk, c.R, c.N};
  cudaDeviceProp prop;
  int dev;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  if (!jff::monarch_bwd_supported(d, prop.major, prop.sharedMemPerBlockOptin)) {
    res.supported = false;
    return res;
  }

  const int nsets = c.timed ? 3 : 1;
  const size_t bytes = elems * 2;
  std::vector<uint16_t*> ddy(nsets), du(nsets), dpre(nsets, nullptr), dpost(nsets, nullptr);
  const int isbf = c.dt == DType::kBF16;
  // Small cases: set 0 from the host generator. Timed cases: every set generated on the device
  // (uniform in [-1, 1), never all zero), set 0 copied back for the reference.
  auto upload_or_fill = [&](uint16_t*& dst, std::vector<uint16_t>& host, int s, uint64_t salt) {
    CK(cudaMalloc(&dst, bytes));
    if (s == 0 && !c.timed) {
      if (blh) host = transposed(host, c.B, c.H, c.L);
      CK(cudaMemcpy(dst, host.data(), bytes, cudaMemcpyHostToDevice));
    } else {
      fill_random16<<<1024, 256>>>(dst, elems, seed * salt + s, isbf);
      CK(cudaGetLastError());
      if (s == 0 && res.checked) CK(cudaMemcpy(host.data(), dst, bytes, cudaMemcpyDeviceToHost));
    }
  };
  for (int s = 0; s < nsets; ++s) {
    upload_or_fill(ddy[s], hdy, s, 29);
    upload_or_fill(du[s], hu, s, 31);
    if (c.pre) upload_or_fill(dpre[s], hpre, s, 37);
    if (c.post) upload_or_fill(dpost[s], hpost, s, 41);
  }
  float *dk, *dskip = nullptr;
  CK(cudaMalloc(&dk, kelems * 4));
  CK(cudaMemcpy(dk, hk.data(), kelems * 4, cudaMemcpyHostToDevice));
  if (c.skip) {
    CK(cudaMalloc(&dskip, gh * 4));
    CK(cudaMemcpy(dskip, hskip.data(), gh * 4, cudaMemcpyHostToDevice));
  }
  // Outputs.
  uint16_t *o_du, *o_dpre = nullptr, *o_dpost = nullptr;
  float *o_dk, *o_dskip = nullptr;
  CK(cudaMalloc(&o_du, bytes));
  if (c.pre) CK(cudaMalloc(&o_dpre, bytes));
  if (c.post) CK(cudaMalloc(&o_dpost, bytes));
  CK(cudaMalloc(&o_dk, kelems * 4));
  if (c.skip) CK(cudaMalloc(&o_dskip, gh * 4));
  const size_t sbytes = jff::monarch_bwd_scratch_bytes(d);
  void* scratch;
  CK(cudaMalloc(&scratch, sbytes));

  auto args_for = [&](int s) {
    jff::FftconvBwdArgs a;
    a.d = d;
    a.dy = ddy[s];
    a.u = du[s];
    a.k = dk;
    a.pre = dpre[s];
    a.post = dpost[s];
    a.skip = dskip;
    a.du = o_du;
    a.dk = o_dk;
    a.dpre = o_dpre;
    a.dpost = o_dpost;
    a.dskip = o_dskip;
    return a;
  };

  if (res.checked) {
    // Two poisoned runs on set 0: written-everywhere check and bitwise determinism.
    std::vector<uint16_t> r_du[2], r_dpre[2], r_dpost[2];
    std::vector<float> r_dk[2], r_dskip[2];
    for (int rep = 0; rep < 2; ++rep) {
      CK(cudaMemset(o_du, 0xff, bytes));
      if (c.pre) CK(cudaMemset(o_dpre, 0xff, bytes));
      if (c.post) CK(cudaMemset(o_dpost, 0xff, bytes));
      CK(cudaMemset(o_dk, 0xff, kelems * 4));
      if (c.skip) CK(cudaMemset(o_dskip, 0xff, gh * 4));
      // Poison the scratch too: the slots must be fully written before they are read.
      CK(cudaMemset(scratch, 0xff, sbytes));
      CK(jff::monarch_bwd(args_for(0), 0, scratch, sbytes));
      CK(cudaGetLastError());
      CK(cudaDeviceSynchronize());
      r_du[rep].resize(elems);
      CK(cudaMemcpy(r_du[rep].data(), o_du, bytes, cudaMemcpyDeviceToHost));
      if (c.pre) {
        r_dpre[rep].resize(elems);
        CK(cudaMemcpy(r_dpre[rep].data(), o_dpre, bytes, cudaMemcpyDeviceToHost));
      }
      if (c.post) {
        r_dpost[rep].resize(elems);
        CK(cudaMemcpy(r_dpost[rep].data(), o_dpost, bytes, cudaMemcpyDeviceToHost));
      }
      r_dk[rep].resize(kelems);
      CK(cudaMemcpy(r_dk[rep].data(), o_dk, kelems * 4, cudaMemcpyDeviceToHost));
      if (c.skip) {
        r_dskip[rep].resize(gh);
        CK(cudaMemcpy(r_dskip[rep].data(), o_dskip, gh * 4, cudaMemcpyDeviceToHost));
      }
    }
    res.deterministic = r_du[0] == r_du[1] && r_dpre[0] == r_dpre[1] && r_dpost[0] == r_dpost[1] &&
                        std::memcmp(r_dk[0].data(), r_dk[1].data(), kelems * 4) == 0 &&
                        (!c.skip || std::memcmp(r_dskip[0].data(), r_dskip[1].data(), gh * 4) == 0);
    auto count16 = [&](const std::vector<uint16_t>& v) {
      for (uint16_t x : v)
        if (x == 0xffff || !std::isfinite(from16(c.dt, x))) ++res.unwritten;
    };
    count16(r_du[0]);
    count16(r_dpre[0]);
    count16(r_dpost[0]);
    for (float x : r_dk[0]) res.unwritten += !std::isfinite(x);
    for (float x : r_dskip[0]) res.unwritten += !std::isfinite(x);

    // Reference: all rows of small cases; for large ones every batch row of a few channels h
    // (dk and dskip need whole channels).
    std::vector<int64_t> hs;
    if (c.B * c.H <= 512) {
      for (int64_t h = 0; h < c.H; ++h) hs.push_back(h);
    } else {
      hs.push_back(0);
      hs.push_back(c.H - 1);
      for (int i = 0; i < 4; ++i) hs.push_back(static_cast<int64_t>(rng.next() % c.H));
    }
    Err err[kOuts];
    std::vector<cd> kf(c.N), V(c.N), Z(c.N), DZ(c.N), W(c.N);
    std::vector<double> v(c.L), dz(c.L), dkref(c.Lk);
    // dskip is few scalars per case: keep them, and the size of dk's lags, to judge a miss.
    std::vector<double> skip_got, skip_ref;
    double dk_ms = 0;
    int64_t dk_n = 0;
    for (int64_t h : hs) {
      for (int64_t g = 0; g < c.G; ++g) {
        std::fill(kf.begin(), kf.end(), cd(0));
        for (int64_t j = 0; j < c.Lk; ++j) kf[j] = hk[(g * c.H + h) * c.Lk + j];
        Fft(kf, false);
        const double sk = c.skip ? hskip[g * c.H + h] : 0.0;
        std::fill(dkref.begin(), dkref.end(), 0.0);
        double dskipref = 0;
        for (int64_t b = 0; b < c.B; ++b) {
          if ((b / c.R) % c.G != g) continue;
          // Element (b, h, t) in the layout's order.
          auto at = [&](int64_t t) { return blh ? (b * c.L + t) * c.H + h : (b * c.H + h) * c.L + t; };
          std::fill(V.begin(), V.end(), cd(0));
          std::fill(DZ.begin(), DZ.end(), cd(0));
          for (int64_t t = 0; t < c.L; ++t) {
            const int64_t i = at(t);
            v[t] = static_cast<double>(from16(c.dt, hu[i])) * (c.pre ? from16(c.dt, hpre[i]) : 1.0);
            dz[t] = static_cast<double>(from16(c.dt, hdy[i])) * (c.post ? from16(c.dt, hpost[i]) : 1.0);
            V[t] = v[t];
            DZ[t] = dz[t];
            dskipref += dz[t] * v[t];
          }
          Fft(V, false);
          Fft(DZ, false);
          for (int64_t f = 0; f < c.N; ++f) {
            Z[f] = V[f] * kf[f];
            W[f] = DZ[f] * std::conj(kf[f]);
          }
          Fft(Z, true);
          Fft(W, true);
          for (int64_t t = 0; t < c.L; ++t) {
            const int64_t i = at(t);
            const double dv = W[t].real() + sk * dz[t];
            const double pre_v = c.pre ? from16(c.dt, hpre[i]) : 1.0;
            err[kDu].add(from16(c.dt, r_du[0][i]), dv * pre_v);
            if (c.pre) err[kDpre].add(from16(c.dt, r_dpre[0][i]), dv * from16(c.dt, hu[i]));
            if (c.post) err[kDpost].add(from16(c.dt, r_dpost[0][i]), from16(c.dt, hdy[i]) * (Z[t].real() + sk * v[t]));
          }
          for (int64_t f = 0; f < c.N; ++f) W[f] = std::conj(V[f]) * DZ[f];
          Fft(W, true);
          for (int64_t j = 0; j < c.Lk; ++j) dkref[j] += W[j].real();
        }
        for (int64_t j = 0; j < c.Lk; ++j) err[kDk].add(r_dk[0][(g * c.H + h) * c.Lk + j], dkref[j]);
        if (c.skip) err[kDskip].add(r_dskip[0][g * c.H + h], dskipref);
        if (c.skip) {
          skip_got.push_back(r_dskip[0][g * c.H + h]);
          skip_ref.push_back(dskipref);
        }
        for (int64_t j = 0; j < c.Lk; ++j, ++dk_n) dk_ms += dkref[j] * dkref[j];
      }
    }
    res.rel[kDu] = err[kDu].rel();
    if (c.pre) res.rel[kDpre] = err[kDpre].rel();
    if (c.post) res.rel[kDpost] = err[kDpost].rel();
    res.rel[kDk] = err[kDk].rel();
    if (c.skip) res.rel[kDskip] = err[kDskip].rel();
    const double tol2 = c.dt == DType::kBF16 ? 2e-2 : 4e-3;
    if (c.skip && res.rel[kDskip] > tol2) {
      // Print the dskip values next to the rms of dk's lags (scale of the sums).
      std::printf("    dskip detail (rms of dk lags %.4g):", std::sqrt(dk_ms / std::max<int64_t>(dk_n, 1)));
      for (size_t i = 0; i < skip_got.size() && i < 8; ++i) std::printf(" [%.5g vs %.5g]", skip_got[i], skip_ref[i]);
      std::printf("\n");
    }
  }  // res.checked

  if (c.timed) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    auto time_it = [&](auto&& call) {
      for (int w = 0; w < 5; ++w) call(w % nsets);
      std::vector<float> t;
      for (int it = 0; it < 30; ++it) {
        CK(cudaEventRecord(e0));
        call(it % nsets);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        t.push_back(ms);
      }
      CK(cudaGetLastError());
      return median(t);
    };
    res.ms_bwd = time_it([&](int s) { CK(jff::monarch_bwd(args_for(s), 0, scratch, sbytes)); });
#ifdef JFF_WITH_FWD
    if (jff::monarch_fwd_supported(d, prop.major, prop.sharedMemPerBlockOptin)) {
      const size_t fbytes = jff::monarch_fwd_scratch_bytes(d);
      void* fscratch;
      uint16_t* y;
      CK(cudaMalloc(&fscratch, fbytes));
      CK(cudaMalloc(&y, bytes));
      res.ms_fwd = time_it([&](int s) {
        jff::FftconvFwdArgs a;
        a.d = d;
        a.u = du[s];
        a.k = dk;
        a.pre = dpre[s];
        a.post = dpost[s];
        a.skip = dskip;
        a.y = y;
        CK(jff::monarch_fwd(a, 0, fscratch, fbytes));
      });
      CK(cudaFree(fscratch));
      CK(cudaFree(y));
    }
#endif
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
  }

  for (int s = 0; s < nsets; ++s) {
    CK(cudaFree(ddy[s]));
    CK(cudaFree(du[s]));
    if (dpre[s]) CK(cudaFree(dpre[s]));
    if (dpost[s]) CK(cudaFree(dpost[s]));
  }
  CK(cudaFree(dk));
  if (dskip) CK(cudaFree(dskip));
  CK(cudaFree(o_du));
  if (o_dpre) CK(cudaFree(o_dpre));
  if (o_dpost) CK(cudaFree(o_dpost));
  CK(cudaFree(o_dk));
  if (o_dskip) CK(cudaFree(o_dskip));
  CK(cudaFree(scratch));
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  const SelftestArgs args(argc, argv);
  const bool small = args.small;
  // Line-buffered even into a log file, so a run cut off by a time limit keeps its finished rows.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, smem opt-in %zu B\n", prop.name, prop.multiProcessorCount,
              prop.sharedMemPerBlockOptin);
  const DType BF = DType::kBF16, HF = DType::kF16;
  std::vector<Case> cases = {
      // name, dtype, B, H, L, Lk, N, G, R, pre, post, skip, timed
      {"bf16 N256 full gated B3", BF, 3, 5, 256, 256, 256, 1, 1, true, true, true, false},
      {"bf16 N1024 full gated B3", BF, 3, 5, 1024, 1024, 1024, 1, 1, true, true, true, false},
      {"bf16 N1024 causal L=N/2", BF, 4, 3, 512, 512, 1024, 1, 1, true, true, true, false},
      {"bf16 N1024 L200 Lk37 G2R2 pre", BF, 5, 3, 200, 37, 1024, 2, 2, true, false, true, false},
      {"bf16 N256 nogate noskip", BF, 2, 4, 256, 100, 256, 1, 1, false, false, false, false},
      {"bf16 N256 post only G3R4", BF, 9, 2, 136, 256, 256, 3, 4, false, true, false, false},
      {"bf16 N256 G3R2 empty group", BF, 4, 2, 256, 64, 256, 3, 2, true, true, true, false},
      {"bf16 N1024 G2R6 chunks", BF, 12, 2, 1024, 300, 1024, 2, 6, true, true, true, false},
      {"bf16 N256 B40 3 chunks", BF, 40, 3, 248, 256, 256, 1, 1, true, true, true, false},
      {"bf16 N1024 B4 H64 (64 dskip)", BF, 4, 64, 1024, 1024, 1024, 1, 1, true, true, true, false},
      {"bf16 N256 B6 H64 G2R2 (128)", BF, 6, 64, 256, 128, 256, 2, 2, true, true, true, false},
      {"fp16 N256 full gated", HF, 3, 5, 256, 256, 256, 1, 1, true, true, true, false},
      {"fp16 N1024 full gated", HF, 3, 5, 1024, 1024, 1024, 1, 1, true, true, true, false},
      {"fp16 N1024 causal noskip", HF, 2, 3, 512, 512, 1024, 1, 1, true, true, false, false},
      {"fp16 N1024 B37 chunks", HF, 37, 2, 1024, 1024, 1024, 1, 1, true, true, true, false},
      // any L at N = 256/1024: the big kernel with N0 = 1 (scalar tails)
      {"bf16 N256 L201 odd", BF, 3, 2, 201, 56, 256, 1, 1, true, true, true, false},
      {"fp16 N1024 L999 odd B13", HF, 13, 2, 999, 25, 1024, 1, 1, true, true, true, false},
      // N = N0 * M: 512 = 2x256, 2048 = 2x1024, 4096 = 16x256, 8192 = 32x256, 16384 = 16x1024, 32768 = 32x1024
      {"bf16 N512 full gated", BF, 3, 3, 512, 512, 512, 1, 1, true, true, true, false},
      {"fp16 N512 causal B9", HF, 9, 2, 256, 256, 512, 1, 1, true, true, true, false},
      {"bf16 N512 L301 odd G2R2 pre", BF, 5, 2, 301, 120, 512, 2, 2, true, false, true, false},
      {"bf16 N2048 full gated", BF, 3, 3, 2048, 2048, 2048, 1, 1, true, true, true, false},
      {"bf16 N2048 L1501 odd G2R2 pre", BF, 5, 2, 1501, 300, 2048, 2, 2, true, false, true, false},
      {"fp16 N2048 causal", HF, 2, 2, 1024, 1024, 2048, 1, 1, true, true, true, false},
      {"bf16 N4096 full gated", BF, 3, 3, 4096, 4096, 4096, 1, 1, true, true, true, false},
      {"fp16 N4096 full gated B9", HF, 9, 2, 4096, 4096, 4096, 1, 1, true, true, true, false},
      {"bf16 N4096 L3001 nogate noskip", BF, 3, 2, 3001, 1000, 4096, 1, 1, false, false, false, false},
      {"fp16 N4096 L1000 post G3R2", HF, 7, 2, 1000, 4096, 4096, 3, 2, false, true, true, false},
      {"bf16 N8192 full gated", BF, 3, 2, 8192, 8192, 8192, 1, 1, true, true, true, false},
      {"fp16 N8192 causal", HF, 2, 2, 4096, 4096, 8192, 1, 1, true, true, true, false},
      {"bf16 N16384 full gated", BF, 3, 2, 16384, 16384, 16384, 1, 1, true, true, true, false},
      {"fp16 N16384 causal", HF, 2, 2, 8192, 8192, 16384, 1, 1, true, true, true, false},
      {"bf16 N32768 full gated", BF, 3, 2, 32768, 32768, 32768, 1, 1, true, true, true, false},
      {"fp16 N32768 full gated", HF, 3, 2, 32768, 32768, 32768, 1, 1, true, true, true, false},
      {"bf16 N32768 L20001 G2R2", BF, 5, 1, 20001, 777, 32768, 2, 2, true, true, true, false},
      // gated without skip at RAD = 32, L odd (element-wise loads): the JAX table's workload's element passes
      {"bf16 N16384 L9001 noskip", BF, 3, 1, 9001, 9001, 16384, 1, 1, true, true, false, false},
      // one or two chunks per channel under JFF_MONARCH_BWD_SLOT_CAP_MB=1: with JFF_MONARCH_BWD_GRID=3 and
      // JFF_MONARCH_BWD_TAIL=1 the last items go in balanced ranges split across workers (make emulate); the
      // third has fewer tail pairs than workers (empty ranges), the fourth two chunks per channel
      {"bf16 N16384 B5 H8 tail", BF, 5, 8, 16384, 16384, 16384, 1, 1, true, true, true, false},
      {"fp16 N32768 B6 H4 L20001 tail", HF, 6, 4, 20001, 20001, 32768, 1, 1, true, true, false, false},
      {"bf16 N8192 B2 H4 L5000 tail", BF, 2, 4, 5000, 5000, 8192, 1, 1, true, true, true, false},  // 1 pair, 3 CTAs
      {"bf16 N4096 B8 H16 L3001 tail", BF, 8, 16, 3001, 3001, 4096, 1, 1, true, true, true, false},  // 2 chunks of 2
      // H a multiple of 8 at N >= 4096 (BLH: cluster tiles with 16-byte head groups)
      {"bf16 N4096 B2 H16 L3001", BF, 2, 16, 3001, 3001, 4096, 1, 1, true, true, true, false},
      {"fp16 N8192 B3 H8 causal", HF, 3, 8, 4096, 4096, 8192, 1, 1, true, true, true, false},
  };
  if (!small) {
    // Timed workload: B=64, H=768, gated + skip, L = N (the issue's bar), Lk = L.
    static std::vector<std::string> names;  // keeps the c_str()s alive
    names.reserve(32);
    for (int64_t n : {256, 512, 1024, 2048, 4096, 8192, 16384, 32768}) {
      names.push_back("T bf16 N" + std::to_string(n) + " L=N");
      cases.push_back({names.back().c_str(), BF, 64, 768, n, n, n, 1, 1, true, true, true, true});
    }
    // The issue-3 table's workload through JAX (gated, no skip: pass 2 then reads dy and post alone), L = N and
    // causal (L = N/2).
    for (int64_t n : {1024, 4096, 8192, 16384, 32768}) {
      names.push_back("T bf16 N" + std::to_string(n) + " noskip");
      cases.push_back({names.back().c_str(), BF, 64, 768, n, n, n, 1, 1, true, true, false, true});
      names.push_back("T bf16 N" + std::to_string(n) + " causal noskip");
      cases.push_back({names.back().c_str(), BF, 64, 768, n / 2, n / 2, n, 1, 1, true, true, false, true});
    }
    cases.push_back({"T fp16 N4096 L=N", HF, 64, 768, 4096, 4096, 4096, 1, 1, true, true, true, true});
    cases.push_back({"T fp16 N32768 L=N", HF, 64, 768, 32768, 32768, 32768, 1, 1, true, true, true, true});
    cases.push_back({"T bf16 N1024 L=1020 (odd)", BF, 64, 768, 1020, 1020, 1024, 1, 1, true, true, true, true});
  }
  const double bw = small ? 0 : measure_copy_bw();
  if (!small) std::printf("copy bandwidth (read+write): %.2f TB/s\n", bw / 1e12);
  bool ok = true;
  std::printf("%-32s %9s %9s %9s %9s %9s %5s %4s %8s %8s %8s %6s %6s\n", "case", "du", "dpre", "dpost",
              "dk", "dskip", "unwr", "det", "fwd_ms", "bwd_ms", "flr7_ms", "bwd/f", "f+b/f");
  uint64_t seed = 777;
  for (const Case& c0 : cases) {
   if (args.skip(c0.name)) continue;
   ++seed;
   // Each case in BHL, then (where the BLH backward is supported) in BLH on the same data.
   for (int32_t layout : {jff::kBHL, jff::kBLH}) {
    Case c = c0;
    std::string blh_name;
    if (layout == jff::kBLH) {
      blh_name = std::string("  BLH ") + c0.name;
      c.name = blh_name.c_str();
    }
    Result r = run_case(c, seed, layout, args.time_only);
    if (!r.supported) {
      if (layout == jff::kBHL) {
        std::printf("%-32s NOT SUPPORTED\n", c.name);
        ok = false;
      }
      continue;
    }
    const double tol = c.dt == DType::kBF16 ? 1e-2 : 2e-3;
    bool pass = r.unwritten == 0 && r.deterministic;
    char cols[kOuts][16];
    for (int o = 0; o < kOuts; ++o) {
      if (r.rel[o] < 0) {
        std::snprintf(cols[o], sizeof cols[o], "-");
        continue;
      }
      const double t = (o == kDk || o == kDskip) ? 2 * tol : tol;
      pass = pass && r.rel[o] <= t;
      std::snprintf(cols[o], sizeof cols[o], "%.2e", r.rel[o]);
    }
    ok = ok && (pass || !r.checked);
    std::printf("%-32s %9s %9s %9s %9s %9s %5lld %4s", c.name, cols[0], cols[1], cols[2], cols[3], cols[4],
                (long long)r.unwritten, !r.checked ? "-" : r.deterministic ? "yes" : "NO");
    if (c.timed) {
      // Backward streams: dy, u read, du written, plus pre (read) and dpre (written), post and dpost.
      const double streams = 3 + (c.pre ? 2 : 0) + (c.post ? 2 : 0);
      const double floor_ms = streams * c.B * c.H * c.L * 2 / bw * 1e3;
      char fwd[16], fb[16];
      std::snprintf(fwd, sizeof fwd, r.ms_fwd >= 0 ? "%.4f" : "-", r.ms_fwd);
      std::snprintf(fb, sizeof fb, r.ms_fwd >= 0 ? "%.2f" : "-", (r.ms_fwd + r.ms_bwd) / floor_ms);
      std::printf(" %8s %8.4f %8.4f %6.2f %6s", fwd, r.ms_bwd, floor_ms, r.ms_bwd / floor_ms, fb);
    }
    std::printf(" %s\n", !r.checked ? "TIMED" : pass ? "PASS" : "FAIL");
   }
  }
  std::printf("%s\n", ok ? "ALL PASS" : "SOME FAILED");
  return ok ? 0 : 1;
}
