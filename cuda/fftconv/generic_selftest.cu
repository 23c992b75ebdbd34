// Standalone check of the generic CUDA fftconv (generic_fft_kernels.cu) against a float64 CPU
// reference: forward and backward on fresh random inputs for many sizes, both layouts, all dtypes,
// gates, filter groups and forced chunking / four-step plans. Outputs and scratch are poisoned
// (NaN) before every run so an unwritten element fails; each run is repeated and must match bitwise.
//
// GPU build (one translation unit, no XLA library needed, only its headers):
//   nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
//        -I$(python -c "import jaxlib,os;print(os.path.dirname(jaxlib.__file__)+'/include')") -Icuda \
//        cuda/fftconv/generic_selftest.cu -o generic_selftest
//   ./generic_selftest [--quick] [--time] [--only SUBSTRING]
// CPU emulation (no GPU; each CUDA thread is a fiber, blocks run one after another; small sizes):
//   g++ -std=c++17 -O2 -x c++ -DJFF_GENERIC_HOST_EMULATION -I/usr/local/cuda/include -I<jaxlib include> \
//       -Icuda cuda/fftconv/generic_selftest.cu -o generic_selftest_emu
// Exit status 0 when every line says PASS.

#ifdef JFF_GENERIC_HOST_EMULATION
// ---------------------------------------------------------------------------------------------
// CPU emulation of the CUDA features the kernels use.
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <functional>
#include <vector>

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#undef __global__
#undef __device__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __shared__
#define __launch_bounds__(...)

namespace jff_emu {
constexpr size_t kMaxSmem = 227 * 1024;
struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
};
inline ucontext_t g_sched;
inline std::vector<Fiber> g_fibers;
inline int g_cur = 0;
inline uint3 g_block;
inline dim3 g_grid, g_bdim;
inline std::function<void()> g_body;
inline size_t g_max_smem_seen = 0;
inline uint3 Tid() { return make_uint3(static_cast<unsigned>(g_cur), 0, 0); }
inline void Trampoline() {
  g_body();
  g_fibers[g_cur].done = true;
}
inline void SyncThreads() { swapcontext(&g_fibers[g_cur].ctx, &g_sched); }
}  // namespace jff_emu

#define threadIdx (::jff_emu::Tid())
#define blockIdx (::jff_emu::g_block)
#define blockDim (::jff_emu::g_bdim)
#define gridDim (::jff_emu::g_grid)
#define __syncthreads() ::jff_emu::SyncThreads()

template <typename T>
inline T __ldg(const T* p) { return *p; }
inline float __uint_as_float(unsigned int u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline void sincospif(float x, float* s, float* c) {
  const double a = M_PI * static_cast<double>(x);
  *s = static_cast<float>(std::sin(a));
  *c = static_cast<float>(std::cos(a));
}
inline unsigned int __brev(unsigned int x) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }

// Dynamic shared memory of the block being emulated (blocks run one after another).
namespace jff {
namespace generic {
namespace {
alignas(16) unsigned char raw[jff_emu::kMaxSmem];
}
}  // namespace generic
}  // namespace jff

template <typename... KArgs, typename... Args>
void JffEmuLaunch(void (*kernel)(KArgs...), dim3 grid, size_t smem, int threads, Args... args) {
  using namespace jff_emu;
  if (smem > kMaxSmem) {
    std::fprintf(stderr, "emulation: %zu bytes of shared memory requested\n", smem);
    std::abort();
  }
  g_max_smem_seen = std::max(g_max_smem_seen, smem);
  g_grid = grid;
  g_bdim = dim3(threads);
  g_fibers.resize(threads);
  for (auto& f : g_fibers) f.stack.resize(256 * 1024);
  g_body = [&]() { kernel(static_cast<KArgs>(args)...); };
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        g_block = make_uint3(x, y, z);
        std::memset(jff::generic::raw, 0xFF, smem);  // NaN: reading unwritten shared memory shows
        for (int i = 0; i < threads; ++i) {
          Fiber& f = g_fibers[i];
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &g_sched;
          f.done = false;
          makecontext(&f.ctx, Trampoline, 0);
        }
        for (;;) {
          int alive = 0, finished_now = 0, waiting = 0;
          for (int i = 0; i < threads; ++i) {
            if (g_fibers[i].done) continue;
            ++alive;
            g_cur = i;
            swapcontext(&g_sched, &g_fibers[i].ctx);
            if (g_fibers[i].done) ++finished_now; else ++waiting;
          }
          if (alive == 0) break;
          if (waiting && finished_now) {
            std::fprintf(stderr, "emulation: divergent __syncthreads (%d waiting, %d exited)\n",
                         waiting, finished_now);
            std::abort();
          }
        }
      }
}

