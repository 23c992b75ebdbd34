// CPU handlers of jff_depthwise_fwd / jff_depthwise_bwd (contract: cuda/README.md).
//
// Direct loops with double accumulation. Channels are processed in chunks of kChunk and the
// sequence in tiles of kTile rows: each tile's input window (with its zero padding already
// applied) is widened once into a [row][channel] double buffer, so the tap loop has no
// bounds checks and its innermost loop runs over contiguous channels in either layout.
// dw and dbias are reduced per channel chunk inside one work item, in a fixed
// (batch, tile, tap, row) order, so they do not depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common/ffi_util.h"
#include "depthwise/depthwise_args.h"
#include "depthwise/validate.h"
#include "fftconv/cpu_fft.h"  // 16-bit conversions and the thread-pool parallel-for
#include "xla/ffi/api/ffi.h"

namespace jff {
namespace {

using cpu::Elem;

constexpr int64_t kChunk = 16;  // channels per work item
constexpr int64_t kTile = 512;  // output rows per window

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------

// Element (b, t, d) of a (B, length, D) activation in either layout.
struct Addressing {
  int64_t length, D;
  bool blh;
  int64_t At(int64_t b, int64_t t, int64_t d) const {
    return blh ? (b * length + t) * D + d : (b * D + d) * length + t;
  }
};

// Rows [r0, r0 + rows) of channels [d0, d0 + cw) of batch b, widened to double into
// buf[(r - r0) * kChunk + c]; rows outside [0, length) are the zero padding.
template <DType DT>
void LoadWindow(const typename Elem<DT>::Storage* src, const Addressing& a, int64_t b, int64_t r0,
                int64_t rows, int64_t d0, int64_t cw, double* buf) {
  using E = Elem<DT>;
  const int64_t lo = std::clamp<int64_t>(-r0, 0, rows);              // first in-range row
  const int64_t hi = std::clamp<int64_t>(a.length - r0, lo, rows);   // one past the last
  std::fill(buf, buf + lo * kChunk, 0.0);
  std::fill(buf + hi * kChunk, buf + rows * kChunk, 0.0);
  if (a.blh) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t base = a.At(b, r0 + r, d0);
      for (int64_t c = 0; c < cw; ++c) buf[r * kChunk + c] = E::Load(src, base + c);
    }
  } else {
    for (int64_t c = 0; c < cw; ++c) {
      const int64_t base = a.At(b, r0, d0 + c);
      for (int64_t r = lo; r < hi; ++r) buf[r * kChunk + c] = E::Load(src, base + r);
    }
  }
}

template <DType DT>
void StoreRows(typename Elem<DT>::Storage* dst, const Addressing& a, int64_t b, int64_t r0,
               int64_t rows, int64_t d0, int64_t cw, const double* buf) {
  using E = Elem<DT>;
  if (a.blh) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t base = a.At(b, r0 + r, d0);
      for (int64_t c = 0; c < cw; ++c) E::Store(dst, base + c, buf[r * kChunk + c]);
    }
  } else {
    for (int64_t c = 0; c < cw; ++c) {
      const int64_t base = a.At(b, r0, d0 + c);
      for (int64_t r = 0; r < rows; ++r) E::Store(dst, base + r, buf[r * kChunk + c]);
    }
  }
}

// w[:, d0:d0+cw] as wbuf[j * kChunk + c]; unused lanes are zero so the tap loops can run
// over the full chunk width.
template <DType WT>
void LoadTaps(const void* w, const DepthwiseDims& d, int64_t d0, int64_t cw, double* wbuf) {
  const auto* ws = static_cast<const typename Elem<WT>::Storage*>(w);
  std::fill(wbuf, wbuf + d.K * kChunk, 0.0);
  for (int64_t j = 0; j < d.K; ++j)
    for (int64_t c = 0; c < cw; ++c) wbuf[j * kChunk + c] = Elem<WT>::Load(ws, j * d.D + d0 + c);
}

