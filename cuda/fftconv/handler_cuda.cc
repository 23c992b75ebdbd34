// CUDA handlers of jff_fftconv_fwd / jff_fftconv_bwd (contract: cuda/README.md).
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
#include <sstream>
#include <string>
#include <unordered_map>

#include "common/ffi_util.h"
#include "fftconv/fftconv_args.h"
#include "fftconv/generic_fft.h"
#include "fftconv/monarch.h"
#include "fftconv/monarch_bwd.h"
#include "xla/ffi/api/ffi.h"

namespace jff {
namespace {

ffi::Error CudaError(const char* op, const char* what, cudaError_t e) {
  return ffi::Error(ffi::ErrorCode::kInternal, std::string("jax_flashfft: ") + op + ": " + what +
                                                   " failed: " + cudaGetErrorString(e));
}

// Makes the call's device current for every CUDA call of the handler and restores the caller's
// device afterwards (the XLA thread may serve several devices).
class DeviceGuard {
 public:
  DeviceGuard() = default;
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }
  ffi::Error Enter(const char* op, int ordinal) {
    cudaError_t e = cudaGetDevice(&previous_);
    if (e != cudaSuccess) return CudaError(op, "cudaGetDevice", e);
    if (previous_ != ordinal) {
      e = cudaSetDevice(ordinal);
      if (e != cudaSuccess) return CudaError(op, "cudaSetDevice", e);
      switched_ = true;
    }
    return ffi::Error::Success();
  }