// The kernels' host code calls these runtime functions; the emulation needs no driver.
extern "C" cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
extern "C" cudaError_t cudaGetLastError(void) { return cudaSuccess; }
extern "C" const char* cudaGetErrorString(cudaError_t) { return "emulated"; }
#endif  // JFF_GENERIC_HOST_EMULATION

#include "fftconv/generic_fft_kernels.cu"

#include <algorithm>
#include <chrono>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/host_fft.h"
#include "common/host_half.h"

namespace {

using jff::DType;
using jff::FftconvBwdArgs;
using jff::FftconvDims;
using jff::FftconvFwdArgs;
using jff::kBHL;
using jff::kBLH;
namespace gen = jff::generic;

// ---------------------------------------------------------------------------------------------
// Device memory (host memory under emulation).

#ifdef JFF_GENERIC_HOST_EMULATION
void* DevAlloc(size_t n) { return std::malloc(std::max<size_t>(n, 1)); }
void DevFree(void* p) { std::free(p); }
void Up(void* d, const void* h, size_t n) { std::memcpy(d, h, n); }
void Down(void* h, const void* d, size_t n) { std::memcpy(h, d, n); }
void Poison(void* d, size_t n) { std::memset(d, 0xFF, n); }
bool Sync(std::string*) { return true; }
#else
#define CHECK_CUDA(x)                                                                 \
  do {                                                                                \
    cudaError_t e_ = (x);                                                             \
    if (e_ != cudaSuccess) {                                                          \
      std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, \
                   __LINE__);                                                         \
      std::exit(2);                                                                   \
    }                                                                                 \
  } while (0)
void* DevAlloc(size_t n) {
  void* p = nullptr;
  CHECK_CUDA(cudaMalloc(&p, std::max<size_t>(n, 1)));
  return p;
}
void DevFree(void* p) { CHECK_CUDA(cudaFree(p)); }
void Up(void* d, const void* h, size_t n) { CHECK_CUDA(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice)); }
void Down(void* h, const void* d, size_t n) { CHECK_CUDA(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost)); }
void Poison(void* d, size_t n) { CHECK_CUDA(cudaMemset(d, 0xFF, n)); }
bool Sync(std::string* msg) {
  cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) *msg = cudaGetErrorString(e);
  return e == cudaSuccess;
}
#endif

struct DevBuf {
  void* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t bytes) : p(bytes ? DevAlloc(bytes) : nullptr), n(bytes) {}
  ~DevBuf() {
    if (p) DevFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};

using jff::host::BF16ToF32;
using jff::host::F16ToF32;
using jff::host::F32ToBF16;
using jff::host::F32ToF16;

size_t ElemSize(DType t) { return t == DType::kF32 ? 4 : 2; }

// Activations are kept as the device bytes plus their exact float64 values.
struct Act {
  std::vector<unsigned char> bytes;
  std::vector<double> val;
};

Act MakeAct(DType t, size_t n, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  Act a;
  a.bytes.resize(n * ElemSize(t));
  a.val.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const float f = nd(rng);
    if (t == DType::kF32) {
      std::memcpy(&a.bytes[4 * i], &f, 4);
      a.val[i] = f;
    } else {
      const uint16_t h = t == DType::kF16 ? F32ToF16(f) : F32ToBF16(f);
      std::memcpy(&a.bytes[2 * i], &h, 2);
      a.val[i] = t == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
    }
  }
  return a;
}