template <DType WT>
void LoadBias(const void* bias, int64_t d0, int64_t cw, double* bbuf) {
  std::fill(bbuf, bbuf + kChunk, 0.0);
  if (!bias) return;
  const auto* bs = static_cast<const typename Elem<WT>::Storage*>(bias);
  for (int64_t c = 0; c < cw; ++c) bbuf[c] = Elem<WT>::Load(bs, d0 + c);
}

struct Scratch {
  std::vector<double> win, rows, taps, bias;
  void Size(int64_t K) {
    win.resize((kTile + K - 1) * kChunk);
    rows.resize(kTile * kChunk);
    taps.resize(K * kChunk);
    bias.resize(kChunk);
  }
};

int64_t NumChunks(const DepthwiseDims& d) { return (d.D + kChunk - 1) / kChunk; }

// One (batch, channel chunk) item of the forward.
template <DType XT, DType WT>
void FwdItem(const DepthwiseFwdArgs& args, int64_t item, Scratch& s) {
  using X = typename Elem<XT>::Storage;
  const DepthwiseDims& d = args.d;
  const int64_t b = item / NumChunks(d), d0 = (item % NumChunks(d)) * kChunk;
  const int64_t cw = std::min(kChunk, d.D - d0);
  s.Size(d.K);
  LoadTaps<WT>(args.w, d, d0, cw, s.taps.data());
  LoadBias<WT>(args.bias, d0, cw, s.bias.data());
  const Addressing ax{d.L, d.D, d.layout == kBLH};
  const Addressing ay{d.L_out, d.D, d.layout == kBLH};
  const X* x = static_cast<const X*>(args.x);
  X* y = static_cast<X*>(args.y);
  for (int64_t t0 = 0; t0 < d.L_out; t0 += kTile) {
    const int64_t n = std::min(kTile, d.L_out - t0);
    // y[t] needs x[t - pad_lo .. t - pad_lo + K - 1]
    LoadWindow<XT>(x, ax, b, t0 - d.pad_lo, n + d.K - 1, d0, cw, s.win.data());
    for (int64_t t = 0; t < n; ++t) {
      double acc[kChunk];
      for (int64_t c = 0; c < kChunk; ++c) acc[c] = s.bias[c];
      for (int64_t j = 0; j < d.K; ++j) {
        const double* wr = s.taps.data() + j * kChunk;
        const double* xr = s.win.data() + (t + j) * kChunk;
        for (int64_t c = 0; c < kChunk; ++c) acc[c] += wr[c] * xr[c];
      }
      std::copy(acc, acc + kChunk, s.rows.data() + t * kChunk);
    }
    StoreRows<XT>(y, ay, b, t0, n, d0, cw, s.rows.data());
  }
}

// One (batch, channel chunk) item of dx: dx[s] = sum_j w[j] dy[s + pad_lo - j], with dy zero
// outside [0, L_out) — the transpose of the forward's window.
template <DType XT, DType WT>
void DxItem(const DepthwiseBwdArgs& args, int64_t item, Scratch& s) {
  using X = typename Elem<XT>::Storage;
  const DepthwiseDims& d = args.d;
  const int64_t b = item / NumChunks(d), d0 = (item % NumChunks(d)) * kChunk;
  const int64_t cw = std::min(kChunk, d.D - d0);
  s.Size(d.K);
  LoadTaps<WT>(args.w, d, d0, cw, s.taps.data());
  const Addressing ax{d.L, d.D, d.layout == kBLH};
  const Addressing ay{d.L_out, d.D, d.layout == kBLH};
  const X* dy = static_cast<const X*>(args.dy);
  X* dx = static_cast<X*>(args.dx);
  for (int64_t s0 = 0; s0 < d.L; s0 += kTile) {
    const int64_t n = std::min(kTile, d.L - s0);
    // Window row (s - s0) + (K - 1 - j) holds dy[s + pad_lo - j].
    LoadWindow<XT>(dy, ay, b, s0 + d.pad_lo - (d.K - 1), n + d.K - 1, d0, cw, s.win.data());
    for (int64_t r = 0; r < n; ++r) {
      double acc[kChunk] = {};
      for (int64_t j = 0; j < d.K; ++j) {
        const double* wr = s.taps.data() + j * kChunk;
        const double* gr = s.win.data() + (r + d.K - 1 - j) * kChunk;
        for (int64_t c = 0; c < kChunk; ++c) acc[c] += wr[c] * gr[c];
      }
      std::copy(acc, acc + kChunk, s.rows.data() + r * kChunk);
    }
    StoreRows<XT>(dx, ax, b, s0, n, d0, cw, s.rows.data());
  }
}