 private:
  int previous_ = 0;
  bool switched_ = false;
};

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

// ---------------------------------------------------------------------------------------------
// Validation. Messages name the operand and say what was expected and what came in.

ffi::Error ExpectLikeU(const std::string& op, const char* name, const ffi::AnyBuffer& b,
                       const ffi::AnyBuffer& u) {
  const auto bd = b.dimensions(), ud = u.dimensions();
  bool same = bd.size() == ud.size();
  for (size_t i = 0; same && i < bd.size(); ++i) same = bd[i] == ud[i];
  if (!same) {
    return InvalidArg(op + ": " + name + " has shape " + ShapeString(bd) + ", expected u's shape " +
                      ShapeString(ud));
  }
  if (b.element_type() != u.element_type()) {
    return InvalidArg(op + ": " + name + " has dtype " + DTypeName(b.element_type()) +
                      ", expected u's dtype " + DTypeName(u.element_type()));
  }
  return ffi::Error::Success();
}

ffi::Error ExpectF32(const std::string& op, const char* name, const ffi::AnyBuffer& b,
                     std::initializer_list<int64_t> want) {
  const auto bd = b.dimensions();
  bool ok = bd.size() == want.size();
  size_t i = 0;
  for (int64_t w : want) {
    if (!ok) break;
    ok = bd[i++] == w;
  }
  if (!ok) {
    std::ostringstream s;
    s << op << ": " << name << " has shape " << ShapeString(bd) << ", expected (";
    i = 0;
    for (int64_t w : want) s << (i++ ? ", " : "") << w;
    s << (want.size() == 1 ? ",)" : ")");
    return InvalidArg(s.str());
  }
  if (b.element_type() != ffi::DataType::F32) {
    return InvalidArg(op + ": " + name + " has dtype " + DTypeName(b.element_type()) +
                      ", expected float32");
  }
  return ffi::Error::Success();
}

// An optional result must be (0,) exactly when its operand is absent.
ffi::Error ExpectOptionalLikeU(const std::string& op, const char* name, bool present,
                               const ffi::AnyBuffer& b, const ffi::AnyBuffer& u) {
  if (present) return ExpectLikeU(op, name, b, u);
  if (!IsAbsent(b)) {
    return InvalidArg(op + ": " + name + " has shape " + ShapeString(b.dimensions()) +
                      ", expected (0,) because its gate is absent");
  }
  return ffi::Error::Success();
}

ffi::Error ValidateCommon(const std::string& op, const ffi::AnyBuffer& u, const ffi::AnyBuffer& k,
                          const ffi::AnyBuffer& pre, const ffi::AnyBuffer& post,
                          const ffi::AnyBuffer& skip, int64_t fft_size, int32_t layout,
                          int64_t rows_per_group, FftconvDims* d) {
  if (layout != kBHL && layout != kBLH) {
    return InvalidArg(op + ": attribute layout is " + std::to_string(layout) +
                      ", expected 0 (BHL) or 1 (BLH)");
  }
  if (!ToDType(u.element_type(), &d->dtype)) {
    return InvalidArg(op + ": u has dtype " + DTypeName(u.element_type()) +
                      ", expected float16, bfloat16 or float32");
  }
  const auto ud = u.dimensions();
  if (ud.size() != 3) {
    return InvalidArg(op + ": u has shape " + ShapeString(ud) + ", expected rank 3 " +
                      (layout == kBHL ? "(B, H, L)" : "(B, L, H)"));
  }
  d->layout = layout;
  d->B = ud[0];
  d->H = layout == kBHL ? ud[1] : ud[2];
  d->L = layout == kBHL ? ud[2] : ud[1];
  if (d->B < 0 || d->H < 1 || d->L < 1) {
    return InvalidArg(op + ": u has shape " + ShapeString(ud) + ", expected H >= 1 and L >= 1");
  }
  const auto kd = k.dimensions();
  if (kd.size() != 3 || kd[0] < 1 || kd[1] != d->H || kd[2] < 1) {
    return InvalidArg(op + ": k has shape " + ShapeString(kd) + ", expected (G, " +
                      std::to_string(d->H) + ", Lk) with G >= 1 and Lk >= 1");
  }
  if (k.element_type() != ffi::DataType::F32) {
    return InvalidArg(op + ": k has dtype " + DTypeName(k.element_type()) + ", expected float32");
  }
  d->G = kd[0];
  d->Lk = kd[2];
  if (!IsAbsent(pre)) JFF_RETURN_IF_ERROR(ExpectLikeU(op, "pre_gate", pre, u));
  if (!IsAbsent(post)) JFF_RETURN_IF_ERROR(ExpectLikeU(op, "post_gate", post, u));
  if (!IsAbsent(skip)) JFF_RETURN_IF_ERROR(ExpectF32(op, "skip", skip, {d->G, d->H}));
  if (rows_per_group < 1) {
    return InvalidArg(op + ": attribute rows_per_group is " + std::to_string(rows_per_group) +
                      ", expected >= 1");
  }
  d->R = rows_per_group;
  const int64_t need = d->L > d->Lk ? d->L : d->Lk;
  const bool pow2 = fft_size >= 1 && (fft_size & (fft_size - 1)) == 0;
  if (!pow2 || fft_size < need || fft_size > (int64_t{1} << 24)) {
    return InvalidArg(op + ": attribute fft_size is " + std::to_string(fft_size) +
                      ", expected a power of two with max(L, Lk) = " + std::to_string(need) +
                      " <= fft_size <= 2^24");
  }
  d->N = fft_size;
  return ffi::Error::Success();
}

// Plan, allocate scratch, and hand back both; `op` names the target in errors.
ffi::Error PlanAndAllocate(const char* op, const FftconvDims& d, bool bwd, bool has_post,
                           int32_t device, ffi::ScratchAllocator& scratch, generic::Plan* plan,
                           void** mem) {
  generic::DeviceProps props;
  JFF_RETURN_IF_ERROR(GetDeviceProps(op, device, &props));
  JFF_RETURN_IF_ERROR(generic::MakePlan(d, bwd, has_post, props, generic::PlanOptions{}, plan));
  std::optional<void*> p = scratch.Allocate(plan->scratch_bytes, 16);
  if (!p.has_value()) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      std::string("jax_flashfft: ") + op + ": could not allocate " +
                          std::to_string(plan->scratch_bytes) + " bytes of device scratch");
  }
  *mem = *p;
  return ffi::Error::Success();
}

void* DataOrNull(const ffi::AnyBuffer& b) { return IsAbsent(b) ? nullptr : b.untyped_data(); }

// Runs the tensor-core kernel when it supports the problem; sets *ran to false (and does nothing)
// otherwise, so the caller falls back to the generic path.
template <typename Args, typename Supported, typename ScratchBytes, typename Launch>
ffi::Error TryTensorCorePath(const char* op, const Args& a, int32_t device,
                             ffi::ScratchAllocator& scratch, cudaStream_t stream,
                             Supported supported, ScratchBytes scratch_bytes, Launch launch,
                             bool* ran) {
  *ran = false;
  generic::DeviceProps props;
  JFF_RETURN_IF_ERROR(GetDeviceProps(op, device, &props));
  if (!supported(a.d, props.major, props.smem_optin)) return ffi::Error::Success();
  const size_t bytes = scratch_bytes(a.d);
  std::optional<void*> mem = scratch.Allocate(bytes, 16);
  if (!mem.has_value()) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted,
                      std::string("jax_flashfft: ") + op + ": could not allocate " +
                          std::to_string(bytes) + " bytes of device scratch");
  }
  cudaError_t e = launch(a, stream, *mem, bytes);
  if (e != cudaSuccess) return CudaError(op, "tensor-core kernel", e);
  *ran = true;
  return ffi::Error::Success();
}

