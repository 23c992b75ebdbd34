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

#include "common/ffi_util.h"
#include "depthwise/depthwise_args.h"
#include "depthwise/validate.h"
#include "depthwise/depthwise_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace jff {
namespace {


std::string Dims3(int32_t layout, int64_t B, int64_t L, int64_t D) {
  return layout == kBLH
             ? "(" + std::to_string(B) + ", " + std::to_string(L) + ", " + std::to_string(D) + ")"
             : "(" + std::to_string(B) + ", " + std::to_string(D) + ", " + std::to_string(L) + ")";
}

bool HasDims3(ffi::AnyBuffer::Dimensions dims, int64_t a, int64_t b, int64_t c) {
  return dims.size() == 3 && dims[0] == a && dims[1] == b && dims[2] == c;
}

// An activation-shaped buffer: (B, length, D) in the layout, in x's dtype.
ffi::Error ExpectActivation(const std::string& op, const char* name, ffi::DataType dtype,
                            ffi::AnyBuffer::Dimensions dims, const DepthwiseDims& d,
                            int64_t length, ffi::DataType x_dtype) {
  const bool ok = d.layout == kBLH ? HasDims3(dims, d.B, length, d.D)
                                   : HasDims3(dims, d.B, d.D, length);
  if (!ok) {
    return InvalidArg(op + ": " + name + " has shape " + ShapeString(dims) + ", expected " +
                      Dims3(d.layout, d.B, length, d.D));
  }
  if (dtype != x_dtype) {
    return InvalidArg(op + ": " + name + " has dtype " + DTypeName(dtype) +
                      ", expected x's dtype " + DTypeName(x_dtype));
  }
  return ffi::Error::Success();
}

DwElem ToDwElem(DType t) {
  return t == DType::kF16 ? DwElem::kF16 : t == DType::kBF16 ? DwElem::kBF16 : DwElem::kF32;
}

DwDims ToDwDims(const DepthwiseDims& d) {
  return DwDims{ToDwElem(d.x_dtype), ToDwElem(d.w_dtype), d.layout, d.B, d.L, d.D, d.K,
                d.pad_lo,            d.pad_hi,            d.L_out};
}

ffi::Error CudaError(const std::string& what, cudaError_t e) {
  return ffi::Error(ffi::ErrorCode::kInternal, "jax_flashfft: " + what + ": " +
                                                   cudaGetErrorName(e) + ": " +
                                                   cudaGetErrorString(e));
}

// XLA may call a handler from a thread whose current device is another GPU.
ffi::Error UseDevice(int32_t ordinal) {
  int current = -1;
  cudaError_t e = cudaGetDevice(&current);
  if (e != cudaSuccess) return CudaError("cudaGetDevice", e);
  if (current != ordinal) {
    e = cudaSetDevice(ordinal);
    if (e != cudaSuccess) return CudaError("cudaSetDevice(" + std::to_string(ordinal) + ")", e);
  }
  return ffi::Error::Success();
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
  JFF_RETURN_IF_ERROR(ValidateCommon(op, x, w, pad_lo, pad_hi, layout, &d));
  const bool has_bias = !IsAbsent(bias);
  if (has_bias) {
    const auto bd = bias.dimensions();
    if (bd.size() != 1 || bd[0] != d.D) {
      return InvalidArg(op + ": bias has shape " + ShapeString(bd) + ", expected (" +
                        std::to_string(d.D) + ",) or (0,) when absent");
    }
    if (bias.element_type() != w.element_type()) {
      return InvalidArg(op + ": bias has dtype " + DTypeName(bias.element_type()) +
                        ", expected w's dtype " + DTypeName(w.element_type()));
    }
  }
  JFF_RETURN_IF_ERROR(ExpectActivation(op, "result y", y->element_type(), y->dimensions(), d,
                                       d.L_out, x.element_type()));
  JFF_RETURN_IF_ERROR(UseDevice(device));
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
  JFF_RETURN_IF_ERROR(ValidateCommon(op, x, w, pad_lo, pad_hi, layout, &d));
  JFF_RETURN_IF_ERROR(
      ExpectActivation(op, "dy", dy.element_type(), dy.dimensions(), d, d.L_out, x.element_type()));
  JFF_RETURN_IF_ERROR(ExpectActivation(op, "result dx", dx->element_type(), dx->dimensions(), d,
                                       d.L, x.element_type()));
  const auto wd = dw->dimensions();
  if (wd.size() != 2 || wd[0] != d.K || wd[1] != d.D || dw->element_type() != ffi::DataType::F32) {
    return InvalidArg(op + ": result dw has shape " + ShapeString(wd) + " and dtype " +
                      DTypeName(dw->element_type()) + ", expected (" + std::to_string(d.K) +
                      ", " + std::to_string(d.D) + ") float32");
  }
  const auto bd = dbias->dimensions();
  const bool want_dbias = !(bd.size() == 1 && bd[0] == 0);
  if (want_dbias && (bd.size() != 1 || bd[0] != d.D || dbias->element_type() != ffi::DataType::F32)) {
    return InvalidArg(op + ": result dbias has shape " + ShapeString(bd) + " and dtype " +
                      DTypeName(dbias->element_type()) + ", expected (" + std::to_string(d.D) +
                      ",) float32, or (0,) without bias");
  }
  JFF_RETURN_IF_ERROR(UseDevice(device));
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
