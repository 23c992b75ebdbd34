// CUDA-side helpers shared by the CUDA handlers: error conversion and the call's device.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "common/ffi_util.h"

namespace jff {

inline ffi::Error CudaError(const char* op, const char* what, cudaError_t e) {
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

}  // namespace jff