std::vector<double> Decode(DType t, const std::vector<unsigned char>& b) {
  const size_t n = b.size() / ElemSize(t);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (t == DType::kF32) {
      float f;
      std::memcpy(&f, &b[4 * i], 4);
      out[i] = f;
    } else {
      uint16_t h;
      std::memcpy(&h, &b[2 * i], 2);
      out[i] = t == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// float64 reference.

using C = std::complex<double>;

using jff::host::Fft;

std::vector<C> Spectrum(const double* x, int64_t len, int64_t n) {
  std::vector<C> a(n, C(0, 0));
  for (int64_t i = 0; i < len; ++i) a[i] = x[i];
  Fft(a, false);
  return a;
}

struct Case {
  std::string label;
  int64_t N, L, Lk, B, H, G, R;
  int layout;
  DType dtype;
  bool pre, post, skip;
  gen::PlanOptions opts;
  bool direct_check = false;  // also compare the float64 FFT reference with a direct O(L*Lk) sum
};

double RelL2(const std::vector<double>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!(num == num)) return INFINITY;  // NaN: an element was never written
  return std::sqrt(num / (den > 0 ? den : 1.0));
}

double Tol(DType t) { return t == DType::kF32 ? 3e-5 : t == DType::kF16 ? 2e-3 : 1.5e-2; }
const char* Name(DType t) { return t == DType::kF32 ? "f32" : t == DType::kF16 ? "f16" : "bf16"; }

int g_fail = 0, g_pass = 0;

void Report(bool ok, const Case& c, const char* what, const std::string& detail) {
  (ok ? g_pass : g_fail)++;
  std::printf("%s %-5s %s N=%lld L=%lld Lk=%lld B=%lld H=%lld G=%lld R=%lld %s %s%s%s%s %s\n",
              ok ? "PASS" : "FAIL", what, c.label.c_str(), (long long)c.N, (long long)c.L,
              (long long)c.Lk, (long long)c.B, (long long)c.H, (long long)c.G, (long long)c.R,
              c.layout == kBHL ? "BHL" : "BLH", Name(c.dtype), c.pre ? " pre" : "",
              c.post ? " post" : "", c.skip ? " skip" : "", detail.c_str());
  std::fflush(stdout);
}

gen::DeviceProps g_props;

void RunCase(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t B = c.B, H = c.H, L = c.L, Lk = c.Lk, G = c.G, N = c.N;
  const size_t nact = static_cast<size_t>(B * H * L);
  const DType dt = c.dtype;
  Act u = MakeAct(dt, nact, rng), dy = MakeAct(dt, nact, rng);
  Act pre = c.pre ? MakeAct(dt, nact, rng) : Act{};
  Act post = c.post ? MakeAct(dt, nact, rng) : Act{};
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> k(static_cast<size_t>(G * H * Lk)), skip(c.skip ? G * H : 0);
  for (auto& x : k) x = nd(rng) / std::sqrt(static_cast<float>(Lk));
  for (auto& x : skip) x = nd(rng);

  auto at = [&](int64_t b, int64_t h, int64_t t) -> size_t {
    return static_cast<size_t>(c.layout == kBHL ? (b * H + h) * L + t : (b * L + t) * H + h);
  };

  // Reference, row by row, from the rounded inputs.
  std::vector<double> y_ref(nact), du_ref(nact), dpre_ref(c.pre ? nact : 0), dpost_ref(c.post ? nact : 0);
  std::vector<double> dk_ref(static_cast<size_t>(G * H * Lk), 0.0), dskip_ref(c.skip ? G * H : 0, 0.0);
  const int64_t n_ref = std::max<int64_t>(N, 2);
  std::map<int64_t, std::vector<C>> kspec;
  double direct_err = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t g = (b / c.R) % G;
    for (int64_t h = 0; h < H; ++h) {
      const int64_t f = g * H + h;
      std::vector<double> kd(k.begin() + f * Lk, k.begin() + (f + 1) * Lk);
      if (!kspec.count(f)) kspec[f] = Spectrum(kd.data(), Lk, n_ref);
      const std::vector<C>& K = kspec[f];
      std::vector<double> v(L), dz(L), uu(L);
      for (int64_t t = 0; t < L; ++t) {
        const size_t i = at(b, h, t);
        uu[t] = u.val[i];
        v[t] = u.val[i] * (c.pre ? pre.val[i] : 1.0);
        dz[t] = dy.val[i] * (c.post ? post.val[i] : 1.0);
      }
      std::vector<C> V = Spectrum(v.data(), L, n_ref), DZ = Spectrum(dz.data(), L, n_ref);
      std::vector<C> zc(n_ref), dvc(n_ref), cc(n_ref);
      auto mul = [](C a, C b) {
        return C(a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real());
      };
      for (int64_t i = 0; i < n_ref; ++i) {
        zc[i] = mul(V[i], K[i]);
        dvc[i] = mul(DZ[i], std::conj(K[i]));
        cc[i] = mul(DZ[i], std::conj(V[i]));
      }
      Fft(zc, true);
      Fft(dvc, true);
      Fft(cc, true);
      if (c.direct_check) {
        for (int64_t t = 0; t < L; ++t) {
          double s = 0;
          for (int64_t j = 0; j < Lk; ++j) {
            const int64_t src = ((t - j) % N + N) % N;
            if (src < L) s += kd[j] * v[src];
          }
          direct_err = std::max(direct_err, std::abs(s - zc[t].real()));
        }
      }
      const double sk = c.skip ? skip[f] : 0.0;
      for (int64_t t = 0; t < L; ++t) {
        const size_t i = at(b, h, t);
        const double z = zc[t].real();
        y_ref[i] = (z + sk * v[t]) * (c.post ? post.val[i] : 1.0);
        const double dv = dvc[t].real() + sk * dz[t];
        du_ref[i] = dv * (c.pre ? pre.val[i] : 1.0);
        if (c.pre) dpre_ref[i] = dv * uu[t];
        if (c.post) dpost_ref[i] = dy.val[i] * (z + sk * v[t]);
      }
      for (int64_t j = 0; j < Lk; ++j) dk_ref[f * Lk + j] += cc[j].real();
      if (c.skip)
        for (int64_t t = 0; t < L; ++t) dskip_ref[f] += dz[t] * v[t];
    }
  }
  if (c.direct_check && direct_err > 1e-9) {
    Report(false, c, "ref", "direct-sum vs float64 FFT reference differ by " + std::to_string(direct_err));
  }

  FftconvDims d;
  d.dtype = dt;
  d.layout = c.layout;
  d.B = B;
  d.H = H;
  d.L = L;
  d.G = G;
  d.Lk = Lk;
  d.R = c.R;
  d.N = N;
  const size_t abytes = nact * ElemSize(dt);
  DevBuf du_(abytes), dyd(abytes), dpre_d(c.pre ? abytes : 0), dpost_d(c.post ? abytes : 0);
  DevBuf ud(abytes), pred(c.pre ? abytes : 0), postd(c.post ? abytes : 0), yd(abytes);
  DevBuf kd(k.size() * 4), skipd(skip.size() * 4), dkd(k.size() * 4), dskipd(skip.size() * 4);
  Up(ud.p, u.bytes.data(), abytes);
  Up(dyd.p, dy.bytes.data(), abytes);
  if (c.pre) Up(pred.p, pre.bytes.data(), abytes);
  if (c.post) Up(postd.p, post.bytes.data(), abytes);
  Up(kd.p, k.data(), k.size() * 4);
  if (c.skip) Up(skipd.p, skip.data(), skip.size() * 4);

  char buf[256];
  // ---- forward
  {
    gen::Plan plan;
    auto st = gen::MakePlan(d, false, c.post, g_props, c.opts, &plan);
    if (st.failure()) {
      Report(false, c, "fwd", "plan failed: " + std::string(st.message()));
      return;
    }
    DevBuf scratch(plan.scratch_bytes);
    FftconvFwdArgs a;
    a.d = d;
    a.u = ud.p;
    a.k = static_cast<const float*>(kd.p);
    a.pre = pred.p;
    a.post = postd.p;
    a.skip = c.skip ? static_cast<const float*>(skipd.p) : nullptr;
    a.y = yd.p;
    std::vector<unsigned char> y1(abytes), y2(abytes);
    for (int rep = 0; rep < 2; ++rep) {
      Poison(yd.p, abytes);
      Poison(scratch.p, plan.scratch_bytes);
      auto e = gen::RunFwd(a, plan, scratch.p, 0);
      std::string msg;
      if (e.failure() || !Sync(&msg)) {
        Report(false, c, "fwd", "run failed: " + (e.failure() ? std::string(e.message()) : msg));
        return;
      }
      Down(rep ? y2.data() : y1.data(), yd.p, abytes);
    }
    const double err = RelL2(Decode(dt, y1), y_ref);
    const bool same = y1 == y2;
    std::snprintf(buf, sizeof buf, "err=%.2e tol=%.0e %s %s%s%s", err, Tol(dt),
                  same ? "deterministic" : "NONDETERMINISTIC", plan.fused ? "fused" : "four-step",
                  plan.nf < plan.filters || plan.jc < plan.rows_max ? " chunked" : "",
                  plan.staged ? " staged" : "");
    Report(err <= Tol(dt) && same, c, "fwd", buf);
  }
  // ---- backward
  {
    gen::Plan plan;
    auto st = gen::MakePlan(d, true, c.post, g_props, c.opts, &plan);
    if (st.failure()) {
      Report(false, c, "bwd", "plan failed: " + std::string(st.message()));
      return;
    }
    DevBuf scratch(plan.scratch_bytes);
    FftconvBwdArgs a;
    a.d = d;
    a.dy = dyd.p;
    a.u = ud.p;
    a.k = static_cast<const float*>(kd.p);
    a.pre = pred.p;
    a.post = postd.p;
    a.skip = c.skip ? static_cast<const float*>(skipd.p) : nullptr;
    a.du = du_.p;
    a.dk = static_cast<float*>(dkd.p);
    a.dpre = dpre_d.p;
    a.dpost = dpost_d.p;
    a.dskip = c.skip ? static_cast<float*>(dskipd.p) : nullptr;
    std::vector<unsigned char> out[2][5];
    const size_t sizes[5] = {abytes, k.size() * 4, c.pre ? abytes : 0, c.post ? abytes : 0,
                             skip.size() * 4};
    void* ptrs[5] = {du_.p, dkd.p, dpre_d.p, dpost_d.p, dskipd.p};
    for (int rep = 0; rep < 2; ++rep) {
      for (int i = 0; i < 5; ++i)
        if (sizes[i]) Poison(ptrs[i], sizes[i]);
      Poison(scratch.p, plan.scratch_bytes);
      auto e = gen::RunBwd(a, plan, scratch.p, 0);
      std::string msg;
      if (e.failure() || !Sync(&msg)) {
        Report(false, c, "bwd", "run failed: " + (e.failure() ? std::string(e.message()) : msg));
        return;
      }
      for (int i = 0; i < 5; ++i) {
        out[rep][i].resize(sizes[i]);
        if (sizes[i]) Down(out[rep][i].data(), ptrs[i], sizes[i]);
      }
    }
    bool same = true;
    for (int i = 0; i < 5; ++i) same = same && out[0][i] == out[1][i];
    auto f32 = [](const std::vector<unsigned char>& b) { return Decode(DType::kF32, b); };
    const double e_du = RelL2(Decode(dt, out[0][0]), du_ref);
    const double e_dk = RelL2(f32(out[0][1]), dk_ref);
    const double e_dpre = c.pre ? RelL2(Decode(dt, out[0][2]), dpre_ref) : 0.0;
    const double e_dpost = c.post ? RelL2(Decode(dt, out[0][3]), dpost_ref) : 0.0;
    const double e_dskip = c.skip ? RelL2(f32(out[0][4]), dskip_ref) : 0.0;
    const double tol = Tol(dt), tol32 = Tol(DType::kF32);
    const bool ok = e_du <= tol && e_dpre <= tol && e_dpost <= tol && e_dk <= tol32 &&
                    e_dskip <= tol32 && same;
    std::snprintf(buf, sizeof buf,
                  "du=%.2e dk=%.2e dpre=%.2e dpost=%.2e dskip=%.2e %s %s%s%s", e_du, e_dk, e_dpre,
                  e_dpost, e_dskip, same ? "deterministic" : "NONDETERMINISTIC",
                  plan.fused ? "fused" : "four-step",
                  plan.nf < plan.filters || plan.jc < plan.rows_max ? " chunked" : "",
                  plan.staged ? " staged" : "");
    Report(ok, c, "bwd", buf);
  }
}

