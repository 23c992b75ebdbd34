// Standalone check and benchmark of the long fftconv's outer passes (outer_pass.cuh).
//
// GPU build and run:
//   nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80
//        -Icuda -o /tmp/outer_selftest cuda/fftconv_long/outer_selftest.cu
//   /tmp/outer_selftest            correctness cases (exit status 0 when every line says PASS)
//   /tmp/outer_selftest --quick    fewer cases
//   /tmp/outer_selftest --bench [--bench-n N]   GB/s of each pass next to a device-to-device copy (outer
//                                  passes, then the inner step and the three passes together)
//   /tmp/outer_selftest --inner    only the inner-step / pipeline cases (--big adds 8K..32K
//                                  inner sizes and N = 1M = 256 x 4K; GPU only, slow reference)
// CPU emulation (no GPU: each CUDA thread is a fiber, warp collectives emulated; small sizes).
// emu_build.sh runs g++ -DJFF_LONG_EMU with a generated host-parsable copy of monarch_core.cuh
// (its one <<<>>> launch rewritten, see emu_core.h):
//   cuda/fftconv_long/emu_build.sh /tmp/outer_selftest_emu
//   /tmp/outer_selftest_emu --quick            /tmp/outer_selftest_emu --inner
//
// What is checked, per case (fresh random inputs, rounded to the dtype first; outputs poisoned
// with all-ones bits, a NaN in every float type, before every pass):
//   fwd   the workspace against the float64 outer forward (long_plan.h / host_inner.h) of the
//         same rounded inputs: the worst rel-L2 over the packed rows k1 (row 0's real part
//         C[0] and imaginary part C[N1/2] counted separately), so a bug confined to one row
//         cannot hide in the total; no element left unwritten.
//   inv   the inverse pass on a random workspace against the float64 outer inverse (+ gates,
//         skip), and on workspaces with a single nonzero row (k1 = 0 real, 0 imaginary, 1,
//         M/2, M-1), each against its own reference.
//   e2e   forward -> float64 inner step on the host (the fused inner kernel's job), rounded to
//         the dtype as that kernel's output would be -> inverse, against the float64 gated
//         circular convolution y = post * (conv(v, k) + skip*v), v = pre*u. Bars: the issue's
//         targets (bf16 2e-2, fp16 5e-3, fp32 1e-5).
//   det   both passes run twice; the two outputs must be bitwise equal.
// Inner step (inner_pass.cuh), per InnerCase: the filter slices (kspec), the inner kernel alone
// on a random workspace against host::inner_step, and the whole pipeline outer_forward ->
// inner_forward -> outer_inverse against the float64 convolution (see run_inner_case).
#include "fftconv_long/selftest_util.h"  // first: under the emulation, emu.h precedes all kernel code
#include "fftconv_long/host_inner.h"
#include "fftconv_long/inner_pass.cuh"
#include "fftconv_long/long_plan.h"
#include "fftconv_long/outer_pass.cuh"

namespace {

using namespace jff::longconv;
using cd = std::complex<double>;

double bar_e2e(Elem e) { return e == Elem::kF32 ? 1e-5 : (e == Elem::kBF16 ? 2e-2 : 5e-3); }
double bar_pass(Elem e) { return e == Elem::kF32 ? 2e-6 : (e == Elem::kBF16 ? 1.2e-2 : 1.5e-3); }

// y against the float64 gated circular convolution post * (conv(v, k) + skip * v) of every row, straight from
// the FFT form (v_of(r, t) = pre * u from the rounded inputs, skip_of(g * H + h) the skip weight or 0, post
// nullptr when absent): the rel-L2 goes into acc; returns how many outputs were left unwritten (NaN).
template <typename VOf, typename SkipOf>
int64_t check_gated_conv(const HostBuf& y, VOf v_of, const std::vector<double>& k, SkipOf skip_of,
                         const HostBuf* post, int64_t rows, int64_t H, int64_t G, int64_t R, int64_t L, int64_t Lk,
                         int64_t N, ErrAcc* acc) {
  int64_t unwritten = 0;
  std::vector<cd> a(N);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / H, h = r % H, gh = group_of(b, R, G) * H + h;
    std::fill(a.begin(), a.end(), cd(0, 0));
    for (int64_t t = 0; t < L; ++t) a[t] = v_of(r, t);
    jff::host::Fft(a, false);
    const std::vector<cd> kh = host::filter_spectrum(k.data() + gh * Lk, Lk, 0.0, N);
    for (int64_t f = 0; f < N; ++f) a[f] *= kh[f];
    jff::host::Fft(a, true);
    for (int64_t t = 0; t < L; ++t) {
      double want = a[t].real() + skip_of(gh) * v_of(r, t);
      if (post != nullptr) want *= post->get(r * L + t);
      acc->add(y.get(r * L + t), want);
      unwritten += y.is_nan(r * L + t);
    }
  }
  return unwritten;
}

// Row r of a packed workspace as N/2 complex values (index k1 * N2 + n2), as host::outer_inverse takes them.
std::vector<cd> packed_row(const HostBuf& ws, int64_t r, int N1, int64_t N2) {
  std::vector<cd> q(static_cast<size_t>(N1 / 2 * N2));
  for (int k1 = 0; k1 < N1 / 2; ++k1)
    for (int64_t n2 = 0; n2 < N2; ++n2)
      q[k1 * N2 + n2] = cd(ws.get(ws_offset(r, k1, 0, n2, N1, N2)), ws.get(ws_offset(r, k1, 1, n2, N1, N2)));
  return q;
}

struct Case {
  Elem e;
  int N1;
  int64_t N2, B, H, L, Lk, G, R;
  bool pre, post;
  int skip;  // 0 none, 1 folded into the inner spectrum, 2 explicit in the inverse pass
  OuterPath path;
};

std::string case_name(const Case& c) {
  char b[200];
  std::snprintf(b, sizeof b, "%s %s N1=%d N2=%lld B=%lld H=%lld L=%lld Lk=%lld G=%lld%s%s%s", ename(c.e),
                c.path == OuterPath::kTensorCore ? "tc" : "cc", c.N1, static_cast<long long>(c.N2),
                static_cast<long long>(c.B), static_cast<long long>(c.H), static_cast<long long>(c.L),
                static_cast<long long>(c.Lk), static_cast<long long>(c.G), c.pre ? " pre" : "", c.post ? " post" : "",
                c.skip == 0 ? "" : (c.skip == 1 ? " skip(folded)" : " skip(explicit)"));
  return b;
}

