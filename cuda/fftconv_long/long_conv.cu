// The long fftconv as the handlers call it (long_conv.h): plan, scratch layout, chunking.
// The passes themselves are outer_pass.cuh, inner_pass.cuh and long_bwd.cuh.
#include "fftconv_long/long_conv.h"

#include <algorithm>
#include <cstdint>

#include "common/env_switch.h"
#include "fftconv_long/long_bwd.cuh"

namespace jff {
namespace {

using namespace longconv;

// Workspace bytes per chunk of signal rows: the workspace is the size of the rows it holds, so a
// budget keeps the scratch at O(G*H*N) + this, whatever B is. 1 GiB is thousands of CTAs per pass
// at every N (at 16M bf16: 32 rows x 8224 inner items), so chunking costs only launches.
// JFF_LONG_CHUNK_MB=<MB> overrides the budget (A/B runs: benchmarks/device_profile_jax.sh ENV_AB).
size_t chunk_bytes() {
  static const int64_t mb = env_int("JFF_LONG_CHUNK_MB", 0);
  return mb > 0 ? static_cast<size_t>(mb) << 20 : size_t{1} << 30;
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

Elem elem_of(DType t) { return static_cast<Elem>(static_cast<int>(t)); }

struct Split {
  int N1 = 0;
  int64_t N2 = 0;
};

bool split_of(int64_t N, Split* s) {
  if (N < 65536 || N > (int64_t{1} << 24)) return false;
  const int N1 = default_n1(N);
  if (N1 == 0) return false;
  s->N1 = N1;
  s->N2 = N / N1;
  return true;
}
bool split_of(const FftconvDims& d, Split* s) { return split_of(d.N, s); }

// inner_kspec_kernel's dynamic shared memory.
size_t kspec_smem(int64_t N2) { return sizeof(float2) * static_cast<size_t>(std::min<int64_t>(N2, inner::kKsMaxSub)); }

// The largest dynamic shared memory of the plan's kernels (the outer passes need less).
size_t smem_needed(Elem e, int64_t N2, bool backward) {
  size_t sm = 0;
  if (e == Elem::kF32) {
    sm = sizeof(float2) * static_cast<size_t>(N2);  // inner_cc_kernel
  } else {
    dispatch_n(N2, [&](auto n0, auto rad) { sm = BigShape<n0(), rad()>::kSmem; });
  }
  sm = std::max(sm, kspec_smem(N2));
  if (backward) {
    const size_t sub = static_cast<size_t>(bwd::sub_of(N2));
    sm = std::max(sm, sizeof(float2) * 2 * sub);  // dk_spec_kernel
    sm = std::max(sm, sizeof(float2) * static_cast<size_t>(bwd::inv_sub_of(N2)));  // dk_inv_sub_kernel
  }
  return sm;
}

bool supported(const FftconvDims& d, int device_major, size_t max_smem, bool backward) {
  if (device_major < 8 || d.layout != kBHL) return false;
  Split s;
  if (!split_of(d, &s)) return false;
  const Elem e = elem_of(d.dtype);
  if (!inner_supported(e, s.N2)) return false;
  if (d.B < 1 || d.H < 1 || d.G < 1 || d.R < 1) return false;
  if (d.L < 1 || d.L > d.N || d.Lk < 1 || d.Lk > d.N) return false;
  return smem_needed(e, s.N2, backward) <= max_smem;
}

// k's spectrum slices for all G*H filters (skip folded in; bf16 slices when `bf16`), `per_call` filters at a
// time through the fp32 scratch `scr` (kspec_scratch_bytes(per_call) bytes).
cudaError_t filter_spectra(const float* k, const float* skip, int64_t GH, int64_t Lk, const Split& s, bool bf16,
                           void* kspec, float* scr, int64_t per_call, cudaStream_t stream) {
  const size_t filter_bytes = kspec_bytes(1, s.N1, s.N2, bf16);
  for (int64_t gh0 = 0; gh0 < GH; gh0 += per_call) {
    const int64_t n = std::min(per_call, GH - gh0);
    KspecArgs ka{k + gh0 * Lk, skip ? skip + gh0 : nullptr, static_cast<uint8_t*>(kspec) + gh0 * filter_bytes, scr,
                 n, Lk, s.N1, s.N2, bf16};
    const cudaError_t err = inner_kspec(ka, stream);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

// Filters per inner_kspec call when their fp32 scratch may take `bytes`.
int64_t filters_fitting(size_t bytes, int64_t GH, const Split& s) {
  return std::clamp<int64_t>(static_cast<int64_t>(bytes / kspec_scratch_bytes(1, s.N1, s.N2)), 1, GH);
}

// Forward scratch: [K' slices | work], work = one chunk's workspace, first used as the fp32
// scratch of the filter spectra (then `filters_per_call` filters fit in it).
struct FwdPlan {
  Split s;
  size_t kspec = 0, work = 0, total = 0;
  int64_t rows_per_chunk = 0, filters_per_call = 0;
};

FwdPlan fwd_plan(const FftconvDims& d, const Split& s, bool prepared) {
  FwdPlan p;
  p.s = s;
  const Elem e = elem_of(d.dtype);
  const int64_t rows = d.B * d.H, GH = d.G * d.H;
  const size_t row_ws = workspace_bytes(e, 1, s.N1, s.N2), filter_scr = kspec_scratch_bytes(1, s.N1, s.N2);
  p.rows_per_chunk = std::clamp<int64_t>(static_cast<int64_t>(chunk_bytes() / row_ws), 1, rows);
  // Whole batch entries where a chunk holds at least one: the inner step then takes a channel's rows together
  // (ItemOrder: K' slices shared through L2, row 0 of two batch rows per transform).
  if (p.rows_per_chunk >= d.H) p.rows_per_chunk -= p.rows_per_chunk % d.H;
  const size_t rows_ws = static_cast<size_t>(p.rows_per_chunk) * row_ws;
  const size_t work = prepared ? rows_ws : std::max(rows_ws, filter_scr);
  p.filters_per_call = filters_fitting(work, GH, s);
  p.kspec = prepared ? 0 : align256(kspec_bytes(GH, s.N1, s.N2, kspec_bf16(e)));
  p.work = align256(work);
  p.total = p.kspec + p.work;
  return p;
}

// Backward scratch: [K' slices | long_backward's scratch]. The filter spectra's fp32 scratch
// (G*H rows) borrows the second part, which is at least that big (dk's spectrum alone is), and
// dk's fp32 workspace (also G*H rows, needed only after the last use of K') borrows K' itself, which is
// sized as fp32 slices for that even where the slices are bf16.
// With a kspec operand there are no K' slices, and dk's workspace is the kspec_ws result, which the
// caller aliases to kspec (the same lending, through XLA) where dk's workspace fits in it (dk_ws_fits_prepared).
struct BwdPlan {
  Split s;
  size_t kspec = 0, total = 0;
  int64_t chunk_b = 0, chunk_h = 0, filters_per_call = 0;  // all G*H filters at once
  bool lend_dk_ws = true;  // dk's workspace in K''s buffer (the built one, or the kspec_ws the caller aliases to it)
};

// Whether dk's workspace fits in the prepared K''s array (the kspec_ws result it is lent as): it does with the
// default bfloat16 workspace for 16-bit data (2N bytes per filter against 2N + 4 N2 for bfloat16 data's half-size
// K'); a float32 workspace (JFF_LONG_DK_WS_BF16=0) fits only the float32 K' and otherwise takes scratch of its own.
bool dk_ws_fits_prepared(const FftconvDims& d, const Split& s) {
  return workspace_bytes(dk_ws_elem(elem_of(d.dtype)), 1, s.N1, s.N2) <=
         static_cast<size_t>(longconv::prepared_spectrum_floats(d.N, d.dtype == DType::kBF16)) * sizeof(float);
}

// Whether K''s slices for `data` fit the prepared array's floats per filter (they do unless a build keeps bfloat16
// data's slices in float32: JFF_LONG_KSPEC_BF16=0, for which the Python layer's half-size array is too small).
bool kspec_fits_prepared(DType data, const Split& s, int64_t N) {
  return kspec_bytes(1, s.N1, s.N2, kspec_bf16(elem_of(data))) <=
         static_cast<size_t>(longconv::prepared_spectrum_floats(N, data == DType::kBF16)) * sizeof(float);
}

BwdPlan bwd_plan(const FftconvDims& d, const Split& s, bool prepared) {
  BwdPlan p;
  p.s = s;
  const Elem e = elem_of(d.dtype);
  const size_t row_ws = workspace_bytes(e, 1, s.N1, s.N2), entry_ws = row_ws * static_cast<size_t>(d.H);
  p.chunk_b = std::clamp<int64_t>(static_cast<int64_t>(chunk_bytes() / entry_ws), 1, d.B);
  // Where one batch entry's rows alone pass the budget (1M at H > 512, 2M at H > 256, ...), chunks of channels,
  // equal in size, each within it: the workspaces and dk's spectrum (~4N bytes per channel, G*H*N*4 in all: 3 GiB
  // at 1M H = 768) then hold one chunk's channels.
  if (entry_ws > chunk_bytes()) {
    const int64_t fit = std::max<int64_t>(1, static_cast<int64_t>(chunk_bytes() / row_ws));
    const int64_t chunks = (d.H + fit - 1) / fit;
    p.chunk_h = (d.H + chunks - 1) / chunks;
  }
  p.filters_per_call = d.G * d.H;
  p.kspec = prepared ? 0 : align256(kspec_bytes(d.G * d.H, s.N1, s.N2, /*bf16=*/false));
  // With channel chunks dk's workspace goes chunk by chunk where K' keeps those channels' slices, so its rows must
  // fit them (long_bwd.cuh check_bwd), as they must fit the prepared array's.
  p.lend_dk_ws = prepared ? dk_ws_fits_prepared(d, s) : (p.chunk_h == 0 || dk_ws_rows_fit_slices(e, s.N1, s.N2));
  p.total = p.kspec + align256(bwd_scratch_bytes(e, d.B, d.H, d.G, s.N1, s.N2, p.chunk_b, !p.lend_dk_ws, p.chunk_h));
  return p;
}

// XLA's scratch allocator aligns to at most 64 bytes; the plans' parts are 256-byte aligned, so the
// scratch sizes include 256 bytes of slack and the base is rounded up here (nullptr: too small).
constexpr size_t kSlack = 256;

uint8_t* aligned_base(void* scratch, size_t bytes, size_t need) {
  if (scratch == nullptr) return nullptr;
  const uintptr_t p = reinterpret_cast<uintptr_t>(scratch), q = (p + 255) / 256 * 256;
  if (bytes < need + (q - p)) return nullptr;
  return reinterpret_cast<uint8_t*>(q);
}

// Both directions' start: the problem's plan and K' in *kspec: the call's `prepared` operand, or built
// from k and skip at the aligned base of the caller's scratch (then also in *built; else nullptr), and the
// scratch after it in *rest. cudaErrorInvalidValue when the problem is not the long path's (layout, size)
// or the scratch is too small.
template <typename Plan, typename MakePlan>
cudaError_t plan_and_spectra(const FftconvDims& d, const float* k, const float* skip, const float* prepared,
                             void* scratch, size_t bytes, MakePlan make_plan, cudaStream_t stream, Plan* p,
                             const void** kspec, float** built, uint8_t** rest) {
  Split s;
  if (d.layout != kBHL || !split_of(d, &s)) return cudaErrorInvalidValue;
  *p = make_plan(d, s, prepared != nullptr);
  uint8_t* base = aligned_base(scratch, bytes, p->total);
  if (base == nullptr) return cudaErrorInvalidValue;
  *rest = base + p->kspec;
  if (prepared != nullptr) {
    if (!kspec_fits_prepared(d.dtype, s, d.N)) return cudaErrorInvalidValue;
    *kspec = prepared;
    *built = nullptr;
    return cudaSuccess;
  }
  *built = reinterpret_cast<float*>(base);
  *kspec = *built;
  return filter_spectra(k, skip, d.G * d.H, d.Lk, s, kspec_bf16(elem_of(d.dtype)), *built,
                        reinterpret_cast<float*>(*rest), p->filters_per_call, stream);
}

}  // namespace

bool long_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  return supported(d, device_major, max_smem_per_block, false);
}

bool long_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block) {
  return supported(d, device_major, max_smem_per_block, true);
}

size_t long_fwd_scratch_bytes(const FftconvFwdArgs& a) {
  Split s;
  return split_of(a.d, &s) ? fwd_plan(a.d, s, a.kspec != nullptr).total + kSlack : 0;
}

size_t long_bwd_scratch_bytes(const FftconvBwdArgs& a) {
  Split s;
  return split_of(a.d, &s) ? bwd_plan(a.d, s, a.kspec != nullptr).total + kSlack : 0;
}

bool long_spectrum_supported(int64_t N, int device_major, size_t max_smem_per_block) {
  Split s;
  return device_major >= 8 && split_of(N, &s) && kspec_smem(s.N2) <= max_smem_per_block;
}

size_t long_spectrum_scratch_bytes(int64_t GH, int64_t N) {
  Split s;
  if (!split_of(N, &s)) return 0;
  return static_cast<size_t>(filters_fitting(chunk_bytes(), GH, s)) * kspec_scratch_bytes(1, s.N1, s.N2) + kSlack;
}

cudaError_t long_filter_spectrum(const float* k, const float* skip, int64_t GH, int64_t Lk, int64_t N, DType data,
                                 float* kspec, cudaStream_t stream, void* scratch, size_t scratch_bytes) {
  Split s;
  if (!split_of(N, &s) || GH < 1 || Lk < 1 || Lk > N) return cudaErrorInvalidValue;
  if (!kspec_fits_prepared(data, s, N)) return cudaErrorInvalidValue;
  const int64_t per_call = filters_fitting(chunk_bytes(), GH, s);
  uint8_t* base = aligned_base(scratch, scratch_bytes, static_cast<size_t>(per_call) * kspec_scratch_bytes(1, s.N1, s.N2));
  if (base == nullptr) return cudaErrorInvalidValue;
  return filter_spectra(k, skip, GH, Lk, s, kspec_bf16(elem_of(data)), kspec, reinterpret_cast<float*>(base),
                        per_call, stream);
}

cudaError_t long_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes) {
  const FftconvDims& d = a.d;
  FwdPlan p;
  const void* kspec;
  float* built;
  uint8_t* work;
  cudaError_t err =
      plan_and_spectra(d, a.k, a.skip, a.kspec, scratch, scratch_bytes, fwd_plan, stream, &p, &kspec, &built, &work);
  if (err != cudaSuccess) return err;
  const Split& s = p.s;
  const Elem e = elem_of(d.dtype);
  const int64_t rows = d.B * d.H;
  for (int64_t row0 = 0; row0 < rows; row0 += p.rows_per_chunk) {
    const int64_t nr = std::min(p.rows_per_chunk, rows - row0);
    OuterFwdArgs fa{e, a.u, a.pre, work, row0, nr, d.L, s.N1, s.N2};
    if ((err = outer_forward(fa, stream)) != cudaSuccess) return err;
    InnerArgs na{e, work, kspec, row0, nr, d.H, d.G, d.R, s.N1, s.N2};
    if ((err = inner_forward(na, stream)) != cudaSuccess) return err;
    // The skip term is in K' already: the inverse reads only the workspace and post.
    OuterInvArgs ia{e, work, a.post, nullptr, nullptr, nullptr, a.y, row0, nr, d.L, d.H, d.G, d.R, s.N1, s.N2};
    if ((err = outer_inverse(ia, stream)) != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t long_bwd(const FftconvBwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes) {
  const FftconvDims& d = a.d;
  if (a.kspec != nullptr && (a.kspec_ws == nullptr || reinterpret_cast<uintptr_t>(a.kspec_ws) % 16 != 0)) {
    return cudaErrorInvalidValue;  // dk's workspace: kspec_ws, 16-byte aligned
  }
  BwdPlan p;
  const void* kspec;
  float* built;
  uint8_t* rest;
  const cudaError_t err =
      plan_and_spectra(d, a.k, a.skip, a.kspec, scratch, scratch_bytes, bwd_plan, stream, &p, &kspec, &built, &rest);
  if (err != cudaSuccess) return err;
  const Split& s = p.s;
  BwdArgs b;
  b.dtype = elem_of(d.dtype);
  b.dy = a.dy;
  b.u = a.u;
  b.pre = a.pre;
  b.post = a.post;
  b.kspec = kspec;
  b.B = d.B;
  b.H = d.H;
  b.G = d.G;
  b.R = d.R;
  b.L = d.L;
  b.Lk = d.Lk;
  b.N1 = s.N1;
  b.N2 = s.N2;
  b.du = a.du;
  b.dpre = a.dpre;
  b.dpost = a.dpost;
  b.dk = a.dk;
  b.dskip = a.dskip;
  b.scratch = rest;
  b.chunk_b = p.chunk_b;
  b.chunk_h = p.chunk_h;
  // See BwdPlan; where K''s buffer cannot take dk's workspace, long_backward takes it from its scratch.
  b.dk_ws = !p.lend_dk_ws ? nullptr : a.kspec == nullptr ? static_cast<void*>(built) : a.kspec_ws;
  return long_backward(b, stream);
}

}  // namespace jff