Case Make(const char* label, int64_t N, int64_t L, int64_t Lk, int64_t B, int64_t H, int layout,
          DType dt, bool pre, bool post, bool skip) {
  Case c;
  c.label = label;
  c.N = N;
  c.L = L;
  c.Lk = Lk;
  c.B = B;
  c.H = H;
  c.G = 1;
  c.R = B;
  c.layout = layout;
  c.dtype = dt;
  c.pre = pre;
  c.post = post;
  c.skip = skip;
  c.direct_check = L * Lk <= 1 << 16;
  return c;
}

std::vector<Case> SmallCases() {
  std::vector<Case> v;
  const DType dts[3] = {DType::kF32, DType::kF16, DType::kBF16};
  // Every tiny size, causal and circular, both layouts.
  for (int64_t N : {1, 2, 4, 8, 16, 32, 64}) {
    for (int lay : {kBHL, kBLH}) {
      v.push_back(Make("tiny", N, N, 1, 2, 3, lay, DType::kF32, true, true, true));
      v.push_back(Make("tiny", N, std::max<int64_t>(1, N / 2), std::max<int64_t>(1, N / 2 + (N > 2)),
                       3, 1, lay, DType::kF32, false, true, false));
      v.push_back(Make("circ", N, N, N, 2, 2, lay, DType::kF32, true, false, true));
    }
  }
  for (int i = 0; i < 3; ++i) {
    v.push_back(Make("dtype", 256, 200, 57, 2, 3, kBHL, dts[i], true, true, true));
    v.push_back(Make("dtype", 256, 131, 256, 3, 2, kBLH, dts[i], false, true, true));
  }
  // Filter groups with uneven group sizes (B = 7, R = 2, G = 3 -> rows 3, 2, 2).
  Case g = Make("groups", 64, 50, 20, 7, 3, kBHL, DType::kF32, true, true, true);
  g.G = 3;
  g.R = 2;
  v.push_back(g);
  g.layout = kBLH;
  v.push_back(g);
  g.R = 100;  // R > B: everything in group 0
  v.push_back(g);
  // Forced chunking: tiny budget -> one filter and few rows per chunk.
  Case ch = g;
  ch.label = "chunked";
  ch.R = 1;
  ch.opts.scratch_budget = 4096;
  v.push_back(ch);
  ch.layout = kBHL;
  ch.opts.scratch_budget = 3000;
  ch.N = 128;
  ch.L = 100;
  ch.Lk = 29;
  v.push_back(ch);
  // Forced four-step at small sizes (direct-sum checkable), with and without chunking.
  for (int64_t N : {4, 8, 64, 512, 2048}) {
    for (int lay : {kBHL, kBLH}) {
      Case f = Make("four-step", N, N - N / 4, N / 2 + 1, 3, 2, lay, DType::kF32, true, true, true);
      f.opts.max_fused_log2m = -1;
      f.opts.max_log2n2 = N >= 512 ? 4 : 1;
      f.G = 2;
      f.R = 1;
      v.push_back(f);
      f.label = "four-step-circ";
      f.L = N;
      f.Lk = N;
      f.opts.scratch_budget = 1;  // minimum chunk
      v.push_back(f);
    }
  }
  Case f16 = Make("four-step", 1024, 1000, 300, 2, 3, kBLH, DType::kBF16, true, false, true);
  f16.opts.max_fused_log2m = -1;
  f16.opts.max_log2n2 = 5;
  v.push_back(f16);
  // BLH is staged through scratch by default; keep the direct strided path covered too.
  const size_t n = v.size();
  for (size_t i = 0; i < n; ++i) {
    if (v[i].layout != kBLH || v[i].label == "tiny" || v[i].label == "circ") continue;
    Case c = v[i];
    c.label = "strided-" + c.label;
    c.opts.stage_blh = false;
    v.push_back(c);
  }
  return v;
}