void run_case(const Case& c, uint64_t seed) {
  const int N1 = c.N1, M = N1 / 2;
  const int64_t N2 = c.N2, N = N1 * N2, rows = c.B * c.H, L = c.L;
  const std::string name = case_name(c);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> U(-1, 1);
  const size_t es = elem_bytes(c.e);

  HostBuf u(c.e, rows * L), pre(c.e, rows * L), post(c.e, rows * L);
  for (size_t i = 0; i < u.size(); ++i) {
    u.set(i, U(rng));
    pre.set(i, 1.0 + 0.5 * U(rng));
    post.set(i, 1.0 + 0.5 * U(rng));
  }
  std::vector<double> k(c.G * c.H * c.Lk), skip(c.G * c.H);
  for (auto& x : k) x = U(rng) / std::sqrt(static_cast<double>(c.Lk));
  for (auto& x : skip) x = static_cast<float>(U(rng));
  std::vector<float> skipf(skip.begin(), skip.end());

  void* du = dev_alloc(rows * L * es);
  void* dpre = dev_alloc(rows * L * es);
  void* dpost = dev_alloc(rows * L * es);
  void* dy = dev_alloc(rows * L * es);
  void* dws = dev_alloc(workspace_bytes(c.e, rows, N1, N2));
  float* dskip = static_cast<float*>(dev_alloc(skipf.size() * 4));
  up(du, u.raw.data(), u.raw.size());
  up(dpre, pre.raw.data(), pre.raw.size());
  up(dpost, post.raw.data(), post.raw.size());
  up(dskip, skipf.data(), skipf.size() * 4);

  OuterFwdArgs fa{c.e, du, c.pre ? dpre : nullptr, dws, 0, rows, L, N1, N2};
  OuterInvArgs ia{c.e, dws, c.post ? dpost : nullptr, du, c.pre ? dpre : nullptr,
                  c.skip == 2 ? dskip : nullptr, dy, 0, rows, L, c.H, c.G, c.R, N1, N2};

  auto v_of = [&](int64_t row, int64_t t) {  // v = pre*u from the rounded inputs, float64
    const double uu = u.get(row * L + t);
    return c.pre ? uu * pre.get(row * L + t) : uu;
  };

  // ---------------- fwd ----------------
  HostBuf ws(c.e, rows * N);
  poison(dws, ws.raw.size());
  CK(outer_forward(fa, nullptr, c.path));
  sync();
  down(ws.raw.data(), dws, ws.raw.size());
  {
    std::vector<ErrAcc> per(M + 1);  // rows 1..M-1, row 0 real (index 0), row 0 imaginary (index M)
    int64_t unwritten = 0;
    for (size_t i = 0; i < ws.size(); ++i) unwritten += ws.is_nan(i);
    std::vector<double> v(N);
    for (int64_t r = 0; r < rows; ++r) {
      std::fill(v.begin(), v.end(), 0.0);
      for (int64_t t = 0; t < L; ++t) v[t] = v_of(r, t);
      const std::vector<cd> P = host::outer_forward(v, N1, N2);
      for (int k1 = 0; k1 < M; ++k1)
        for (int64_t n2 = 0; n2 < N2; ++n2) {
          const double gr = ws.get(ws_offset(r, k1, 0, n2, N1, N2)), gi = ws.get(ws_offset(r, k1, 1, n2, N1, N2));
          const cd want = P[k1 * N2 + n2];
          if (k1 == 0) {
            per[0].add(gr, want.real());
            per[M].add(gi, want.imag());
          } else {
            per[k1].add(gr, want.real());
            per[k1].add(gi, want.imag());
          }
        }
    }
    double worst = 0;
    int wk = 0;
    for (int i = 0; i <= M; ++i)
      if (per[i].rel() > worst) {
        worst = per[i].rel();
        wk = i;
      }
    char d[160];
    std::snprintf(d, sizeof d, "worst row err %.2e (%s%d) unwritten %lld", worst, wk == M ? "C[N1/2] " : "k1=",
                  wk == M ? N1 / 2 : wk, static_cast<long long>(unwritten));
    line(worst <= bar_pass(c.e) && unwritten == 0, "fwd " + name, d);
  }
  // bitwise repeat
  {
    HostBuf ws2(c.e, rows * N);
    poison(dws, ws.raw.size());
    CK(outer_forward(fa, nullptr, c.path));
    sync();
    down(ws2.raw.data(), dws, ws2.raw.size());
    line(ws2.raw == ws.raw, "det fwd " + name, "");
  }

  // Host reference of the gated output for a workspace `Q` (after the inner step): y for all rows.
  auto ref_y = [&](const HostBuf& Qb, std::vector<double>& yref) {
    yref.assign(rows * L, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<double> z = host::outer_inverse(packed_row(Qb, r, N1, N2), N1, N2);
      const int64_t b = r / c.H, h = r % c.H, g = group_of(b, c.R, c.G);
      for (int64_t t = 0; t < L; ++t) {
        double val = z[t];
        if (c.skip == 2) val += skip[g * c.H + h] * v_of(r, t);
        if (c.post) val *= post.get(r * L + t);
        yref[r * L + t] = val;
      }
    }
  };
  auto run_inv = [&](const HostBuf& Qb, HostBuf& y) {
    up(dws, Qb.raw.data(), Qb.raw.size());
    poison(dy, y.raw.size());
    CK(outer_inverse(ia, nullptr, c.path));
    sync();
    down(y.raw.data(), dy, y.raw.size());
  };
  auto compare = [&](const HostBuf& y, const std::vector<double>& yref, int64_t* unwritten) {
    ErrAcc acc;
    *unwritten = 0;
    for (size_t i = 0; i < yref.size(); ++i) {
      *unwritten += y.is_nan(i);
      acc.add(y.get(i), yref[i]);
    }
    return acc.rel();
  };

  // ---------------- inv on random workspaces ----------------
  {
    HostBuf Q(c.e, rows * N), y(c.e, rows * L);
    std::vector<double> yref;
    double worst = 0;
    int64_t unw_total = 0;
    std::string worst_what = "random";
    // -1: every row random; else only row `sel` (M: row 0's imaginary part, 0: its real part).
    std::vector<int> sels = {-1, 0, M};
    if (M > 1) {
      sels.push_back(1);
      sels.push_back(M - 1);
      if (M > 2) sels.push_back(M / 2);
    }
    for (int sel : sels) {
      for (int64_t r = 0; r < rows; ++r)
        for (int k1 = 0; k1 < M; ++k1)
          for (int pl = 0; pl < 2; ++pl)
            for (int64_t n2 = 0; n2 < N2; ++n2) {
              bool on = sel < 0 || (sel == k1 && k1 > 0) || (k1 == 0 && ((sel == 0 && pl == 0) || (sel == M && pl == 1)));
              Q.set(ws_offset(r, k1, pl, n2, N1, N2), on ? U(rng) : 0.0);
            }
      ref_y(Q, yref);
      run_inv(Q, y);
      int64_t unw;
      const double e = compare(y, yref, &unw);
      unw_total += unw;
      if (e > worst) {
        worst = e;
        worst_what = sel < 0 ? "random" : (sel == M ? "only C[N1/2]" : "only k1=" + std::to_string(sel));
      }
    }
    char d[160];
    std::snprintf(d, sizeof d, "worst err %.2e (%s) unwritten %lld", worst, worst_what.c_str(),
                  static_cast<long long>(unw_total));
    line(worst <= bar_pass(c.e) && unw_total == 0, "inv " + name, d);
  }

  // ---------------- end to end through the host inner step ----------------
  {
    HostBuf Q(c.e, rows * N), y(c.e, rows * L), y2(c.e, rows * L);
    std::vector<std::vector<cd>> khat(c.G * c.H);
    for (int64_t gh = 0; gh < c.G * c.H; ++gh)
      khat[gh] = host::filter_spectrum(k.data() + gh * c.Lk, c.Lk, c.skip == 1 ? skip[gh] : 0.0, N);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / c.H, h = r % c.H, g = group_of(b, c.R, c.G);
      std::vector<cd> rowsP = packed_row(ws, r, N1, N2);
      host::inner_step(rowsP, khat[g * c.H + h], N1, N2);
      for (int k1 = 0; k1 < M; ++k1)
        for (int64_t n2 = 0; n2 < N2; ++n2) {
          Q.set(ws_offset(r, k1, 0, n2, N1, N2), rowsP[k1 * N2 + n2].real());
          Q.set(ws_offset(r, k1, 1, n2, N1, N2), rowsP[k1 * N2 + n2].imag());
        }
    }
    run_inv(Q, y);
    run_inv(Q, y2);
    // float64 reference straight from the definition's FFT form.
    ErrAcc acc;
    const int64_t unw = check_gated_conv(
        y, v_of, k, [&](int64_t gh) { return c.skip != 0 ? skip[gh] : 0.0; }, c.post ? &post : nullptr, rows, c.H, c.G,
        c.R, L, c.Lk, N, &acc);
    char d[160];
    std::snprintf(d, sizeof d, "rel-L2 %.2e (bar %.0e) unwritten %lld", acc.rel(), bar_e2e(c.e),
                  static_cast<long long>(unw));
    line(acc.rel() <= bar_e2e(c.e) && unw == 0, "e2e " + name, d);
    line(y.raw == y2.raw, "det inv " + name, "");
  }

  dev_free(du);
  dev_free(dpre);
  dev_free(dpost);
  dev_free(dy);
  dev_free(dws);
  dev_free(dskip);
}

