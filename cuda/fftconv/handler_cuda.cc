// CUDA handlers of jff_fftconv_fwd / jff_fftconv_bwd / jff_fftconv_filter_spectrum (contract: cuda/README.md).
//
// Each call: validate everything again (nothing reaches a kernel that could index out of bounds),
// make the call's device current, plan from shapes and cached device properties, take scratch
// from XLA's allocator and enqueue on XLA's stream. No host synchronisation, no host access to
// device data, no cudaMalloc.
//
// Not marked kCmdBufferCompatible: scratch comes from the ScratchAllocator, whose buffers are
// released when the handler returns. A CUDA graph captured from this handler would replay with
// pointers into memory XLA may since have handed to other buffers, and XLA does not promise that
// scratch addresses stay valid across command-buffer replays.
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/cuda_util.h"
#include "common/ffi_util.h"
#include "fftconv/fftconv_args.h"
#include "fftconv/generic_fft.h"
#include "fftconv/monarch.h"
#include "fftconv/monarch_bwd.h"
#include "fftconv/short_conv.h"
#include "fftconv/validate.h"
#include "fftconv_long/long_conv.h"
#include "xla/ffi/api/ffi.h"

namespace jff {
namespace {

// Device properties the plan depends on, queried once per device.
ffi::Error GetDeviceProps(const char* op, int ordinal, generic::DeviceProps* out) {
  static std::mutex mu;
  static std::unordered_map<int, generic::DeviceProps>* cache =
      new std::unordered_map<int, generic::DeviceProps>();
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache->find(ordinal);
    if (it != cache->end()) {
      *out = it->second;
      return ffi::Error::Success();
    }
  }
  int smem = 0, major = 0;
  cudaError_t e = cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, ordinal);
  if (e != cudaSuccess) return CudaError(op, "cudaDeviceGetAttribute(shared memory per block)", e);
  e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ordinal);
  if (e != cudaSuccess) return CudaError(op, "cudaDeviceGetAttribute(compute capability)", e);
  generic::DeviceProps p;
  p.major = major;
  p.smem_optin = static_cast<size_t>(smem);
  std::lock_guard<std::mutex> lock(mu);
  (*cache)[ordinal] = p;
  *out = p;
  return ffi::Error::Success();
}

// `bytes` of XLA's scratch (16-byte aligned) into *mem, or a resource-exhausted error naming `op`.
ffi::Error AllocateScratch(const char* op, ffi::ScratchAllocator& scratch, size_t bytes, void** mem) {
  std::optional<void*> p = scratch.Allocate(bytes, 16);
  if (!p.has_value()) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      std::string("jax_flashfft: ") + op + ": could not allocate " + std::to_string(bytes) +
                          " bytes of device scratch");
  }
  *mem = *p;
  return ffi::Error::Success();
}

// Plan, allocate scratch, and hand back both; `op` names the target in errors.
ffi::Error PlanAndAllocate(const char* op, const FftconvDims& d, bool bwd, bool has_post,
                           const generic::DeviceProps& props, ffi::ScratchAllocator& scratch,
                           generic::Plan* plan, void** mem) {
  JFF_RETURN_IF_ERROR(generic::MakePlan(d, bwd, has_post, props, generic::PlanOptions{}, plan));
  return AllocateScratch(op, scratch, plan->scratch_bytes, mem);
}

void* DataOrNull(const ffi::AnyBuffer& b) { return IsAbsent(b) ? nullptr : b.untyped_data(); }