ffi::Error FftconvFwdCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int32_t device,
                          ffi::AnyBuffer u, ffi::AnyBuffer k, ffi::AnyBuffer pre,
                          ffi::AnyBuffer post, ffi::AnyBuffer skip, ffi::Result<ffi::AnyBuffer> y,
                          int64_t fft_size, int32_t layout, int64_t rows_per_group) {
  const char* op = "jff_fftconv_fwd";
  FftconvDims d;
  JFF_RETURN_IF_ERROR(
      ValidateCommon(op, u, k, pre, post, skip, fft_size, layout, rows_per_group, &d));
  JFF_RETURN_IF_ERROR(ExpectLikeU(op, "y", *y, u));
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

  // The tensor-core kernel takes the shapes it supports; the generic path covers everything else.
  bool ran = false;
  JFF_RETURN_IF_ERROR(TryTensorCorePath(op, a, device, scratch, stream, monarch_fwd_supported,
                                        monarch_fwd_scratch_bytes, monarch_fwd, &ran));
  if (ran) return ffi::Error::Success();
  generic::Plan plan;
  void* mem = nullptr;
  JFF_RETURN_IF_ERROR(PlanAndAllocate(op, d, false, a.post != nullptr, device, scratch, &plan, &mem));
  return generic::RunFwd(a, plan, mem, stream);
}

ffi::Error FftconvBwdCuda(cudaStream_t stream, ffi::ScratchAllocator scratch, int32_t device,
                          ffi::AnyBuffer dy, ffi::AnyBuffer u, ffi::AnyBuffer k,
                          ffi::AnyBuffer pre, ffi::AnyBuffer post, ffi::AnyBuffer skip,
                          ffi::Result<ffi::AnyBuffer> du, ffi::Result<ffi::AnyBuffer> dk,
                          ffi::Result<ffi::AnyBuffer> dpre, ffi::Result<ffi::AnyBuffer> dpost,
                          ffi::Result<ffi::AnyBuffer> dskip, int64_t fft_size, int32_t layout,
                          int64_t rows_per_group) {
  const char* op = "jff_fftconv_bwd";
  FftconvDims d;
  JFF_RETURN_IF_ERROR(
      ValidateCommon(op, u, k, pre, post, skip, fft_size, layout, rows_per_group, &d));
  JFF_RETURN_IF_ERROR(ExpectLikeU(op, "dy", dy, u));
  JFF_RETURN_IF_ERROR(ExpectLikeU(op, "du", *du, u));
  JFF_RETURN_IF_ERROR(ExpectF32(op, "dk", *dk, {d.G, d.H, d.Lk}));
  JFF_RETURN_IF_ERROR(ExpectOptionalLikeU(op, "dpre", !IsAbsent(pre), *dpre, u));
  JFF_RETURN_IF_ERROR(ExpectOptionalLikeU(op, "dpost", !IsAbsent(post), *dpost, u));
  if (!IsAbsent(skip)) {
    JFF_RETURN_IF_ERROR(ExpectF32(op, "dskip", *dskip, {d.G, d.H}));
  } else if (!IsAbsent(*dskip)) {
    return InvalidArg(std::string(op) + ": dskip has shape " + ShapeString(dskip->dimensions()) +
                      ", expected (0,) because skip is absent");
  }

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

  bool ran = false;
  JFF_RETURN_IF_ERROR(TryTensorCorePath(op, a, device, scratch, stream, monarch_bwd_supported,
                                        monarch_bwd_scratch_bytes, monarch_bwd, &ran));
  if (ran) return ffi::Error::Success();
  generic::Plan plan;
  void* mem = nullptr;
  JFF_RETURN_IF_ERROR(PlanAndAllocate(op, d, true, a.post != nullptr, device, scratch, &plan, &mem));
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
                                  .Ret<xla::ffi::AnyBuffer>()  // du
                                  .Ret<xla::ffi::AnyBuffer>()  // dk
                                  .Ret<xla::ffi::AnyBuffer>()  // dpre or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // dpost or (0,)
                                  .Ret<xla::ffi::AnyBuffer>()  // dskip or (0,)
                                  .Attr<int64_t>("fft_size")
                                  .Attr<int32_t>("layout")
                                  .Attr<int64_t>("rows_per_group"));
