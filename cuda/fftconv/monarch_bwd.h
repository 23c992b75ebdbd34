// Tensor-core fused FFT convolution backward (Monarch / four-step form), the CUDA fast path of
// jff_fftconv_bwd for the problems it supports; the generic path covers everything else.
//
// Contract: the same du, dk, dpre, dpost, dskip as cuda/README.md gives for jff_fftconv_bwd,
// for the problems monarch_bwd_supported() accepts (the forward's: N in {256, ..., 32768},
// any 1 <= L <= N, 1 <= Lk <= N, bf16/fp16, BHL, both rows of a pair in one filter group,
// enough opt-in shared memory: N = 32768 needs 192 KB). Optional results may be null:
// du, dk (then neither is written); dpre / dpost / dskip must be null when pre / post / skip
// is absent. dk and dskip are reduced over the batch in float32 in a fixed order, so the
// results are bitwise reproducible. The caller passes a scratch buffer of
// monarch_bwd_scratch_bytes() (k's spectrum, per-chunk dk spectrum and dskip partial sums and,
// for N >= 2048 or L % 8 != 0, per-CTA spectrum buffers; rebuilt on every call, nothing is
// kept between calls).
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "fftconv/fftconv_args.h"

namespace jff {

// True when monarch_bwd handles this problem on a device of compute capability
// `device_major`.x whose per-block opt-in shared-memory limit is `max_smem_per_block` bytes.
bool monarch_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block);

// Bytes of device scratch monarch_bwd needs (16-byte aligned pointer expected).
size_t monarch_bwd_scratch_bytes(const FftconvDims& d);

// Enqueues the backward on `stream` (three kernels: k's spectrum, the fused main pass, the
// dk/dskip reduction). Returns the first CUDA error met (launch or attribute setup);
// cudaErrorInvalidValue when the problem is not supported, scratch is too small or
// misaligned, or an output is given for an absent operand.
cudaError_t monarch_bwd(const FftconvBwdArgs& a, cudaStream_t stream, void* scratch,
                        size_t scratch_bytes);

}  // namespace jff