// One channel chunk of dw and dbias, summed over every batch and output row in a fixed order.
template <DType XT>
void DwItem(const DepthwiseBwdArgs& args, int64_t chunk, Scratch& s) {
  using X = typename Elem<XT>::Storage;
  const DepthwiseDims& d = args.d;
  const int64_t d0 = chunk * kChunk;
  const int64_t cw = std::min(kChunk, d.D - d0);
  s.Size(d.K);
  double* dw = s.taps.data();  // reused as the dw accumulator (K x kChunk)
  std::fill(dw, dw + d.K * kChunk, 0.0);
  double db[kChunk] = {};
  const Addressing ax{d.L, d.D, d.layout == kBLH};
  const Addressing ay{d.L_out, d.D, d.layout == kBLH};
  const X* x = static_cast<const X*>(args.x);
  const X* dy = static_cast<const X*>(args.dy);
  for (int64_t b = 0; b < d.B; ++b) {
    for (int64_t t0 = 0; t0 < d.L_out; t0 += kTile) {
      const int64_t n = std::min(kTile, d.L_out - t0);
      LoadWindow<XT>(dy, ay, b, t0, n, d0, cw, s.rows.data());
      LoadWindow<XT>(x, ax, b, t0 - d.pad_lo, n + d.K - 1, d0, cw, s.win.data());
      const double* g = s.rows.data();
      for (int64_t t = 0; t < n; ++t)
        for (int64_t c = 0; c < kChunk; ++c) db[c] += g[t * kChunk + c];
      for (int64_t j = 0; j < d.K; ++j) {
        double* acc = dw + j * kChunk;
        for (int64_t t = 0; t < n; ++t) {
          const double* xr = s.win.data() + (t + j) * kChunk;
          for (int64_t c = 0; c < kChunk; ++c) acc[c] += g[t * kChunk + c] * xr[c];
        }
      }
    }
  }
  for (int64_t j = 0; j < d.K; ++j)
    for (int64_t c = 0; c < cw; ++c) args.dw[j * d.D + d0 + c] = static_cast<float>(dw[j * kChunk + c]);
  if (args.dbias)
    for (int64_t c = 0; c < cw; ++c) args.dbias[d0 + c] = static_cast<float>(db[c]);
}

// Calls f(x_tag, w_tag) with the std::integral_constant<DType> pair for the call's dtypes.
template <typename F>
ffi::Error DispatchDtypes(const DepthwiseDims& d, F f) {
  using std::integral_constant;
  auto with_w = [&](auto x_tag) {
    if (d.w_dtype == DType::kF32) return f(x_tag, integral_constant<DType, DType::kF32>());
    return f(x_tag, x_tag);  // validation allows only float32 or x's dtype
  };
  switch (d.x_dtype) {
    case DType::kF32: return with_w(integral_constant<DType, DType::kF32>());
    case DType::kBF16: return with_w(integral_constant<DType, DType::kBF16>());
    case DType::kF16: return with_w(integral_constant<DType, DType::kF16>());
  }
  return InvalidArg("depthwise: unsupported dtype");
}

ffi::Error Run(const char* op, ffi::ThreadPool& pool, int64_t items, double work,
               const std::function<void(int64_t, Scratch&)>& body, int64_t K) {
  const int64_t scratch = (2 * kTile + K + 1) * kChunk * static_cast<int64_t>(sizeof(double));
  const int64_t workers = cpu::ChooseWorkers(pool, items, work, scratch);
  std::string err = cpu::ParallelFor<Scratch>(pool, items, workers, body);
  if (!err.empty()) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, std::string("jax_flashfft: ") + op + ": " + err);
  }
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