std::vector<Case> LargeCases() {
  std::vector<Case> v;
  const DType dts[3] = {DType::kF32, DType::kF16, DType::kBF16};
  int i = 0;
  for (int64_t N : {16, 256, 4096, 8192, 16384, 65536, 1 << 20}) {
    for (int lay : {kBHL, kBLH}) {
      const DType dt = dts[(i++) % 3];
      const int64_t B = N >= 65536 ? 2 : 3, H = N >= 65536 ? 1 : 3;
      v.push_back(Make("sweep", N, N / 2, N / 2, B, H, lay, dt, true, true, true));  // causal
      v.push_back(Make("sweep", N, N, N / 3 + 1, B, H, lay, DType::kF32, lay == kBHL, true, false));  // circular
    }
  }
  Case big = Make("sweep", 1 << 24, (1 << 24) - 5, 1 << 23, 1, 1, kBHL, DType::kF32, true, true, true);
  v.push_back(big);
  Case g = Make("groups", 65536, 40000, 3000, 5, 2, kBLH, DType::kBF16, true, true, true);
  g.G = 2;
  g.R = 2;
  v.push_back(g);
  Case ch = Make("chunked", 1 << 18, 200000, 70000, 3, 2, kBHL, DType::kF16, false, true, true);
  ch.opts.scratch_budget = 8 << 20;  // forces filter and row chunks at this size
  v.push_back(ch);
  ch.layout = kBLH;
  v.push_back(ch);
  Case st = Make("strided", 8192, 6000, 2000, 2, 5, kBLH, DType::kBF16, true, true, true);
  st.opts.stage_blh = false;
  v.push_back(st);
  st.N = 65536;
  st.L = 50000;
  v.push_back(st);
  return v;
}