// The fp32-output inverse from a bf16 workspace (OuterInvArgs::ws_bf16: dk's inverse for 16-bit data) on a random
// bf16 workspace against the float64 outer inverse of the same values; y poisoned first, rerun bitwise equal. Bars:
// the CUDA-core pass computes in fp32 from exact inputs (2e-6); the tensor-core pass rounds the twiddled rows and
// its stage-A output to bf16 (no rounding of the output).
void run_inv_bf16_ws_case(int N1, int64_t N2, int64_t rows, int64_t L, OuterPath path, uint64_t seed) {
  const int64_t N = N1 * N2;
  char name[160];
  std::snprintf(name, sizeof name, "inv bf16 ws -> f32 %s N1=%d N2=%lld rows=%lld L=%lld",
                path == OuterPath::kTensorCore ? "tc" : "cc", N1, static_cast<long long>(N2),
                static_cast<long long>(rows), static_cast<long long>(L));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> U(-1, 1);
  HostBuf Q(Elem::kBF16, rows * N), y(Elem::kF32, rows * L), y2(Elem::kF32, rows * L);
  for (size_t i = 0; i < Q.size(); ++i) Q.set(i, U(rng));
  void* dws = dev_alloc(Q.raw.size());
  void* dy = dev_alloc(y.raw.size());
  up(dws, Q.raw.data(), Q.raw.size());
  OuterInvArgs ia{Elem::kF32, dws, nullptr, nullptr, nullptr, nullptr, dy, 0, rows, L, 1, 1, 1, N1, N2};
  ia.ws_bf16 = true;
  auto run = [&](HostBuf& out) {
    poison(dy, out.raw.size());
    CK(outer_inverse(ia, nullptr, path));
    sync();
    down(out.raw.data(), dy, out.raw.size());
  };
  run(y);
  run(y2);
  ErrAcc acc;
  int64_t unwritten = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<double> z = host::outer_inverse(packed_row(Q, r, N1, N2), N1, N2);
    for (int64_t t = 0; t < L; ++t) {
      acc.add(y.get(r * L + t), z[t]);
      unwritten += y.is_nan(r * L + t);
    }
  }
  const double bar = path == OuterPath::kTensorCore ? 5e-3 : 2e-6;  // (emulated: 1.9e-3 at N1 = 16 .. 3.0e-3 at 512)
  char d[160];
  std::snprintf(d, sizeof d, "rel-L2 %.2e (bar %.1e) unwritten %lld", acc.rel(), bar,
                static_cast<long long>(unwritten));
  line(acc.rel() <= bar && unwritten == 0, name, d);
  line(y.raw == y2.raw, std::string("det ") + name, "");
  dev_free(dws);
  dev_free(dy);
}

// ---------------- inner step (inner_pass.cuh) and the whole pipeline ----------------
using InnerCase = LongCase;  // selftest_util.h

// The inner step's own bars (it is about half of the pipeline's roundings, see notes_long.md 4).
double bar_inner(Elem e) { return e == Elem::kF32 ? 2e-6 : (e == Elem::kBF16 ? 1.2e-2 : 1.5e-3); }

