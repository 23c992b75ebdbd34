// Tensor-core fused FFT convolution (Monarch / four-step form), the CUDA fast path of
// jff_fftconv_fwd for the problems it supports; the generic path covers everything else.
//
// Contract: the same y as cuda/README.md gives for jff_fftconv_fwd. The caller asks
// monarch_fwd_supported() first and passes a scratch buffer of monarch_fwd_scratch_bytes()
// (k's spectrum in the kernel's permuted order, rebuilt on every call).
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "fftconv/fftconv_args.h"

namespace jff {

// Handled: bf16/fp16, N in {256, 512, 1024, 2048, 4096, 8192, 16384, 32768}, BHL, and BLH where
// N <= 2048 or the device has thread block clusters (compute capability 9.0), any 1 <= L <= N,
// 1 <= Lk <= N, both rows of a pair in one filter group (G == 1 or R even), and enough opt-in
// shared memory (N = 32768 needs 192 KB for its k-spectrum pre-kernel: Hopper yes, A100 no).
// True when monarch_fwd handles this problem on a device of compute capability
// `device_major`.x whose per-block opt-in shared-memory limit is `max_smem_per_block` bytes.
bool monarch_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block);

// Bytes of device scratch monarch_fwd needs (16-byte aligned pointer expected).
size_t monarch_fwd_scratch_bytes(const FftconvDims& d);

// Enqueues the forward on `stream`. Returns the first CUDA error met (launch or attribute
// setup); cudaErrorInvalidValue when the problem is not supported or scratch is too small.
cudaError_t monarch_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void* scratch,
                        size_t scratch_bytes);

}  // namespace jff