#ifndef JFF_GENERIC_HOST_EMULATION
// Median time of `fn` over `iters` runs, after warm-up, with CUDA events.
template <typename Fn>
float TimeMs(Fn fn, int iters) {
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn();
  std::vector<float> t;
  for (int i = 0; i < iters; ++i) {
    CHECK_CUDA(cudaEventRecord(a));
    fn();
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK_CUDA(cudaEventDestroy(a));
  CHECK_CUDA(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void Timing() {
  // Copy bandwidth for the floor (bytes read + written).
  const size_t cb = size_t(1) << 30;
  DevBuf s(cb), t(cb);
  const float copy_ms = TimeMs([&] { CHECK_CUDA(cudaMemcpyAsync(t.p, s.p, cb, cudaMemcpyDeviceToDevice)); }, 10);
  const double bw = 2.0 * cb / (copy_ms * 1e-3);
  std::printf("TIME copy bandwidth %.0f GB/s\n", bw / 1e9);
  struct T {
    int64_t B, H, N;
    int layout;
    bool stage = true;
  };
  for (T c : {T{64, 768, 256, kBHL}, T{64, 768, 1024, kBHL}, T{64, 768, 4096, kBHL},
              T{64, 768, 8192, kBHL}, T{16, 768, 32768, kBHL}, T{4, 768, 262144, kBHL},
              T{64, 768, 1024, kBLH}, T{64, 768, 4096, kBLH}, T{16, 768, 32768, kBLH},
              T{64, 768, 4096, kBLH, false}}) {
    FftconvDims d;
    d.dtype = DType::kBF16;
    d.layout = c.layout;
    d.B = c.B;
    d.H = c.H;
    d.L = c.N;
    d.G = 1;
    d.Lk = c.N;
    d.R = c.B;
    d.N = c.N;
    const size_t n = size_t(c.B * c.H * c.N), ab = n * 2;
    DevBuf u(ab), pre(ab), post(ab), y(ab), dy(ab), du(ab), dpre(ab), dpost(ab);
    DevBuf k(size_t(c.H * c.N) * 4), dk(size_t(c.H * c.N) * 4), skip(c.H * 4), dskip(c.H * 4);
    for (DevBuf* b : {&u, &pre, &post, &dy}) CHECK_CUDA(cudaMemset(b->p, 0x3C, ab));  // 0x3C3C: a small non-zero bf16
    CHECK_CUDA(cudaMemset(k.p, 0, k.n));
    CHECK_CUDA(cudaMemset(skip.p, 0, skip.n));
    gen::Plan pf, pb;
    gen::PlanOptions opts;
    opts.stage_blh = c.stage;
    if (gen::MakePlan(d, false, true, g_props, opts, &pf).failure() ||
        gen::MakePlan(d, true, true, g_props, opts, &pb).failure()) {
      std::printf("TIME plan failed\n");
      continue;
    }
    DevBuf sf(pf.scratch_bytes), sb(pb.scratch_bytes);
    FftconvFwdArgs fa{d, u.p, static_cast<const float*>(k.p), pre.p, post.p,
                      static_cast<const float*>(skip.p), y.p};
    FftconvBwdArgs ba{d, dy.p, u.p, static_cast<const float*>(k.p), pre.p, post.p,
                      static_cast<const float*>(skip.p), du.p, static_cast<float*>(dk.p), dpre.p,
                      dpost.p, static_cast<float*>(dskip.p)};
    const float fwd = TimeMs([&] { (void)gen::RunFwd(fa, pf, sf.p, 0); }, 10);
    const float bwd = TimeMs([&] { (void)gen::RunBwd(ba, pb, sb.p, 0); }, 10);
    std::string msg;
    if (!Sync(&msg)) std::printf("TIME error %s\n", msg.c_str());
    const double floor_f = 4.0 * ab / bw * 1e3, floor_fb = 7.0 * ab / bw * 1e3;
    std::printf("TIME bf16 gated B=%lld H=%lld N=L=%lld %s %s%s: fwd %.3f ms (%.1fx floor %.3f), "
                "fwd+bwd %.3f ms (%.1fx floor %.3f)\n",
                (long long)c.B, (long long)c.H, (long long)c.N, c.layout == kBHL ? "BHL" : "BLH",
                pf.fused ? "fused" : "four-step", pf.staged ? " staged" : "", fwd, fwd / floor_f,
                floor_f, fwd + bwd,
                (fwd + bwd) / floor_fb, floor_fb);
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, timing = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--time") timing = true;
    else if (a == "--only" && i + 1 < argc) only = argv[++i];
  }
#ifdef JFF_GENERIC_HOST_EMULATION
  g_props.major = 9;
  g_props.smem_optin = 227 * 1024;
  quick = true;
#else
  int dev = 0;
  CHECK_CUDA(cudaGetDevice(&dev));
  int smem = 0, major = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  g_props.major = major;
  g_props.smem_optin = static_cast<size_t>(smem);
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, dev));
  std::printf("device %s, sm_%d%d, %d bytes shared memory per block (opt-in)\n", prop.name,
              prop.major, prop.minor, smem);
#endif
  std::vector<Case> cases = SmallCases();
  if (!quick) {
    auto big = LargeCases();
    cases.insert(cases.end(), big.begin(), big.end());
  }
  std::random_device rd;
  const uint64_t seed0 = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  std::printf("seed %llu\n", (unsigned long long)seed0);
  uint64_t s = seed0;
  for (const Case& c : cases) {
    ++s;
    if (!only.empty() && c.label.find(only) == std::string::npos) continue;
    RunCase(c, s);
  }
#ifndef JFF_GENERIC_HOST_EMULATION
  if (timing) Timing();
#endif
  std::printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