// Per case:
//   kspec  the device slices against the float64 spectrum of the same fp32 k (+ skip), every
//          slice and frequency (rel-L2, bar 1e-5: fp32 arithmetic); for bf16 data also the bf16 slices
//          (kspec_bf16; bar 2.5e-3 for one rounding of each value, relative 2^-9; 3.5e-3 with the bf16 scratch of
//          kspec_ws_bf16, whose values are rounded once before the slice DFT too; more where tensor cores compute
//          the slices, see there), which the inner step then reads.
//   inner  inner_forward on a random workspace (rounded to the dtype) against the float64
//          host::inner_step of the same values: worst rel-L2 over the item classes (row 0's real
//          half, row 0's imaginary half, rows 1..N1/2-1), so one bad class cannot hide; rerun on
//          the same input bitwise equal.
//   e2e    outer_forward -> inner_forward -> outer_inverse (skip folded into the slices) on
//          fresh random u, pre, post, k, against the float64 gated circular convolution;
//          workspace and y poisoned first; rerun of the whole pipeline bitwise equal.
void run_inner_case(const InnerCase& c, uint64_t seed) {
  const int N1 = c.N1, M = N1 / 2;
  const int64_t N2 = c.N2, N = N1 * N2, rows = c.B * c.H, L = c.L, GH = c.G * c.H;
  const std::string name = long_case_name(c);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> U(-1, 1);
  const size_t es = elem_bytes(c.e);

  std::vector<float> kf(GH * c.Lk), skipf(GH);
  for (auto& x : kf) x = static_cast<float>(U(rng) / std::sqrt(static_cast<double>(c.Lk)));
  for (auto& x : skipf) x = static_cast<float>(U(rng));
  std::vector<double> kd(kf.begin(), kf.end());
  float* dk = static_cast<float*>(dev_alloc(kf.size() * 4));
  float* dskip = static_cast<float*>(dev_alloc(GH * 4));
  float* dks = static_cast<float*>(dev_alloc(kspec_bytes(GH, N1, N2)));
  float* dscr = static_cast<float*>(dev_alloc(kspec_scratch_bytes(GH, N1, N2)));
  up(dk, kf.data(), kf.size() * 4);
  up(dskip, skipf.data(), GH * 4);

  // ---- kspec
  std::vector<std::vector<cd>> khat(GH);
  for (int64_t gh = 0; gh < GH; ++gh)
    khat[gh] = host::filter_spectrum(kd.data() + gh * c.Lk, c.Lk, c.skip ? skipf[gh] : 0.0, N);
  // fp32 slices, then (bf16 data) the bf16 ones in the same buffer: the inner step reads what the data's dtype takes.
  for (const bool bf16 : {false, true}) {
    if (bf16 && !kspec_bf16(c.e)) break;
    KspecArgs ka{dk, c.skip ? dskip : nullptr, dks, dscr, GH, c.Lk, N1, N2, bf16};
    poison(dks, kspec_bytes(GH, N1, N2));
    CK(inner_kspec(ka, nullptr));
    sync();
    std::vector<uint8_t> ks(kspec_bytes(GH, N1, N2, bf16));
    down(ks.data(), dks, ks.size());
    auto value = [&](int64_t i) {  // element i of the slices as float
      if (!bf16) return reinterpret_cast<const float*>(ks.data())[i];
      const uint32_t bits = uint32_t{reinterpret_cast<const uint16_t*>(ks.data())[i]} << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    };
    int N0 = 0, RAD = 0;
    inner::split_n2(N2, &N0, &RAD);
    ErrAcc acc;
    int64_t unw = 0;
    for (int64_t gh = 0; gh < GH; ++gh)
      for (int j = 0; j <= M; ++j)
        for (int64_t k2 = 0; k2 < N2; ++k2) {
          const int64_t f = j == 0 ? N1 * k2 : (j == M ? N1 / 2 + N1 * k2 : j + N1 * k2);
          const int64_t o = (gh * (M + 1) + j) * N2 * 2 + inner::slice_offset(k2, N0, RAD);
          unw += std::isnan(value(o)) || std::isnan(value(o + 1));
          acc.add(value(o), khat[gh][f].real());
          acc.add(value(o + 1), khat[gh][f].imag());
        }
    // bf16: 2.5e-3 for one rounding of each slice value (relative 2^-9); 3.5e-3 with the bf16 scratch (a second
    // rounding); 4.5e-3 where the pass over k runs on tensor cores too (k, the DFT matrices and, at N1 >= 256, the
    // first DFT stage's output rounded to bf16 as well: four to six roundings of ~1.1e-3 rms each); 5.5e-3 where the
    // slice DFTs run on tensor cores (their DFT matrices, twiddles and the 16-bit planes between their stages: about
    // ten roundings in all).
    OuterFwdArgs kpass{Elem::kF32, dk, nullptr, dscr, 0, GH, c.Lk, N1, N2};
    kpass.ws_bf16 = kspec_ws_bf16(bf16, N2);
    const bool k_tc = kspec_outer_path(kpass.ws_bf16, N1) == OuterPath::kAuto && tc_available(kpass, detail::device_major());
    const bool slices_tc = kpass.ws_bf16;  // the bf16 scratch goes with the tensor-core slice DFTs
    const double bar = bf16 ? (slices_tc ? 5.5e-3 : k_tc ? 4.5e-3 : kpass.ws_bf16 ? 3.5e-3 : 2.5e-3) : 1e-5;
    char d[160];
    std::snprintf(d, sizeof d, "rel-L2 %.2e (bar %.1e) unwritten %lld", acc.rel(), bar, static_cast<long long>(unw));
    line(acc.rel() <= bar && unw == 0,
         std::string(!bf16 ? "kspec "
                     : slices_tc ? (k_tc ? "kspec, bf16 slices (tensor cores: pass over k, slice DFTs), "
                                         : "kspec, bf16 slices (tensor-core slice DFTs), ")
                     : k_tc ? "kspec, bf16 slices (tensor-core pass over k), "
                            : "kspec, bf16 slices, ") +
             name,
         d);
  }

  InnerArgs na{c.e, nullptr, dks, 0, rows, c.H, c.G, c.R, N1, N2};
  // ---- inner alone on a random workspace
  {
    HostBuf Q(c.e, rows * N), out(c.e, rows * N), out2(c.e, rows * N);
    for (size_t i = 0; i < Q.size(); ++i) Q.set(i, U(rng));
    void* dws = dev_alloc(Q.raw.size());
    na.ws = dws;
    up(dws, Q.raw.data(), Q.raw.size());
    CK(inner_forward(na, nullptr));
    sync();
    down(out.raw.data(), dws, out.raw.size());
    up(dws, Q.raw.data(), Q.raw.size());
    CK(inner_forward(na, nullptr));
    sync();
    down(out2.raw.data(), dws, out2.raw.size());
    dev_free(dws);
    ErrAcc cls[3];  // row 0 real half (cyclic), row 0 imaginary half (negacyclic), rows 1..M-1
    int64_t nan = 0;
    std::vector<cd> P(N / 2);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / c.H, h = r % c.H, g = group_of(b, c.R, c.G);
      for (int k1 = 0; k1 < M; ++k1)
        for (int64_t n2 = 0; n2 < N2; ++n2)
          P[k1 * N2 + n2] = cd(Q.get(ws_offset(r, k1, 0, n2, N1, N2)), Q.get(ws_offset(r, k1, 1, n2, N1, N2)));
      host::inner_step(P, khat[g * c.H + h], N1, N2);
      for (int k1 = 0; k1 < M; ++k1)
        for (int64_t n2 = 0; n2 < N2; ++n2) {
          const size_t o0 = ws_offset(r, k1, 0, n2, N1, N2), o1 = ws_offset(r, k1, 1, n2, N1, N2);
          nan += out.is_nan(o0) + out.is_nan(o1);
          const cd want = P[k1 * N2 + n2];
          if (k1 == 0) {
            cls[0].add(out.get(o0), want.real());
            cls[1].add(out.get(o1), want.imag());
          } else {
            cls[2].add(out.get(o0), want.real());
            cls[2].add(out.get(o1), want.imag());
          }
        }
    }
    const char* cname[3] = {"row0 re", "row0 im", "rows"};
    double worst = 0;
    int wi = 0;
    for (int i = 0; i < (M > 1 ? 3 : 2); ++i)
      if (cls[i].rel() > worst) {
        worst = cls[i].rel();
        wi = i;
      }
    char d[200];
    std::snprintf(d, sizeof d, "row0 re %.2e, row0 im %.2e, rows %.2e (worst %s, bar %.1e) nan %lld", cls[0].rel(),
                  cls[1].rel(), M > 1 ? cls[2].rel() : 0.0, cname[wi], bar_inner(c.e), static_cast<long long>(nan));
    line(worst <= bar_inner(c.e) && nan == 0, "inner " + name, d);
    line(out.raw == out2.raw, "det inner " + name, "");
  }

  // ---- end to end
  {
    HostBuf u(c.e, rows * L), pre(c.e, rows * L), post(c.e, rows * L), y(c.e, rows * L), y2(c.e, rows * L);
    for (size_t i = 0; i < u.size(); ++i) {
      u.set(i, U(rng));
      pre.set(i, 1.0 + 0.5 * U(rng));
      post.set(i, 1.0 + 0.5 * U(rng));
    }
    void* du = dev_alloc(rows * L * es);
    void* dpre = dev_alloc(rows * L * es);
    void* dpost = dev_alloc(rows * L * es);
    void* dy = dev_alloc(rows * L * es);
    void* dws = dev_alloc(workspace_bytes(c.e, rows, N1, N2));
    up(du, u.raw.data(), u.raw.size());
    up(dpre, pre.raw.data(), pre.raw.size());
    up(dpost, post.raw.data(), post.raw.size());
    OuterFwdArgs fa{c.e, du, c.pre ? dpre : nullptr, dws, 0, rows, L, N1, N2};
    OuterInvArgs ia{c.e, dws, c.post ? dpost : nullptr, nullptr, nullptr, nullptr, dy, 0, rows, L, c.H, c.G, c.R, N1, N2};
    na.ws = dws;
    auto pipeline = [&](HostBuf& out) {
      poison(dws, workspace_bytes(c.e, rows, N1, N2));
      poison(dy, out.raw.size());
      CK(outer_forward(fa, nullptr));
      CK(inner_forward(na, nullptr));
      CK(outer_inverse(ia, nullptr));
      sync();
      down(out.raw.data(), dy, out.raw.size());
    };
    pipeline(y);
    pipeline(y2);
    ErrAcc acc;
    auto v_of = [&](int64_t r, int64_t t) { return c.pre ? u.get(r * L + t) * pre.get(r * L + t) : u.get(r * L + t); };
    const int64_t unw = check_gated_conv(
        y, v_of, kd, [&](int64_t gh) { return c.skip ? static_cast<double>(skipf[gh]) : 0.0; },
        c.post ? &post : nullptr, rows, c.H, c.G, c.R, L, c.Lk, N, &acc);
    char d[160];
    std::snprintf(d, sizeof d, "rel-L2 %.2e (bar %.0e) unwritten %lld", acc.rel(), bar_e2e(c.e),
                  static_cast<long long>(unw));
    line(acc.rel() <= bar_e2e(c.e) && unw == 0, "pipeline " + name, d);
    line(y.raw == y2.raw, "det pipeline " + name, "");
    if (c.B > 2) {
      // Chunks of two batch entries (long_fwd runs chunks of whole entries, workspace rows from 0): bitwise the
      // run over all rows, since the inner step pairs the same batch rows (b, b + 1 from even b) either way and
      // every other step is per row.
      poison(dws, workspace_bytes(c.e, rows, N1, N2));
      poison(dy, y2.raw.size());
      for (int64_t b0 = 0; b0 < c.B; b0 += 2) {
        const int64_t r0 = b0 * c.H, nr = std::min<int64_t>(2, c.B - b0) * c.H;
        OuterFwdArgs f2 = fa;
        InnerArgs n2 = na;
        OuterInvArgs i2 = ia;
        f2.row0 = n2.row0 = i2.row0 = r0;
        f2.nrows = n2.nrows = i2.nrows = nr;
        CK(outer_forward(f2, nullptr));
        CK(inner_forward(n2, nullptr));
        CK(outer_inverse(i2, nullptr));
      }
      sync();
      down(y2.raw.data(), dy, y2.raw.size());
      line(y.raw == y2.raw, "chunked pipeline " + name, "chunks of 2 batch entries, bitwise vs all rows at once");
    }
    for (void* q : {du, dpre, dpost, dy, dws}) dev_free(q);
  }
  for (void* q : {static_cast<void*>(dk), static_cast<void*>(dskip), static_cast<void*>(dks), static_cast<void*>(dscr)})
    dev_free(q);
}

