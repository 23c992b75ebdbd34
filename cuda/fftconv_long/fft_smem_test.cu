// Check of the shared-memory fp32 FFT of the long path (inner::fft_smem in inner_pass.cuh: radix-16
// Stockham passes in registers plus one radix-2/4/8 pass), used by the filter spectra, the fp32 inner
// step and dk's kernels. Every size 16 .. 16384, forward and inverse, one transform or two in a row,
// at the fewest threads it allows and at the callers' 256 / 512, against a float64 FFT (common/host_fft.h).
//   GPU:       nvcc -std=c++17 -O3 -arch=sm_90a -Icuda -o /tmp/fft_smem_test cuda/fftconv_long/fft_smem_test.cu
//   emulated:  cuda/fftconv_long/emu_build.sh /tmp/fft_smem_emu cuda/fftconv_long/fft_smem_test.cu
#include "fftconv_long/selftest_util.h"  // first: under the emulation, emu.h precedes all kernel code
#include "common/host_fft.h"
#include "fftconv_long/inner_pass.cuh"

namespace {

using namespace jff::longconv;
using cd = std::complex<double>;

template <int NA>
__global__ void __launch_bounds__(1024) fft_kernel(float2* data, int n, bool inverse) {
  JFF_DYN_SMEM(float2, z);
  for (int i = threadIdx.x; i < NA * n; i += blockDim.x) z[i] = data[i];
  __syncthreads();
  // NA = 2: two transforms in a row on one CTA's shared memory (as dk's spectrum kernel runs them).
  for (int a = 0; a < NA; ++a) inner::fft_smem(z + a * n, n, inverse, threadIdx.x, blockDim.x);
  for (int i = threadIdx.x; i < NA * n; i += blockDim.x) data[i] = z[i];
}

template <int NA>
bool run_case(int n, int nth, bool inverse, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<float2> h(static_cast<size_t>(NA) * n);
  for (float2& v : h) v = make_float2(nd(rng), nd(rng));
  float2* d = static_cast<float2*>(dev_alloc(h.size() * sizeof(float2)));
  up(d, h.data(), h.size() * sizeof(float2));
  const size_t smem = h.size() * sizeof(float2);
  auto kern = fft_kernel<NA>;
  CK(detail::set_smem(kern, smem));
  JFF_LAUNCH(kern, dim3(1), dim3(nth), smem, nullptr, d, n, inverse);
  CK(detail::last_error());
  std::vector<float2> out(h.size());
  down(out.data(), d, h.size() * sizeof(float2));
  dev_free(d);
  double worst = 0;
  for (int a = 0; a < NA; ++a) {
    std::vector<cd> x(n);
    for (int i = 0; i < n; ++i) x[i] = cd(h[a * n + i].x, h[a * n + i].y);
    jff::host::Fft(x, inverse);
    if (inverse)  // jff::host::Fft scales its inverse by 1/n; fft_smem does not scale
      for (cd& v : x) v *= static_cast<double>(n);
    double num = 0, den = 0;
    for (int i = 0; i < n; ++i) {
      num += std::norm(cd(out[a * n + i].x, out[a * n + i].y) - x[i]);
      den += std::norm(x[i]);
    }
    worst = std::max(worst, std::sqrt(num / den));  // a NaN (unwritten) makes this NaN: fails below
  }
  const bool ok = worst <= 1e-6;
  char b[160];
  std::snprintf(b, sizeof b, "fft_smem n=%5d arrays=%d threads=%4d %s", n, NA, nth, inverse ? "inverse" : "forward");
  char e[64];
  std::snprintf(e, sizeof e, "rel-L2 %.2e (bar 1e-6)", worst);
  line(ok, b, e);
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(12345);
  for (int n = 16; n <= 16384; n *= 2) {
    for (bool inverse : {false, true}) {
      // Thread counts: the fewest the FFT allows (n / values per thread; the emulation needs whole
      // warps), and the callers' 256 and 512 where they are enough.
      const int min1 = n / inner::kFftValsPerThread;
      for (int nth : {std::max(32, min1), 256, 512})
        if (nth >= min1 && nth <= 1024) {
          run_case<1>(n, nth, inverse, rng);
          if (n <= 8192) run_case<2>(n, nth, inverse, rng);
        }
    }
  }
  std::printf(g_fail ? "FAILED %d of %d\n" : "ALL PASS (%d of %d)\n", g_fail ? g_fail : g_cases, g_cases);
  return g_fail ? 1 : 0;
}