ffi::Error DepthwiseFwdCpu(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer w,
                           ffi::AnyBuffer bias, ffi::Result<ffi::AnyBuffer> y, int64_t pad_lo,
                           int64_t pad_hi, int32_t layout) {
  constexpr const char* kOp = "jff_depthwise_fwd";
  DepthwiseFwdArgs a;
  bool has_bias = false;
  JFF_RETURN_IF_ERROR(ValidateFwd(kOp, x, w, bias, *y, pad_lo, pad_hi, layout, &a.d, &has_bias));
  const DepthwiseDims& d = a.d;
  a.x = x.untyped_data();
  a.w = w.untyped_data();
  a.bias = has_bias ? bias.untyped_data() : nullptr;
  a.y = y->untyped_data();
  if (d.B == 0) return ffi::Error::Success();
  const double work = 2.0 * d.B * d.L_out * d.D * d.K;
  return DispatchDtypes(d, [&](auto xt, auto wt) {
    constexpr DType XT = decltype(xt)::value, WT = decltype(wt)::value;
    return Run(kOp, pool, d.B * NumChunks(d), work,
               [&](int64_t item, Scratch& s) { FwdItem<XT, WT>(a, item, s); }, d.K);
  });
}

ffi::Error DepthwiseBwdCpu(ffi::ThreadPool pool, ffi::AnyBuffer dy, ffi::AnyBuffer x,
                           ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx,
                           ffi::Result<ffi::AnyBuffer> dw, ffi::Result<ffi::AnyBuffer> dbias,
                           int64_t pad_lo, int64_t pad_hi, int32_t layout) {
  constexpr const char* kOp = "jff_depthwise_bwd";
  DepthwiseBwdArgs a;
  bool has_dbias = false;
  JFF_RETURN_IF_ERROR(
      ValidateBwd(kOp, dy, x, w, *dx, *dw, *dbias, pad_lo, pad_hi, layout, &a.d, &has_dbias));
  const DepthwiseDims& d = a.d;
  a.dy = dy.untyped_data();
  a.x = x.untyped_data();
  a.w = w.untyped_data();
  a.dx = dx->untyped_data();
  a.dw = static_cast<float*>(dw->untyped_data());
  a.dbias = has_dbias ? static_cast<float*>(dbias->untyped_data()) : nullptr;
  const double work = 2.0 * d.B * std::max(d.L, d.L_out) * d.D * d.K;
  return DispatchDtypes(d, [&](auto xt, auto wt) {
    constexpr DType XT = decltype(xt)::value, WT = decltype(wt)::value;
    if (d.B > 0) {
      JFF_RETURN_IF_ERROR(Run(kOp, pool, d.B * NumChunks(d), work,
                              [&](int64_t item, Scratch& s) { DxItem<XT, WT>(a, item, s); }, d.K));
    }
    // Runs for B = 0 too: dw and dbias are then zeros, not left unwritten.
    return Run(kOp, pool, NumChunks(d), work,
               [&](int64_t chunk, Scratch& s) { DwItem<XT>(a, chunk, s); }, d.K);
  });
}

}  // namespace
}  // namespace jff

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffDepthwiseFwdCpu, jff::DepthwiseFwdCpu,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()  // x
                                  .Arg<xla::ffi::AnyBuffer>()  // w (K, D)
                                  .Arg<xla::ffi::AnyBuffer>()  // bias (D,) or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // y
                                  .Attr<int64_t>("pad_lo")
                                  .Attr<int64_t>("pad_hi")
                                  .Attr<int32_t>("layout"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffDepthwiseBwdCpu, jff::DepthwiseBwdCpu,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::ThreadPool>()
                                  .Arg<xla::ffi::AnyBuffer>()  // dy
                                  .Arg<xla::ffi::AnyBuffer>()  // x
                                  .Arg<xla::ffi::AnyBuffer>()  // w (K, D)
                                  .Ret<xla::ffi::AnyBuffer>()  // dx
                                  .Ret<xla::ffi::AnyBuffer>()  // dw (K, D) float32
                                  .Ret<xla::ffi::AnyBuffer>()  // dbias (D,) float32 or (0,)
                                  .Attr<int64_t>("pad_lo")
                                  .Attr<int64_t>("pad_hi")
                                  .Attr<int32_t>("layout"));
