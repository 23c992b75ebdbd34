// Standalone check of the long fftconv's backward (long_bwd.cuh).
//
// GPU build and run:
//   nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_80,code=sm_80
//        -Icuda -o /tmp/long_bwd_selftest cuda/fftconv_long/long_bwd_selftest.cu
//   /tmp/long_bwd_selftest [--quick] [--big]     (exit status 0 when every line says PASS)
//   /tmp/long_bwd_selftest --bench               ms of long_backward at 64K..4M vs the floor
//   /tmp/long_bwd_selftest --bench --bench-chunks     and, where B > 1, the same with chunk_b = 1, 2, 4, 8, 10
//                                                     (the op runs chunks of 1 GiB of workspace: chunk_b = 10 at 64K),
//                                                     then chunk_h = H / 2, H / 4 (channel chunks)
// CPU emulation (no GPU; see emu.h):
//   cuda/fftconv_long/emu_build.sh /tmp/long_bwd_emu cuda/fftconv_long/long_bwd_selftest.cu
//   /tmp/long_bwd_emu --quick
//
// Per case: fresh random dy, u, pre, post, k, skip (never zero), rounded to the dtype; every
// output poisoned (all-ones bits: NaN in every float type) before each run; long_backward run
// twice. Checked against the float64 definition on the same rounded values, per gradient:
//   du, dpre, dpost   rel-L2 over all rows, bars bf16 2e-2, fp16 5e-3, fp32 1e-5;
//   dk, dskip         rel-L2 over all (g, h), twice those bars (dk is reduced over the batch);
//   unwritten         no NaN left in any output;
//   det               the second run's outputs bitwise equal to the first's;
//   chunked           (B > 2) a third run with two batch entries per chunk, bitwise equal too.
//   channel chunks    (H > 1) chunk_h = ceil(H / 2), with dk's workspace its own and lent from K''s buffer: against
//                     float64, and bitwise equal to a run with chunk_b = 1.
//   dskip without dk  (skip) a run without dk: dskip rel-L2 <= 1e-6 against the reference from g and v
//                     rounded to fp32 as the kernels form them (its double sums are nearly exact).
//   lent dk workspace a last run with dk's fp32 workspace in the K' buffer (as long_conv.cu runs
//                     it), bitwise equal too.
// The reference: v = pre*u, g = dy*post (zero beyond L), khat = DFT_N(k) + skip,
//   z = IDFT(V khat), dv = IDFT(G conj khat), dpost = dy z, du = pre dv, dpre = u dv,
//   dk[g,h][j] = sum_b IDFT(conj V . G)[j] (j < Lk), dskip[g,h] = sum_b sum_t g v.
#include "fftconv_long/selftest_util.h"  // first: under the emulation, emu.h precedes all kernel code
#include "fftconv_long/host_inner.h"
#include "fftconv_long/long_bwd.cuh"

