// CUDA handlers of jff_depthwise_fwd / jff_depthwise_bwd (contract: cuda/README.md).
//
// Validation mirrors the CPU handler: every shape, dtype and attribute is checked again here
// and reported as an ffi::Error naming the argument, so no kernel sees a shape it could index
// out of bounds with. The kernels themselves live in depthwise_kernels.cu.
//
// The forward handler only enqueues kernels (no synchronisation, no host work that depends
// on data), so it is marked command-buffer compatible. The backward handler is not: its
// scratch buffer comes from the per-call ScratchAllocator, and an allocation made while XLA
// traces a CUDA graph would be freed when the handler returns yet baked into the graph.
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <string>

#include "common/cuda_util.h"
#include "common/ffi_util.h"
#include "depthwise/depthwise_args.h"
#include "depthwise/validate.h"
#include "depthwise/depthwise_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace jff {
namespace {


DwElem ToDwElem(DType t) {
  return t == DType::kF16 ? DwElem::kF16 : t == DType::kBF16 ? DwElem::kBF16 : DwElem::kF32;
}

DwDims ToDwDims(const DepthwiseDims& d) {
  return DwDims{ToDwElem(d.x_dtype), ToDwElem(d.w_dtype), d.layout, d.B, d.L, d.D, d.K,
                d.pad_lo,            d.pad_hi,            d.L_out};
}

ffi::Error LaunchResult(const std::string& msg) {
  if (msg.empty()) return ffi::Error::Success();
  return ffi::Error(ffi::ErrorCode::kInternal, msg);
}

ffi::Error DepthwiseFwdCuda(cudaStream_t stream, int32_t device, ffi::AnyBuffer x,
                            ffi::AnyBuffer w, ffi::AnyBuffer bias, int64_t pad_lo,
                            int64_t pad_hi, int32_t layout, ffi::Result<ffi::AnyBuffer> y) {
  const std::string op = "jff_depthwise_fwd (CUDA)";
  DepthwiseDims d;
  bool has_bias = false;
  JFF_RETURN_IF_ERROR(ValidateFwd(op, x, w, bias, *y, pad_lo, pad_hi, layout, &d, &has_bias));
  DeviceGuard guard;
  JFF_RETURN_IF_ERROR(guard.Enter(op.c_str(), device));
  DwFwdArgs a{ToDwDims(d), x.untyped_data(), w.untyped_data(),
              has_bias ? bias.untyped_data() : nullptr, y->untyped_data()};
  return LaunchResult(LaunchDepthwiseFwd(a, stream));
}

ffi::Error DepthwiseBwdCuda(cudaStream_t stream, int32_t device, ffi::ScratchAllocator scratch,
                            ffi::AnyBuffer dy, ffi::AnyBuffer x, ffi::AnyBuffer w,
                            int64_t pad_lo, int64_t pad_hi, int32_t layout,
                            ffi::Result<ffi::AnyBuffer> dx, ffi::Result<ffi::AnyBuffer> dw,
                            ffi::Result<ffi::AnyBuffer> dbias) {
  const std::string op = "jff_depthwise_bwd (CUDA)";
  DepthwiseDims d;
  bool want_dbias = false;
  JFF_RETURN_IF_ERROR(
      ValidateBwd(op, dy, x, w, *dx, *dw, *dbias, pad_lo, pad_hi, layout, &d, &want_dbias));
  DeviceGuard guard;
  JFF_RETURN_IF_ERROR(guard.Enter(op.c_str(), device));
  DwBwdArgs a{ToDwDims(d),
              dy.untyped_data(),
              x.untyped_data(),
              w.untyped_data(),
              dx->untyped_data(),
              static_cast<float*>(dw->untyped_data()),
              want_dbias ? static_cast<float*>(dbias->untyped_data()) : nullptr};
  const size_t bytes = DepthwiseBwdScratchBytes(a);
  // 16 bytes is the most XLA's FFI allocator accepts; the partial sums need only 4.
  std::optional<void*> buf = scratch.Allocate(bytes, 16);
  if (!buf.has_value() || *buf == nullptr) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      op + ": could not allocate " + std::to_string(bytes) +
                          " bytes of scratch for the dw/dbias partial sums");
  }
  return LaunchResult(LaunchDepthwiseBwd(a, *buf, bytes, stream));
}

}  // namespace
}  // namespace jff

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffDepthwiseFwdCuda, jff::DepthwiseFwdCuda,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<xla::ffi::DeviceOrdinal>()
                                  .Arg<xla::ffi::AnyBuffer>()  // x
                                  .Arg<xla::ffi::AnyBuffer>()  // w
                                  .Arg<xla::ffi::AnyBuffer>()  // bias, (0,) when absent
                                  .Attr<int64_t>("pad_lo")
                                  .Attr<int64_t>("pad_hi")
                                  .Attr<int32_t>("layout")
                                  .Ret<xla::ffi::AnyBuffer>(),  // y
                              {xla::ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffDepthwiseBwdCuda, jff::DepthwiseBwdCuda,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<xla::ffi::DeviceOrdinal>()
                                  .Ctx<xla::ffi::ScratchAllocator>()
                                  .Arg<xla::ffi::AnyBuffer>()  // dy
                                  .Arg<xla::ffi::AnyBuffer>()  // x
                                  .Arg<xla::ffi::AnyBuffer>()  // w
                                  .Attr<int64_t>("pad_lo")
                                  .Attr<int64_t>("pad_hi")
                                  .Attr<int32_t>("layout")
                                  .Ret<xla::ffi::AnyBuffer>()   // dx
                                  .Ret<xla::ffi::AnyBuffer>()   // dw
                                  .Ret<xla::ffi::AnyBuffer>());  // dbias, (0,) without bias