void check_inner_validation() {
  alignas(16) static float dummy[64];
  InnerArgs ok{Elem::kBF16, dummy, dummy, 0, 2, 1, 1, 1, 16, 4096};
  bool good = check_inner(ok) == nullptr;
  auto bad = [&](InnerArgs a) { return check_inner(a) != nullptr && inner_forward(a, nullptr) == cudaErrorInvalidValue; };
  InnerArgs a = ok;
  a.N2 = 2048;  // no tensor-core inner kernel for N0 = 2
  good = good && bad(a);
  a = ok;
  a.dtype = Elem::kF32;
  a.N2 = 32768;  // fp32 row does not fit in shared memory
  good = good && bad(a);
  a = ok;
  a.ws = reinterpret_cast<char*>(dummy) + 4;
  good = good && bad(a);
  a = ok;
  a.kspec = nullptr;
  good = good && bad(a);
  a = ok;
  a.N1 = 3;
  good = good && bad(a);
  KspecArgs ka{dummy, nullptr, dummy, dummy, 1, 100, 16, 4096};
  good = good && check_kspec(ka) == nullptr;
  KspecArgs kb = ka;
  kb.Lk = 16 * 4096 + 1;
  good = good && check_kspec(kb) != nullptr && inner_kspec(kb, nullptr) == cudaErrorInvalidValue;
  kb = ka;
  kb.N2 = 128;
  good = good && check_kspec(kb) != nullptr;
  line(good, "inner argument validation refuses bad calls before launching", "");
}

// Argument checks: invalid calls are refused before any launch.
// The inverse epilogue's chunk order (Shape::epi_chunk) for each tensor-core shape: every (n1, ch) once; each warp
// instruction's 32 chunks cover whole 32-byte row pieces; with JFF_LONG_TILE_ORDER = 1, no bank conflict in any
// 16-byte phase (8 lanes) on OUTF (pitch FP floats) or on a dense TMA tile of TW columns.
template <int P, int Q>
void check_epi_order() {
  constexpr int TW = tc_tile(P * Q);
  using S = tc::Shape<P, Q, TW, kTcOuterWarps>;
  constexpr int N1 = P * Q, CH = TW / 8, total = N1 * CH;
  std::vector<int> seen(total, 0);
  bool bijective = true, sectors = true, outf_free = true, tile_free = true;
  for (int i0 = 0; i0 < total; i0 += 32) {
    std::vector<int> halves(N1 * CH / 2, 0);  // per (n1, 32-byte piece): chunks of this instruction
    for (int i = i0; i < i0 + 32 && i < total; ++i) {
      int n1, ch, row;
      S::epi_chunk(i, &n1, &ch, &row);
      if (n1 < 0 || n1 >= N1 || ch < 0 || ch >= CH || row != (n1 % Q) * S::PB + n1 / Q || seen[n1 * CH + ch]++) {
        bijective = false;
        continue;
      }
      ++halves[(n1 * CH + ch) / 2];
    }
    for (int h : halves) sectors = sectors && (h == 0 || h == 2);
  }
  for (int i0 = 0; i0 < total; i0 += 8) {
    unsigned outf = 0, tile = 0;  // 16-byte bank groups (address / 16 mod 8) hit by the phase
    for (int i = i0; i < i0 + 8; ++i) {
      int n1, ch, row;
      S::epi_chunk(i, &n1, &ch, &row);
      const unsigned go = 1u << (((row * S::FP * 4 + ch * 32) / 16) % 8), gt = 1u << ((n1 * TW * 2 + ch * 16) / 16 % 8);
      outf_free = outf_free && !(outf & go);
      tile_free = tile_free && !(tile & gt);
      outf |= go;
      tile |= gt;
    }
  }
  // The rows-fastest order 0 promises neither the tile nor whole pieces (at N1 = 32). The line reads the same for
  // both orders when it passes, so that make emulate's variant builds compare their output with the default's whole.
  const bool ok = bijective && outf_free && (JFF_LONG_TILE_ORDER == 0 || (sectors && tile_free));
  char what[96];
  std::snprintf(what, sizeof what, "inverse epilogue order N1=%d TW=%d", N1, TW);
  char detail[128] = "";
  if (!ok)
    std::snprintf(detail, sizeof detail, "order %d: each chunk once %d, whole pieces %d, conflict-free OUTF %d, tile %d",
                  JFF_LONG_TILE_ORDER, bijective, sectors, outf_free, tile_free);
  line(ok, what, detail);
}