namespace {

using namespace jff::longconv;
using cd = std::complex<double>;

double bar(Elem e) { return e == Elem::kF32 ? 1e-5 : (e == Elem::kBF16 ? 2e-2 : 5e-3); }

using Case = LongCase;  // selftest_util.h

void run_case(const Case& c, uint64_t seed) {
  const int N1 = c.N1;
  const int64_t N2 = c.N2, N = N1 * N2, rows = c.B * c.H, L = c.L, Lk = c.Lk, GH = c.G * c.H;
  const std::string name = long_case_name(c);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> U(-1, 1);
  const size_t es = elem_bytes(c.e), act = rows * L * es;

  // ---- inputs (gates around 1, as in a trained gated conv; never zero)
  HostBuf dy(c.e, rows * L), u(c.e, rows * L), pre(c.e, rows * L), post(c.e, rows * L);
  for (size_t i = 0; i < u.size(); ++i) {
    dy.set(i, U(rng));
    u.set(i, U(rng));
    pre.set(i, 1.0 + 0.5 * U(rng));
    post.set(i, 1.0 + 0.5 * U(rng));
  }
  std::vector<float> kf(GH * Lk), skipf(GH);
  for (auto& x : kf) x = static_cast<float>(U(rng) / std::sqrt(static_cast<double>(Lk)));
  for (auto& x : skipf) x = static_cast<float>(U(rng));

  void* d_dy = dev_alloc(act);
  void* d_u = dev_alloc(act);
  void* d_pre = dev_alloc(act);
  void* d_post = dev_alloc(act);
  void* d_du = dev_alloc(act);
  void* d_dpre = dev_alloc(act);
  void* d_dpost = dev_alloc(act);
  float* d_k = static_cast<float*>(dev_alloc(kf.size() * 4));
  float* d_skip = static_cast<float*>(dev_alloc(GH * 4));
  float* d_dk = static_cast<float*>(dev_alloc(GH * Lk * 4));
  float* d_dskip = static_cast<float*>(dev_alloc(GH * 4));
  float* d_ks = static_cast<float*>(dev_alloc(kspec_bytes(GH, N1, N2)));
  float* d_kscr = static_cast<float*>(dev_alloc(kspec_scratch_bytes(GH, N1, N2)));
  void* d_scr = dev_alloc(bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2));
  up(d_dy, dy.raw.data(), act);
  up(d_u, u.raw.data(), act);
  up(d_pre, pre.raw.data(), act);
  up(d_post, post.raw.data(), act);
  up(d_k, kf.data(), kf.size() * 4);
  up(d_skip, skipf.data(), GH * 4);
  KspecArgs ka{d_k, c.skip ? d_skip : nullptr, d_ks, d_kscr, GH, Lk, N1, N2, kspec_bf16(c.e)};
  CK(inner_kspec(ka, nullptr));

  BwdArgs ba{};
  ba.dtype = c.e;
  ba.dy = d_dy;
  ba.u = d_u;
  ba.pre = c.pre ? d_pre : nullptr;
  ba.post = c.post ? d_post : nullptr;
  ba.kspec = d_ks;
  ba.B = c.B;
  ba.H = c.H;
  ba.G = c.G;
  ba.R = c.R;
  ba.L = L;
  ba.Lk = Lk;
  ba.N1 = N1;
  ba.N2 = N2;
  ba.du = d_du;
  ba.dpre = c.pre ? d_dpre : nullptr;
  ba.dpost = c.post ? d_dpost : nullptr;
  ba.dk = d_dk;
  ba.dskip = c.skip ? d_dskip : nullptr;
  ba.scratch = d_scr;