// Runs a fast path (the short tensor-core kernels for L <= 128, the fused ones up to N = 32768, the long
// four-step path above) when it supports the problem; sets *ran to false (and does nothing) otherwise, so
// the caller tries the next path and finally the generic one. A path that needs no scratch gets none.
template <typename Args, typename Supported, typename ScratchBytes, typename Launch>
ffi::Error TryFastPath(const char* op, const Args& a, const generic::DeviceProps& props,
                       ffi::ScratchAllocator& scratch, cudaStream_t stream, const char* path, Supported supported,
                       ScratchBytes scratch_bytes, Launch launch, bool* ran) {
  *ran = false;
  if (!supported(a.d, props.major, props.smem_optin)) return ffi::Error::Success();
  const size_t bytes = scratch_bytes(a);
  void* mem = nullptr;
  if (bytes > 0) JFF_RETURN_IF_ERROR(AllocateScratch(op, scratch, bytes, &mem));
  cudaError_t e = launch(a, stream, mem, bytes);
  if (e != cudaSuccess) return CudaError(op, path, e);
  *ran = true;
  return ffi::Error::Success();
}

// The scratch size of a fast path that depends on the problem's dimensions only.
template <typename Args>
auto ByDims(size_t (*scratch_bytes)(const FftconvDims&)) {
  return [scratch_bytes](const Args& a) { return scratch_bytes(a.d); };
}

// jff_fftconv_filter_spectrum: K' for the long path (long_conv.h). On a device the long kernels do not
// run on (compute capability < 8.0 or too little shared memory for the filter kernels) the forward and
// backward take the generic path, which reads k; K' is then zero-filled, so that it is still fully written.
ffi::Error FftconvSpectrumCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int32_t device,
                               ffi::AnyBuffer k, ffi::AnyBuffer skip, ffi::Result<ffi::AnyBuffer> kspec,
                               int64_t fft_size, int32_t bfloat16_data) {
  const char* op = "jff_fftconv_filter_spectrum";
  FftconvDims d;
  JFF_RETURN_IF_ERROR(ValidateSpectrum(op, k, skip, *kspec, fft_size, bfloat16_data, &d));
  DeviceGuard guard;
  JFF_RETURN_IF_ERROR(guard.Enter(op, device));
  generic::DeviceProps props;
  JFF_RETURN_IF_ERROR(GetDeviceProps(op, device, &props));
  if (!long_spectrum_supported(d.N, props.major, props.smem_optin)) {
    const cudaError_t e = cudaMemsetAsync(kspec->untyped_data(), 0, kspec->size_bytes(), stream);
    return e == cudaSuccess ? ffi::Error::Success() : CudaError(op, "cudaMemsetAsync(kspec)", e);
  }
  const size_t bytes = long_spectrum_scratch_bytes(d.G * d.H, d.N);
  void* mem = nullptr;
  JFF_RETURN_IF_ERROR(AllocateScratch(op, scratch, bytes, &mem));
  const cudaError_t e = long_filter_spectrum(static_cast<const float*>(k.untyped_data()),
                                             static_cast<const float*>(DataOrNull(skip)), d.G * d.H, d.Lk, d.N,
                                             bfloat16_data != 0 ? DType::kBF16 : DType::kF32,
                                             static_cast<float*>(kspec->untyped_data()), stream, mem, bytes);
  return e == cudaSuccess ? ffi::Error::Success() : CudaError(op, "long-N filter spectrum", e);
}