// The inverse's register epilogue (outer_tc.cuh, inv_reg_epi) reads post through a TMA view with strides that do not
// increase and the 32-byte swizzle; where the driver refused it the OUTF instance would run instead, correct but
// without the epilogue's gain, so a refusal is reported here (4M's shape: N1 = 512, N2 = 8192; 4 rows).
void check_reg_epi_view() {
  const int64_t N2 = 8192, L = 512 * N2, rows = 4;
  void* post = dev_alloc(size_t(rows) * L * 2);
  OuterInvArgs a{Elem::kBF16, nullptr, post, nullptr, nullptr, nullptr, nullptr, 0, rows, L, 1, 1, 1, 512, N2};
  jff::TileMap m;
  const bool ok = detail::signal_qp_map(&m, post, a, 16, 16, 32) == cudaSuccess;
  dev_free(post);
  line(ok, "inverse register epilogue: TMA view of post", ok ? "accepted" : "refused by the driver");
}

void check_validation() {
  check_reg_epi_view();
  check_epi_order<16, 1>();
  check_epi_order<32, 1>();
  check_epi_order<16, 16>();
  check_epi_order<16, 32>();
  int dummy[64];
  OuterFwdArgs ok{Elem::kBF16, dummy, nullptr, dummy, 0, 2, 1000, 16, 256};
  bool good = check_fwd(ok) == nullptr;
  auto bad_fwd = [&](OuterFwdArgs a) { return check_fwd(a) != nullptr && outer_forward(a, nullptr) == cudaErrorInvalidValue; };
  OuterFwdArgs a = ok;
  a.N1 = 24;
  good = good && bad_fwd(a);
  a = ok;
  a.N1 = 1024;
  good = good && bad_fwd(a);
  a = ok;
  a.N2 = 8;
  good = good && bad_fwd(a);
  a = ok;
  a.L = 16 * 256 + 1;
  good = good && bad_fwd(a);
  a = ok;
  a.L = 0;
  good = good && bad_fwd(a);
  a = ok;
  a.ws = reinterpret_cast<char*>(dummy) + 2;
  good = good && bad_fwd(a);
  a = ok;
  a.u = nullptr;
  good = good && bad_fwd(a);
  a = ok;
  a.N1 = 512;
  a.N2 = 65536;
  good = good && bad_fwd(a);
  OuterInvArgs ia{Elem::kF32, dummy, nullptr, nullptr, nullptr, nullptr, dummy, 0, 2, 1000, 1, 1, 1, 16, 256};
  good = good && check_inv(ia) == nullptr;
  OuterInvArgs ib = ia;
  ib.skip = reinterpret_cast<const float*>(dummy);  // explicit skip without u
  good = good && check_inv(ib) != nullptr && outer_inverse(ib, nullptr) == cudaErrorInvalidValue;
  ib = ia;
  ib.y = nullptr;
  good = good && check_inv(ib) != nullptr;
  ib = ia;
  ib.y2 = dummy;  // a second output without its gate
  good = good && check_inv(ib) != nullptr && outer_inverse(ib, nullptr) == cudaErrorInvalidValue;
  ib.post2 = dummy;
  good = good && check_inv(ib) == nullptr;
  ib.y2 = reinterpret_cast<char*>(dummy) + 1;  // misaligned
  good = good && check_inv(ib) != nullptr;
  // A bf16 workspace goes only with fp32 output and nothing else to apply.
  ib = ia;
  ib.ws_bf16 = true;
  good = good && check_inv(ib) == nullptr;
  ib.post = dummy;
  good = good && check_inv(ib) != nullptr && outer_inverse(ib, nullptr) == cudaErrorInvalidValue;
  ib = ia;
  ib.ws_bf16 = true;
  ib.dtype = Elem::kBF16;
  good = good && check_inv(ib) != nullptr && outer_inverse(ib, nullptr) == cudaErrorInvalidValue;
  // dskip's partials need the two-output pass on 16-bit data, and the tensor-core path.
  double part[8];
  ib = ia;
  ib.dtype = Elem::kBF16;
  ib.post2 = ib.y2 = dummy;
  ib.dy = dummy;
  ib.skip_part = part;
  good = good && check_inv(ib) != nullptr;  // no post
  ib.post = dummy;
  good = good && check_inv(ib) == nullptr;
  good = good && outer_inverse(ib, nullptr, OuterPath::kCudaCore) == cudaErrorInvalidValue;
  ib.dy = nullptr;
  good = good && check_inv(ib) != nullptr;
  ib.dy = dummy;
  ib.post2 = ib.y2 = nullptr;
  good = good && check_inv(ib) != nullptr && outer_inverse(ib, nullptr) == cudaErrorInvalidValue;
  // A forced tensor-core path that cannot take the problem is refused, not silently rerouted.
  OuterFwdArgs f32 = ok;
  f32.dtype = Elem::kF32;
  good = good && outer_forward(f32, nullptr, OuterPath::kTensorCore) == cudaErrorInvalidValue;
  OuterFwdArgs n64 = ok;
  n64.N1 = 64;
  good = good && outer_forward(n64, nullptr, OuterPath::kTensorCore) == cudaErrorInvalidValue;
  line(good, "argument validation refuses bad calls before launching", "");
}

#ifndef JFF_LONG_EMU


// The inner step at long sizes: ms and GB/s of inner_forward (bytes = workspace read + written,
// + the slices read once: bf16 for bf16 data, kspec_bf16), next to a copy; inner_kspec's time; and the three passes
// together against the forward's 4-stream activation floor (u, pre, post, y; k not counted).
// --bench-n N: time only the cases of that N (the profiling script's short runs); 0: all.
int64_t g_bench_n = 0;