  struct Out {
    HostBuf du, dpre, dpost;
    std::vector<float> dk, dskip;
  };
  auto run = [&](Out& o) {
    for (void* q : {d_du, d_dpre, d_dpost}) poison(q, act);
    poison(d_dk, GH * Lk * 4);
    poison(d_dskip, GH * 4);
    poison(ba.scratch, bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2, ba.chunk_b, ba.dk_ws == nullptr, ba.chunk_h));
    CK(long_backward(ba, nullptr));
    sync();
    down(o.du.raw.data(), d_du, act);
    down(o.dpre.raw.data(), d_dpre, act);
    down(o.dpost.raw.data(), d_dpost, act);
    down(o.dk.data(), d_dk, GH * Lk * 4);
    down(o.dskip.data(), d_dskip, GH * 4);
  };
  Out o1{HostBuf(c.e, rows * L), HostBuf(c.e, rows * L), HostBuf(c.e, rows * L), std::vector<float>(GH * Lk),
         std::vector<float>(GH)};
  Out o2 = o1;
  run(o1);
  run(o2);

  // ---- float64 reference
  std::vector<double> du_ref(rows * L), dpre_ref(c.pre ? rows * L : 0), dpost_ref(c.post ? rows * L : 0);
  // dskip_ref32: with g and v rounded to fp32 as the kernels form them (exact for 16-bit data; for fp32 data
  // the rounding of each product bounds dskip's error relative to sum |g v|, not to dskip, which cancels).
  std::vector<double> dk_ref(GH * Lk, 0.0), dskip_ref(GH, 0.0), dskip_ref32(GH, 0.0);
  std::vector<cd> V(N), G(N), a(N);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t b = r / c.H, h = r % c.H, g = group_of(b, c.R, c.G), gh = g * c.H + h;
    const std::vector<double> kd(kf.begin() + gh * Lk, kf.begin() + (gh + 1) * Lk);
    const std::vector<cd> kh = host::filter_spectrum(kd.data(), Lk, c.skip ? skipf[gh] : 0.0, N);
    std::fill(V.begin(), V.end(), cd(0, 0));
    std::fill(G.begin(), G.end(), cd(0, 0));
    for (int64_t t = 0; t < L; ++t) {
      const size_t i = r * L + t;
      V[t] = c.pre ? u.get(i) * pre.get(i) : u.get(i);
      G[t] = c.post ? dy.get(i) * post.get(i) : dy.get(i);
      dskip_ref[gh] += V[t].real() * G[t].real();
      dskip_ref32[gh] += double(float(V[t].real())) * double(float(G[t].real()));
    }
    jff::host::Fft(V, false);
    jff::host::Fft(G, false);
    // z -> dpost
    if (c.post) {
      for (int64_t f = 0; f < N; ++f) a[f] = V[f] * kh[f];
      jff::host::Fft(a, true);
      for (int64_t t = 0; t < L; ++t) dpost_ref[r * L + t] = dy.get(r * L + t) * a[t].real();
    }
    // dv -> du, dpre
    for (int64_t f = 0; f < N; ++f) a[f] = G[f] * std::conj(kh[f]);
    jff::host::Fft(a, true);
    for (int64_t t = 0; t < L; ++t) {
      const size_t i = r * L + t;
      const double dv = a[t].real();
      du_ref[i] = c.pre ? pre.get(i) * dv : dv;
      if (c.pre) dpre_ref[i] = u.get(i) * dv;
    }
    // dk
    for (int64_t f = 0; f < N; ++f) a[f] = std::conj(V[f]) * G[f];
    jff::host::Fft(a, true);
    for (int64_t j = 0; j < Lk; ++j) dk_ref[gh * Lk + j] += a[j].real();
  }
  const double bb = bar(c.e);
  char d[300];
  // One run's outputs against the reference: PASS line `what` with the five errors.
  auto check = [&](const Out& o, const std::string& what) {
    ErrAcc e_du, e_dpre, e_dpost, e_dk, e_dskip;
    for (int64_t i = 0; i < rows * L; ++i) {
      e_du.add(o.du.get(i), du_ref[i]);
      if (c.pre) e_dpre.add(o.dpre.get(i), dpre_ref[i]);
      if (c.post) e_dpost.add(o.dpost.get(i), dpost_ref[i]);
    }
    for (int64_t i = 0; i < GH * Lk; ++i) e_dk.add(o.dk[i], dk_ref[i]);
    if (c.skip)
      for (int64_t i = 0; i < GH; ++i) e_dskip.add(o.dskip[i], dskip_ref[i]);
    std::snprintf(d, sizeof d, "du %.2e dpre %.2e dpost %.2e (bar %.0e) dk %.2e dskip %.2e (bar %.0e)", e_du.rel(),
                  c.pre ? e_dpre.rel() : 0.0, c.post ? e_dpost.rel() : 0.0, bb, e_dk.rel(),
                  c.skip ? e_dskip.rel() : 0.0, 2 * bb);
    const bool ok = e_du.rel() <= bb && (!c.pre || e_dpre.rel() <= bb) && (!c.post || e_dpost.rel() <= bb) &&
                    e_dk.rel() <= 2 * bb && (!c.skip || e_dskip.rel() <= 2 * bb);
    line(ok, what, d);
  };
  check(o1, "bwd " + name);
  // Every output of o bitwise equal to those of `ref` (by default the first run).
  auto same_as_first = [&](const Out& o, const Out* ref = nullptr) {
    const Out& r = ref != nullptr ? *ref : o1;
    bool eq = r.du.raw == o.du.raw && std::memcmp(r.dk.data(), o.dk.data(), r.dk.size() * 4) == 0;
    if (c.pre) eq = eq && r.dpre.raw == o.dpre.raw;
    if (c.post) eq = eq && r.dpost.raw == o.dpost.raw;
    if (c.skip) eq = eq && std::memcmp(r.dskip.data(), o.dskip.data(), r.dskip.size() * 4) == 0;
    return eq;
  };
  line(same_as_first(o2), "det bwd " + name, "");
  if (c.B > 2) {
    // Two batch entries per chunk (scratch sized for that): bitwise the unchunked result, since dk's spectrum
    // accumulates in ascending b either way, every other output is per row, and the inner step pairs the same
    // batch entries (b, b + 1 from even b; JFF_LONG_PAIR_ROWS) at every even chunk size.
    void* d_scr1 = dev_alloc(bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2, 2));
    ba.scratch = d_scr1;
    ba.chunk_b = 2;
    run(o2);
    line(same_as_first(o2), "chunked bwd " + name, "chunk_b = 2, bitwise vs all rows at once");
    dev_free(d_scr1);
  }
  if (c.H > 1) {
    // Channel chunks (what the op runs where one batch entry's rows pass its workspace budget): chunks of
    // ceil(H / 2) channels (H odd: a smaller last one), one batch entry at a time, with their own dk workspace and
    // with it lent from K''s buffer (each chunk's part where K' kept its channels' slices). Checked against
    // float64 and bitwise against one batch entry per chunk (the same sums in the same order, no rows paired).
    Out ob1 = o1;
    void* d_scr1 = dev_alloc(bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2, 1));
    ba.scratch = d_scr1;
    ba.chunk_b = 1;
    run(ob1);
    dev_free(d_scr1);
    ba.chunk_b = 0;
    ba.chunk_h = (c.H + 1) / 2;
    d_scr1 = dev_alloc(bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2, 0, true, ba.chunk_h));
    ba.scratch = d_scr1;
    run(o2);
    check(o2, "channel chunks bwd " + name);
    line(same_as_first(o2, &ob1), "channel chunks bitwise bwd " + name,
         "chunk_h = " + std::to_string(ba.chunk_h) + ", bitwise vs chunk_b = 1");
    dev_free(d_scr1);
    if (dk_ws_rows_fit_slices(c.e, N1, N2)) {
      // K' in a copy (the chunks read it while dk's workspace overwrites the lent buffer's dead parts).
      float* d_ks2 = static_cast<float*>(dev_alloc(kspec_bytes(GH, N1, N2)));
      std::vector<uint8_t> ks(kspec_bytes(GH, N1, N2));
      down(ks.data(), d_ks, ks.size());
      up(d_ks2, ks.data(), ks.size());
      d_scr1 = dev_alloc(bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2, 0, false, ba.chunk_h));
      ba.scratch = d_scr1;
      ba.kspec = d_ks2;
      ba.dk_ws = d_ks2;
      run(o2);
      line(same_as_first(o2, &ob1), "channel chunks lent dk workspace bwd " + name,
           "dk_ws = the K' buffer, bitwise vs chunk_b = 1");
      ba.kspec = d_ks;
      ba.dk_ws = nullptr;
      dev_free(d_scr1);
      dev_free(d_ks2);
    }
    ba.chunk_h = 0;
    ba.scratch = d_scr;
  }
  if (c.skip) {
    // Without dk the backward takes other inner kernels (bwd_inner_tc_kernel needs dk); dskip's double sums
    // stay nearly exact either way (against dskip_ref32: with fp32 data and H = 1 the fp32 products alone gave
    // 1.3e-6 against the exact dskip_ref on one seed).
    ba.dk = nullptr;
    ba.scratch = d_scr;  // (the chunked run's scratch is freed)
    ba.chunk_b = 0;
    run(o2);
    ErrAcc e;
    for (int64_t i = 0; i < GH; ++i) e.add(o2.dskip[i], dskip_ref32[i]);
    std::snprintf(d, sizeof d, "dskip %.2e (bar 1e-6)", e.rel());
    line(e.rel() <= 1e-6, "dskip without dk bwd " + name, d);
    ba.dk = d_dk;
  }
  {
    // dk's workspace lent from the K' buffer, as long_conv.cu lends it (K' is dead when that
    // workspace is first written), with the scratch that then leaves it out: bitwise the first
    // run. K' is spoiled afterwards, so this is the case's last run.
    void* d_scr2 = dev_alloc(bwd_scratch_bytes(c.e, c.B, c.H, c.G, N1, N2, 0, false));
    ba.scratch = d_scr2;
    ba.chunk_b = 0;
    ba.dk_ws = d_ks;
    run(o2);
    line(same_as_first(o2), "lent dk workspace bwd " + name, "dk_ws = the K' buffer, bitwise vs its own workspace");
    ba.dk_ws = nullptr;
    dev_free(d_scr2);
  }
  for (void* q : {d_dy, d_u, d_pre, d_post, d_du, d_dpre, d_dpost, d_scr}) dev_free(q);
  for (float* q : {d_k, d_skip, d_dk, d_dskip, d_ks, d_kscr}) dev_free(q);
}