ffi::Error FftconvFwdCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int32_t device,
                          ffi::AnyBuffer u, ffi::AnyBuffer k, ffi::AnyBuffer pre,
                          ffi::AnyBuffer post, ffi::AnyBuffer skip, ffi::AnyBuffer kspec,
                          ffi::Result<ffi::AnyBuffer> y, int64_t fft_size, int32_t layout, int64_t rows_per_group) {
  const char* op = "jff_fftconv_fwd";
  FftconvDims d;
  JFF_RETURN_IF_ERROR(ValidateFwd(op, u, k, pre, post, skip, kspec, *y, fft_size, layout, rows_per_group, &d));
  if (d.B == 0) return ffi::Error::Success();

  DeviceGuard guard;
  JFF_RETURN_IF_ERROR(guard.Enter(op, device));
  FftconvFwdArgs a;
  a.d = d;
  a.u = u.untyped_data();
  a.k = static_cast<const float*>(k.untyped_data());
  a.pre = DataOrNull(pre);
  a.post = DataOrNull(post);
  a.skip = static_cast<const float*>(DataOrNull(skip));
  a.y = y->untyped_data();
  a.kspec = static_cast<const float*>(DataOrNull(kspec));

  // The short tensor-core kernels (L <= 128, N <= 32768), the fused ones (N <= 32768) and the long path
  // (N >= 65536) take the shapes they support, in that order; the generic path covers everything else.
  generic::DeviceProps props;
  JFF_RETURN_IF_ERROR(GetDeviceProps(op, device, &props));
  bool ran = false;
  JFF_RETURN_IF_ERROR(TryFastPath(op, a, props, scratch, stream, "short tensor-core kernel", short_fwd_supported,
                                  ByDims<FftconvFwdArgs>(short_fwd_scratch_bytes), short_fwd, &ran));
  if (ran) return ffi::Error::Success();
  JFF_RETURN_IF_ERROR(TryFastPath(op, a, props, scratch, stream, "tensor-core kernel", monarch_fwd_supported,
                                  ByDims<FftconvFwdArgs>(monarch_fwd_scratch_bytes), monarch_fwd, &ran));
  if (ran) return ffi::Error::Success();
  JFF_RETURN_IF_ERROR(TryFastPath(op, a, props, scratch, stream, "long-N kernels", long_fwd_supported,
                                  long_fwd_scratch_bytes, long_fwd, &ran));
  if (ran) return ffi::Error::Success();
  generic::Plan plan;
  void* mem = nullptr;
  JFF_RETURN_IF_ERROR(PlanAndAllocate(op, d, false, a.post != nullptr, props, scratch, &plan, &mem));
  return generic::RunFwd(a, plan, mem, stream);
}