void bench_inner() {
  struct B {
    int64_t N, Bt, H;
    Elem e;
  };
  const B cases[] = {{int64_t{1} << 20, 1, 768, Elem::kBF16}, {int64_t{1} << 20, 1, 768, Elem::kF16},
                     {int64_t{1} << 16, 16, 768, Elem::kBF16}, {int64_t{1} << 22, 1, 192, Elem::kBF16},
                     {int64_t{1} << 24, 1, 48, Elem::kBF16},  {int64_t{1} << 20, 1, 384, Elem::kF32},
                     {int64_t{1} << 18, 4, 768, Elem::kBF16},  {int64_t{1} << 23, 1, 96, Elem::kBF16}};
  for (const B& b : cases) {
    if (g_bench_n != 0 && b.N != g_bench_n) continue;
    const int N1 = default_n1(b.N);
    const int64_t N2 = b.N / N1, rows = b.Bt * b.H, L = b.N, GH = b.H;
    if (!inner_supported(b.e, N2)) continue;
    const size_t es = elem_bytes(b.e), sbytes = rows * L * es, wbytes = workspace_bytes(b.e, rows, N1, N2);
    const size_t kbytes = kspec_bytes(GH, N1, N2, kspec_bf16(b.e));
    void *u = dev_alloc(sbytes), *pre = dev_alloc(sbytes), *post = dev_alloc(sbytes), *y = dev_alloc(sbytes),
         *ws = dev_alloc(wbytes);
    float* kf = static_cast<float*>(dev_alloc(GH * L * 4));
    float* ks = static_cast<float*>(dev_alloc(kbytes));
    float* scr = static_cast<float*>(dev_alloc(kspec_scratch_bytes(GH, N1, N2)));
    for (void* q : {u, pre, post, y, ws})
      fill_kernel<<<1024, 256>>>(static_cast<uint16_t*>(q), static_cast<int64_t>((q == ws ? wbytes : sbytes) / 2), 7u);
    // k: fill_kernel's 16-bit patterns read in pairs as fp32 (finite, about 1e-2 in size)
    fill_kernel<<<1024, 256>>>(reinterpret_cast<uint16_t*>(kf), static_cast<int64_t>(GH * L * 2), 11u);
    CK(cudaDeviceSynchronize());
    const double cp_ms = time_ms([&] { CK(cudaMemcpyAsync(y, u, sbytes, cudaMemcpyDeviceToDevice)); }, 10);
    const double copy_gbs = 2.0 * sbytes / (cp_ms * 1e-3) / 1e9;
    KspecArgs ka{kf, nullptr, ks, scr, GH, L, N1, N2, kspec_bf16(b.e)};
    const double tk = time_ms([&] { CK(inner_kspec(ka, nullptr)); }, 5);
    // Its first launch alone: the outer pass over k (the rest is the slice kernel), as inner_kspec runs it.
    OuterFwdArgs ka_outer{Elem::kF32, kf, nullptr, scr, 0, GH, L, N1, N2};
    ka_outer.ws_bf16 = kspec_ws_bf16(ka.bf16, N2);
    const double tk_outer =
        time_ms([&] { CK(outer_forward(ka_outer, nullptr, kspec_outer_path(ka_outer.ws_bf16, N1))); }, 5);
    // The workspace must hold finite values for a fair timing: fill it from a real forward.
    OuterFwdArgs fa{b.e, u, pre, ws, 0, rows, L, N1, N2};
    OuterInvArgs ia{b.e, ws, post, nullptr, nullptr, nullptr, y, 0, rows, L, b.H, 1, 1, N1, N2};
    InnerArgs na{b.e, ws, ks, 0, rows, b.H, 1, 1, N1, N2};
    CK(outer_forward(fa, nullptr));
    const double ti = time_ms([&] { CK(inner_forward(na, nullptr)); }, 10);
    const double tp = time_ms(
        [&] {
          CK(outer_forward(fa, nullptr));
          CK(inner_forward(na, nullptr));
          CK(outer_inverse(ia, nullptr));
        },
        10);
    const double gws = 2.0 * wbytes / (ti * 1e-3) / 1e9, gall = (2.0 * wbytes + kbytes) / (ti * 1e-3) / 1e9;
    const double floor_ms = 4.0 * sbytes / (copy_gbs * 1e9) * 1e3;
    std::printf(
        "%-4s N=%8lld (%3d x %5lld) rows=%4lld inner %.3f ms: ws r+w %6.0f GB/s (%.2fx copy), with K %6.0f GB/s; "
        "kspec %.3f ms (outer pass on k %.3f ms); fwd+inner+inv %.3f ms = %.2fx the 4-stream floor %.3f ms "
        "[copy %.0f GB/s]\n",
        ename(b.e), static_cast<long long>(b.N), N1, static_cast<long long>(N2), static_cast<long long>(rows), ti, gws,
        copy_gbs / gws, gall, tk, tk_outer, tp, tp / floor_ms, floor_ms, copy_gbs);
    std::fflush(stdout);
    for (void* q : {u, pre, post, y, ws, static_cast<void*>(kf), static_cast<void*>(ks), static_cast<void*>(scr)})
      dev_free(q);
  }
}

void bench() {
  struct B {
    int64_t N, Bt, H;
    Elem e;
  };
  const B cases[] = {{int64_t{1} << 16, 16, 768, Elem::kBF16}, {int64_t{1} << 18, 4, 768, Elem::kBF16},
                     {int64_t{1} << 20, 1, 768, Elem::kBF16},
                     {int64_t{1} << 20, 1, 768, Elem::kF16}, {int64_t{1} << 22, 1, 192, Elem::kBF16},
                     {int64_t{1} << 24, 1, 48, Elem::kBF16}, {int64_t{1} << 20, 1, 384, Elem::kF32}};
  cudaDeviceProp prop;
  int dev = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s\n", prop.name);
  for (const B& b : cases) {
    if (g_bench_n != 0 && b.N != g_bench_n) continue;
    const int N1 = default_n1(b.N);
    const int64_t N2 = b.N / N1, rows = b.Bt * b.H, L = b.N;
    const size_t es = elem_bytes(b.e), sbytes = rows * L * es, wbytes = workspace_bytes(b.e, rows, N1, N2);
    void *u = dev_alloc(sbytes), *pre = dev_alloc(sbytes), *post = dev_alloc(sbytes), *y = dev_alloc(sbytes),
         *ws = dev_alloc(wbytes);
    for (void* q : {u, pre, post, y, ws})
      fill_kernel<<<1024, 256>>>(static_cast<uint16_t*>(q), static_cast<int64_t>((q == ws ? wbytes : sbytes) / 2), 7u);
    CK(cudaDeviceSynchronize());
    // Device-to-device copy of one stream (read + write counted): the floor's divisor.
    const size_t fwd_bytes = 2 * sbytes + wbytes, inv_bytes = wbytes + 2 * sbytes;
    const double cp_ms = time_ms([&] { CK(cudaMemcpyAsync(y, u, sbytes, cudaMemcpyDeviceToDevice)); }, 10);
    const double copy_gbs = 2.0 * sbytes / (cp_ms * 1e-3) / 1e9;
    for (OuterPath path : {OuterPath::kTensorCore, OuterPath::kCudaCore}) {
      if (path == OuterPath::kTensorCore && !tc_available(b.e, N1, N2, 8)) continue;
      OuterFwdArgs fa{b.e, u, pre, ws, 0, rows, L, N1, N2};
      OuterInvArgs ia{b.e, ws, post, nullptr, nullptr, nullptr, y, 0, rows, L, b.H, 1, 1, N1, N2};
      const double tf = time_ms([&] { CK(outer_forward(fa, nullptr, path)); }, 20);
      const double ti = time_ms([&] { CK(outer_inverse(ia, nullptr, path)); }, 20);
      const double gf = fwd_bytes / (tf * 1e-3) / 1e9, gi = inv_bytes / (ti * 1e-3) / 1e9;
      // Full-forward floor (read u, pre, post; write y): 4 streams.
      const double floor_ms = 4.0 * sbytes / (copy_gbs * 1e9) * 1e3;
      std::printf(
          "%-4s N=%8lld (%3d x %5lld) rows=%4lld %s  fwd %.3f ms %6.0f GB/s (%.2fx copy)  inv %.3f ms %6.0f GB/s "
          "(%.2fx copy)  outer passes = %.2fx the 4-stream floor %.3f ms  [copy %.0f GB/s]\n",
          ename(b.e), static_cast<long long>(b.N), N1, static_cast<long long>(N2), static_cast<long long>(rows),
          path == OuterPath::kTensorCore ? "tc" : "cc", tf, gf, copy_gbs / gf, ti, gi, copy_gbs / gi,
          (tf + ti) / floor_ms, floor_ms, copy_gbs);
      std::fflush(stdout);
    }
    for (void* q : {u, pre, post, y, ws}) dev_free(q);
  }
  bench_inner();
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, do_bench = false, inner_only = false, big = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--bench")) do_bench = true;
    if (!std::strcmp(argv[i], "--inner")) inner_only = true;
    if (!std::strcmp(argv[i], "--big")) big = true;
#ifndef JFF_LONG_EMU
    if (!std::strcmp(argv[i], "--bench-n") && i + 1 < argc) g_bench_n = std::atoll(argv[++i]);
#endif
  }