// Invalid arguments are refused before any launch.
void check_validation() {
  BwdArgs a{};
  a.dtype = Elem::kBF16;
  static float dummy[64] __attribute__((aligned(256)));
  a.dy = a.u = a.du = a.scratch = dummy;
  a.kspec = dummy;
  a.B = a.H = a.G = a.R = 1;
  a.L = a.Lk = 16 * 256;
  a.N1 = 16;
  a.N2 = 256;
  const bool base_ok = check_bwd(a) == nullptr;
  BwdArgs x = a;
  x.N2 = 2048;  // no inner step for it
  const bool r1 = check_bwd(x) != nullptr;
  x = a;
  x.dpre = dummy;  // without pre
  const bool r2 = check_bwd(x) != nullptr;
  x = a;
  x.dpost = dummy;  // without post
  const bool r3 = check_bwd(x) != nullptr;
  x = a;
  x.Lk = 16 * 256 + 1;
  const bool r4 = check_bwd(x) != nullptr && long_backward(x, nullptr) == cudaErrorInvalidValue;
  line(base_ok && r1 && r2 && r3 && r4, "bwd argument refusal", "");
}

#ifndef JFF_LONG_EMU


// The whole backward at long sizes (all gates, skip, dk, dskip): ms next to the 7-stream floor
// (dy, u, pre, post read; du, dpre, dpost written; k and dk not counted) at the measured
// device-to-device copy rate, and next to the forward pipeline (outer fwd, inner, outer inv).
bool g_bench_chunks = false;  // --bench-chunks