ffi::Error FftconvBwdCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int32_t device,
                          ffi::AnyBuffer dy, ffi::AnyBuffer u, ffi::AnyBuffer k,
                          ffi::AnyBuffer pre, ffi::AnyBuffer post, ffi::AnyBuffer skip, ffi::AnyBuffer kspec,
                          ffi::Result<ffi::AnyBuffer> du, ffi::Result<ffi::AnyBuffer> dk,
                          ffi::Result<ffi::AnyBuffer> dpre, ffi::Result<ffi::AnyBuffer> dpost,
                          ffi::Result<ffi::AnyBuffer> dskip, ffi::Result<ffi::AnyBuffer> kspec_ws,
                          int64_t fft_size, int32_t layout,
                          int64_t rows_per_group) {
  const char* op = "jff_fftconv_bwd";
  FftconvDims d;
  JFF_RETURN_IF_ERROR(ValidateBwd(op, dy, u, k, pre, post, skip, kspec, *du, *dk, *dpre, *dpost, *dskip,
                                  *kspec_ws, fft_size, layout, rows_per_group, &d));

  DeviceGuard guard;
  JFF_RETURN_IF_ERROR(guard.Enter(op, device));
  if (d.B == 0) {
    // Sums over no rows: dk and dskip are zero, the activation gradients are empty.
    cudaError_t e = cudaMemsetAsync(dk->untyped_data(), 0, dk->size_bytes(), stream);
    if (e != cudaSuccess) return CudaError(op, "cudaMemsetAsync(dk)", e);
    if (!IsAbsent(skip)) {
      e = cudaMemsetAsync(dskip->untyped_data(), 0, dskip->size_bytes(), stream);
      if (e != cudaSuccess) return CudaError(op, "cudaMemsetAsync(dskip)", e);
    }
    return ffi::Error::Success();
  }

  FftconvBwdArgs a;
  a.d = d;
  a.dy = dy.untyped_data();
  a.u = u.untyped_data();
  a.k = static_cast<const float*>(k.untyped_data());
  a.pre = DataOrNull(pre);
  a.post = DataOrNull(post);
  a.skip = static_cast<const float*>(DataOrNull(skip));
  a.du = du->untyped_data();
  a.dk = static_cast<float*>(dk->untyped_data());
  a.dpre = a.pre ? dpre->untyped_data() : nullptr;
  a.dpost = a.post ? dpost->untyped_data() : nullptr;
  a.dskip = a.skip ? static_cast<float*>(dskip->untyped_data()) : nullptr;
  a.kspec = static_cast<const float*>(DataOrNull(kspec));
  a.kspec_ws = static_cast<float*>(DataOrNull(*kspec_ws));

  generic::DeviceProps props;
  JFF_RETURN_IF_ERROR(GetDeviceProps(op, device, &props));
  bool ran = false;
  JFF_RETURN_IF_ERROR(TryFastPath(op, a, props, scratch, stream, "short tensor-core kernel", short_bwd_supported,
                                  ByDims<FftconvBwdArgs>(short_bwd_scratch_bytes), short_bwd, &ran));
  if (ran) return ffi::Error::Success();
  JFF_RETURN_IF_ERROR(TryFastPath(op, a, props, scratch, stream, "tensor-core kernel", monarch_bwd_supported,
                                  ByDims<FftconvBwdArgs>(monarch_bwd_scratch_bytes), monarch_bwd, &ran));
  if (ran) return ffi::Error::Success();
  JFF_RETURN_IF_ERROR(TryFastPath(op, a, props, scratch, stream, "long-N kernels", long_bwd_supported,
                                  long_bwd_scratch_bytes, long_bwd, &ran));
  if (ran) return ffi::Error::Success();
  generic::Plan plan;
  void* mem = nullptr;
  JFF_RETURN_IF_ERROR(PlanAndAllocate(op, d, true, a.post != nullptr, props, scratch, &plan, &mem));
  return generic::RunBwd(a, plan, mem, stream);
}

}  // namespace
}  // namespace jff

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffFftconvFwdCuda, jff::FftconvFwdCuda,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<xla::ffi::ScratchAllocator>()
                                  .Ctx<xla::ffi::DeviceOrdinal>()
                                  .Arg<xla::ffi::AnyBuffer>()  // u
                                  .Arg<xla::ffi::AnyBuffer>()  // k
                                  .Arg<xla::ffi::AnyBuffer>()  // pre_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // post_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // skip or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // kspec or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // y
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("layout")
                                  .Attr<int64_t>("rows_per_group"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffFftconvBwdCuda, jff::FftconvBwdCuda,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<xla::ffi::ScratchAllocator>()
                                  .Ctx<xla::ffi::DeviceOrdinal>()
                                  .Arg<xla::ffi::AnyBuffer>()  // dy
                                  .Arg<xla::ffi::AnyBuffer>()  // u
                                  .Arg<xla::ffi::AnyBuffer>()  // k
                                  .Arg<xla::ffi::AnyBuffer>()  // pre_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // post_gate or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // skip or (0,)
                                  .Arg<xla::ffi::AnyBuffer>()  // kspec or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // du
                                  .Ret<xla::ffi::AnyBuffer>()  // dk
                                  .Ret<xla::ffi::AnyBuffer>()  // dpre or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // dpost or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // dskip or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // kspec_ws (kspec's alias) or (0,)
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("layout")
                                  .Attr<int64_t>("rows_per_group"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JffFftconvSpectrumCuda, jff::FftconvSpectrumCuda,
                              xla::ffi::Ffi::Bind()
                                  .Ctx<xla::ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<xla::ffi::ScratchAllocator>()
                                  .Ctx<xla::ffi::DeviceOrdinal>()
                                  .Arg<xla::ffi::AnyBuffer>()  // k
                                  .Arg<xla::ffi::AnyBuffer>()  // skip or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // kspec
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("bfloat16_data"));