#ifndef JFF_LONG_EMU
  if (do_bench) {
    bench();
    return 0;
  }
#else
  if (do_bench) {
    std::printf("--bench needs the GPU build\n");
    return 2;
  }
#endif
  // Inner step + whole pipeline. Small sizes first (the emulation runs these); --big adds the
  // production inner sizes 8K..32K and N = 1M = 256 x 4K (GPU: minutes of float64 reference).
  std::vector<InnerCase> icases;
  for (Elem e : {Elem::kBF16, Elem::kF16, Elem::kF32}) {
    icases.push_back({e, 16, 256, 2, 2, 16 * 256, 16 * 256, 1, 1, true, true, true});
    icases.push_back({e, 16, 1024, 1, 2, 16 * 1024, 16 * 1024, 1, 1, true, true, true});
    // Two-level outer sizes (for bf16 the tensor-core pass over k's two stages; odd Lk: its scalar loads), also in
    // --quick (the sanitizers' set) for bf16; N1 = 512 below.
    if (!quick || e == Elem::kBF16) icases.push_back({e, 256, 256, 1, 1, 256 * 256, 256 * 256 - 5, 1, 1, true, true, true});
    // Batch rows paired in row 0's transforms (G = 1), an odd batch entry left alone, and the chunked run's pairs.
    if (!quick || e != Elem::kF32) icases.push_back({e, 16, 256, 5, 1, 16 * 256 - 9, 16 * 256 - 9, 1, 1, true, true, true});
    if (!quick) {
      icases.push_back({e, 16, 1024, 3, 1, 16 * 1024 / 2 + 7, 16 * 1024 / 2 - 3, 2, 1, true, false, true});
      icases.push_back({e, 2, 1024, 2, 1, 2 * 1024 - 9, 700, 1, 1, false, true, false});  // row 0 only
      icases.push_back({e, 8, 256, 2, 2, 8 * 256, 8 * 256, 2, 2, true, true, true});
      icases.push_back({e, 16, 4096, 1, 1, 16 * 4096, 16 * 4096, 1, 1, true, true, true});
      icases.push_back({e, 512, 256, 1, 2, 512 * 256, 512 * 256, 1, 1, true, true, true});
      // Every inner split up to 32K (N0 = 32, 16 with RAD = 16, 32) on few rows: N1 = 4 has
      // one ordinary row besides row 0's two halves, which keeps the emulation affordable.
      for (int64_t n2 : {8192, 16384, 32768}) {
        if (e == Elem::kF32 && n2 > kInnerCcMaxN2) continue;
        icases.push_back({e, 4, n2, 1, 1, 4 * n2 - 1, 4 * n2 / 3, 1, 1, true, true, true});
      }
    }
    if (big) {
      for (int64_t n2 : {8192, 16384, 32768}) {
        if (e == Elem::kF32 && n2 > kInnerCcMaxN2) continue;
        icases.push_back({e, 32, n2, 1, 2, 32 * n2, 32 * n2, 1, 1, true, true, true});
      }
      icases.push_back({e, 256, 4096, 1, 2, int64_t{1} << 20, int64_t{1} << 20, 1, 1, true, true, true});
      icases.push_back({e, 512, 1024, 2, 1, (int64_t{1} << 19) - 5, 1 << 18, 1, 1, true, true, true});
    }
  }
  check_inner_validation();
  {
    uint64_t iseed = 99;
    for (const InnerCase& c : icases) run_inner_case(c, iseed++);
  }
  if (inner_only) {
    std::printf(g_fail ? "FAILED %d of %d\n" : "ALL PASS (%d of %d)\n", g_fail ? g_fail : g_cases, g_cases);
    return g_fail ? 1 : 0;
  }
  check_validation();
  const OuterPath TC = OuterPath::kTensorCore, CC = OuterPath::kCudaCore;
  std::vector<Case> cases;
  // Small N2 so the float64 host reference and the emulation stay fast. N2 >= 64 where the
  // single-level tensor-core kernel (64-column tiles) runs.
  const int64_t n2s = quick ? 64 : 256;
  for (Elem e : {Elem::kBF16, Elem::kF16}) {
    for (int N1 : {16, 32, 256, 512}) {
      const int64_t N = N1 * n2s;
      cases.push_back({e, N1, n2s, 2, 3, N, N, 1, 1, true, true, 1, TC});
      if (!quick || N1 == 512) cases.push_back({e, N1, n2s, 3, 2, N / 2 + 5, N / 2 - 3, 2, 1, true, false, 2, TC});
      if (!quick) cases.push_back({e, N1, n2s, 1, 2, N - 8, 100, 1, 1, false, true, 0, TC});
    }
  }
  for (Elem e : {Elem::kF32, Elem::kBF16, Elem::kF16}) {
    for (int N1 = 2; N1 <= 512; N1 *= 2) {
      if (quick && e != Elem::kF32 && N1 != 8 && N1 != 512) continue;
      const int64_t N2 = N1 >= 256 ? 32 : 64, N = N1 * N2;
      cases.push_back({e, N1, N2, 2, 2, N, N, 1, 1, true, true, 1, CC});
      if (!quick) cases.push_back({e, N1, N2, 3, 1, N / 3 + 1, N / 2, 3, 2, true, true, 2, CC});
    }
  }
  if (!quick) {
    // Larger inner size, odd L (scalar tails), groups with R > 1.
    cases.push_back({Elem::kBF16, 256, 1024, 2, 2, 256 * 1024 - 3, 5000, 2, 2, true, true, 2, TC});
    cases.push_back({Elem::kF16, 32, 1024, 4, 1, 32 * 1024, 32 * 1024, 2, 1, true, true, 1, TC});
    cases.push_back({Elem::kF32, 64, 1024, 2, 2, 64 * 1024 - 17, 64 * 512, 1, 1, true, true, 1, CC});
  }
  // The inverse's register epilogue at the causal L = N / 2 (its post tile's rows past L come as zeros), with post
  // and without (last, so that the cases above keep their seeds).
  for (Elem e : {Elem::kBF16, Elem::kF16})
    for (int N1 : {16, 32, 256, 512})
      cases.push_back({e, N1, n2s, 2, 2, N1 * n2s / 2, N1 * n2s / 2, 1, 1, true, N1 == 32 || N1 == 512, 1, TC});
  uint64_t seed = 1234;
  for (const Case& c : cases) run_case(c, seed++);
  // fp32 output from a bf16 workspace: every tensor-core N1 (16-byte rows and an odd L's scalar tail), the CUDA-core
  // pass at a two-stage and a single-stage N1.
  for (int N1 : {16, 32, 256, 512}) {
    const int64_t N2 = N1 <= 32 ? 64 : 32;
    if (!quick || N1 == 512) run_inv_bf16_ws_case(N1, N2, 3, N1 * N2, TC, seed++);
    run_inv_bf16_ws_case(N1, N2, 2, N1 * N2 / 2 - 3, TC, seed++);
  }
  for (int N1 : {8, 256}) run_inv_bf16_ws_case(N1, 64, 2, N1 * 64 - 5, CC, seed++);
  std::printf(g_fail ? "FAILED %d of %d\n" : "ALL PASS (%d of %d)\n", g_fail ? g_fail : g_cases, g_cases);
  return g_fail ? 1 : 0;
}