void bench() {
  struct Bc {
    int64_t N, Bt, H;
    Elem e;
  };
  const Bc cases[] = {{int64_t{1} << 20, 1, 768, Elem::kBF16}, {int64_t{1} << 16, 16, 768, Elem::kBF16},
                      {int64_t{1} << 18, 4, 768, Elem::kBF16},
                      {int64_t{1} << 22, 1, 192, Elem::kBF16}, {int64_t{1} << 20, 1, 384, Elem::kF32}};
  for (const Bc& b : cases) {
    const int N1 = default_n1(b.N);
    const int64_t N2 = b.N / N1, rows = b.Bt * b.H, L = b.N, GH = b.H;
    if (!inner_supported(b.e, N2)) continue;
    const size_t es = elem_bytes(b.e), sb = rows * L * es;
    void* t[7];
    for (void*& q : t) q = dev_alloc(sb);
    for (int i = 0; i < 4; ++i) {
      if (b.e == Elem::kF32) {
        std::vector<float> h(rows * L);
        std::mt19937 rng(i);
        std::uniform_real_distribution<float> U(0.5f, 1.5f);
        for (auto& x : h) x = U(rng);
        up(t[i], h.data(), sb);
      } else {
        fill_kernel<<<1024, 256>>>(static_cast<uint16_t*>(t[i]), rows * L, 17u + i);
      }
    }
    std::vector<float> kh(GH * L);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> U(-1.f, 1.f);
    for (auto& x : kh) x = U(rng) * 1e-3f;
    float* kf = static_cast<float*>(dev_alloc(kh.size() * 4));
    up(kf, kh.data(), kh.size() * 4);
    float* skip = static_cast<float*>(dev_alloc(GH * 4));
    CK(cudaMemset(skip, 0, GH * 4));
    float* ks = static_cast<float*>(dev_alloc(kspec_bytes(GH, N1, N2)));
    float* kscr = static_cast<float*>(dev_alloc(kspec_scratch_bytes(GH, N1, N2)));
    float* dk = static_cast<float*>(dev_alloc(GH * L * 4));
    float* dskip = static_cast<float*>(dev_alloc(GH * 4));
    void* scr = dev_alloc(bwd_scratch_bytes(b.e, b.Bt, b.H, 1, N1, N2));
    KspecArgs ka{kf, skip, ks, kscr, GH, L, N1, N2, kspec_bf16(b.e)};
    CK(inner_kspec(ka, nullptr));
    BwdArgs ba{};
    ba.dtype = b.e;
    ba.dy = t[0];
    ba.u = t[1];
    ba.pre = t[2];
    ba.post = t[3];
    ba.kspec = ks;
    ba.B = b.Bt;
    ba.H = b.H;
    ba.G = ba.R = 1;
    ba.L = ba.Lk = L;
    ba.N1 = N1;
    ba.N2 = N2;
    ba.du = t[4];
    ba.dpre = t[5];
    ba.dpost = t[6];
    ba.dk = dk;
    ba.dskip = dskip;
    ba.scratch = scr;
    const double ms = time_ms([&] { CK(long_backward(ba, nullptr)); }, 5);
    // One more run with an event after each step: where the time goes.
    StepMarks marks;
    for (cudaEvent_t& e : marks.ev) CK(cudaEventCreate(&e));
    ba.marks = &marks;
    CK(long_backward(ba, nullptr));
    CK(cudaDeviceSynchronize());
    ba.marks = nullptr;
    std::vector<std::pair<std::string, double>> steps;  // summed over chunks, in first-seen order
    for (int i = 1; i < marks.n; ++i) {
      float t = 0;
      CK(cudaEventElapsedTime(&t, marks.ev[i - 1], marks.ev[i]));
      auto it = std::find_if(steps.begin(), steps.end(), [&](const auto& x) { return x.first == marks.name[i]; });
      if (it == steps.end())
        steps.emplace_back(marks.name[i], t);
      else
        it->second += t;
    }
    for (cudaEvent_t e : marks.ev) CK(cudaEventDestroy(e));
    OuterFwdArgs fa{b.e, t[1], t[2], scr, 0, rows, L, N1, N2};
    InnerArgs na{b.e, scr, ks, 0, rows, b.H, 1, 1, N1, N2};
    OuterInvArgs ia{b.e, scr, t[3], nullptr, nullptr, nullptr, t[4], 0, rows, L, b.H, 1, 1, N1, N2};
    const double fwd = time_ms(
        [&] {
          CK(outer_forward(fa, nullptr));
          CK(inner_forward(na, nullptr));
          CK(outer_inverse(ia, nullptr));
        },
        5);
    const double cp = time_ms([&] { CK(cudaMemcpyAsync(t[5], t[4], sb, cudaMemcpyDeviceToDevice)); }, 5);
    const double bw = 2.0 * sb / (cp * 1e-3);  // bytes/s of a copy (read + write)
    const double floor_ms = 7.0 * sb / bw * 1e3;
    std::printf("bwd %s N=%lld (%d x %lld) B=%lld H=%lld: %.3f ms = %.2fx the 7-stream floor"
                " (%.3f ms at copy %.0f GB/s); forward pipeline %.3f ms\n",
                ename(b.e), static_cast<long long>(b.N), N1, static_cast<long long>(N2), static_cast<long long>(b.Bt),
                static_cast<long long>(b.H), ms, ms / floor_ms, floor_ms, bw * 1e-9, fwd);
    for (const auto& st : steps) std::printf("    %-55s %8.3f ms\n", st.first.c_str(), st.second);
    if (g_bench_chunks) {  // smaller chunks (the scratch, sized for all entries at once, holds any of them)
      for (int64_t cb : {1, 2, 4, 8, 10}) {
        if (cb >= b.Bt) break;
        ba.chunk_b = cb;
        std::printf("    chunk_b = %-2lld: %.3f ms\n", static_cast<long long>(cb),
                    time_ms([&] { CK(long_backward(ba, nullptr)); }, 5));
      }
      ba.chunk_b = 0;
      // Channel chunks, one batch entry at a time (the op's plan where one entry's rows pass its budget).
      for (int64_t hc : {b.H / 2, b.H / 4}) {
        ba.chunk_h = hc;
        std::printf("    chunk_h = %-4lld: %.3f ms\n", static_cast<long long>(hc),
                    time_ms([&] { CK(long_backward(ba, nullptr)); }, 5));
      }
      ba.chunk_h = 0;
    }
    std::fflush(stdout);
    for (void* q : t) dev_free(q);
    for (float* q : {kf, skip, ks, kscr, dk, dskip}) dev_free(q);
    dev_free(scr);
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, big = false;
#ifndef JFF_LONG_EMU
  for (int i = 1; i < argc; ++i) g_bench_chunks |= !std::strcmp(argv[i], "--bench-chunks");  // (before --bench runs)
#endif
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--big")) big = true;
    if (!std::strcmp(argv[i], "--bench")) {
#ifndef JFF_LONG_EMU
      bench();
      return 0;
#else
      std::printf("--bench needs the GPU build\n");
      return 2;
#endif
    }
  }
  check_validation();
  std::vector<Case> cases;
  for (Elem e : {Elem::kBF16, Elem::kF16, Elem::kF32}) {
    // N1 = 16: tensor-core outer passes for 16-bit; odd L, Lk < N, groups, all gates and skip.
    cases.push_back({e, 16, 256, 3, 2, 16 * 256 - 7, 1000, 2, 1, true, true, true});
    // N1 = 4 (CUDA-core outer), no gates, no skip, L = Lk = N.
    cases.push_back({e, 4, 256, 2, 1, 4 * 256, 4 * 256, 1, 1, false, false, false});
    if (!quick) {
      cases.push_back({e, 2, 1024, 2, 2, 2 * 1024 - 3, 2 * 1024 / 3, 1, 1, true, false, true});  // row 0 only
      cases.push_back({e, 8, 256, 3, 2, 8 * 256 / 2 + 5, 8 * 256 / 2 - 3, 2, 2, false, true, true});
      cases.push_back({e, 16, 1024, 2, 1, 16 * 1024, 16 * 1024, 1, 1, true, true, false});
      cases.push_back({e, 4, 1024, 3, 1, 4 * 1024 - 1, 511, 3, 1, true, true, true});  // G = B: one row per group
    }
  }
  // N2 = 8192, in --quick so that the emulated CI run and the sanitizers reach them: bf16, the tensor-core backward
  // inner step at N0 = 32 and the one-FFT dk inverse (512 threads) in slot order; fp32, dk_spec_kernel's folded
  // radix-2 step and the same inverse in natural order.
  cases.push_back({Elem::kBF16, 4, 8192, 2, 1, 4 * 8192 - 5, 3000, 1, 1, true, true, true});
  cases.push_back({Elem::kF32, 4, 8192, 2, 1, 4 * 8192 - 3, 5000, 1, 1, true, true, true});
  // N2 = 4096 (the 64K, 1M and 2M split): the tensor-core dk spectrum with its outer DFT over N0 = 16; more
  // groups than batch rows (group 2 has none: its slot-ordered S is zero).
  cases.push_back({Elem::kBF16, 2, 4096, 2, 2, 2 * 4096 - 9, 2 * 4096 - 100, 3, 1, true, true, true});
  // N1 = 16 with 16-byte rows: the du / dpre pass's staged path, which also forms dskip's partials (fused_dskip)
  // from its staging slots (the odd-L case above reads them from global memory).
  cases.push_back({Elem::kBF16, 16, 256, 2, 2, 16 * 256, 16 * 256 / 2, 1, 1, true, true, true});
  // Odd H in two groups: channel chunks of 2 and 1 channels (the chunk's K' and S views per group).
  cases.push_back({Elem::kBF16, 16, 256, 2, 3, 16 * 256 - 2, 16 * 256 / 2, 2, 1, true, true, true});
  // N1 = 32 with L = N: on Hopper the du / dpre pass's TMA stages and its outputs' box stores (inv2_tma,
  // inv_tma_store), which need whole n1 rows of 16-byte-aligned data.
  cases.push_back({Elem::kBF16, 32, 256, 2, 1, 32 * 256, 32 * 256 / 2, 1, 1, true, true, true});
  // Without skip on Hopper, the du / dpre pass's register epilogue (two outputs; outer_tc.cuh, inv_reg_epi) at one
  // and two levels.
  cases.push_back({Elem::kBF16, 32, 256, 2, 1, 32 * 256, 32 * 256 / 2, 1, 1, true, true, false});
  cases.push_back({Elem::kF16, 256, 256, 1, 1, 256 * 256, 256 * 256 / 3, 1, 1, true, true, false});
  // With skip at two levels (N1 = 512: dskip's partials fused into the du / dpre pass's register epilogue).
  cases.push_back({Elem::kBF16, 512, 256, 1, 1, 512 * 256, 512 * 256 / 2, 1, 1, true, true, true});
  if (!quick) {
    cases.push_back({Elem::kF16, 16, 4096, 3, 1, 16 * 4096, 16 * 4096, 1, 1, true, true, true});
    // The other tensor-core outer sizes: N1 = 32 (single level), 256 and 512 (two levels).
    for (Elem e : {Elem::kBF16, Elem::kF16}) {
      cases.push_back({e, 32, 256, 2, 1, 32 * 256 - 1, 32 * 256 / 4 + 1, 1, 1, true, true, true});
      cases.push_back({e, 256, 256, 1, 2, 256 * 256, 256 * 256, 1, 1, true, true, true});
      cases.push_back({e, 512, 256, 2, 1, 512 * 256 / 2 + 3, 512 * 256 / 2, 1, 1, true, false, true});
    }
    // More groups than batch rows: groups without rows get dk = dskip = 0.
    cases.push_back({Elem::kF32, 8, 256, 2, 2, 8 * 256, 100, 4, 1, true, true, true});
    // N2 > 8192: the dk kernels' folded radix-S step with S = 4, 8 and the inverse's combine; the inner kernel at 16K / 32K.
    cases.push_back({Elem::kF32, 2, 16384, 2, 1, 2 * 16384, 2 * 16384, 1, 1, true, true, true});
    cases.push_back({Elem::kF16, 2, 16384, 1, 2, 2 * 16384 - 1, 9000, 1, 1, true, true, true});
    cases.push_back({Elem::kBF16, 2, 32768, 2, 1, 2 * 32768 - 3, 40000, 1, 1, true, true, true});
  }
  if (big) {
    for (Elem e : {Elem::kBF16, Elem::kF16})
      cases.push_back({e, 256, 4096, 2, 2, int64_t{1} << 20, int64_t{1} << 20, 1, 1, true, true, true});
    cases.push_back({Elem::kBF16, 32, 32768, 2, 1, 32 * 32768, 32 * 32768 / 2, 1, 1, true, true, true});
  }
  uint64_t seed = 4321;
  for (const Case& c : cases) run_case(c, seed++);
  std::printf(g_fail ? "FAILED %d of %d\n" : "ALL PASS (%d of %d)\n", g_fail ? g_fail : g_cases, g_cases);
  return g_fail ? 1 : 0;
}
