// Short FFT convolutions (L <= 128; any N up to 32768) on tensor cores: the CUDA fast path of
// jff_fftconv_fwd / jff_fftconv_bwd below the fused Monarch kernels' smallest size (N = 256), and in
// their place for sequences of at most 128 points at larger N (e.g. the causal L = 128, N = 256).
//
// For such lengths the FFT, the pointwise product with k's spectrum and the inverse FFT collapse into
// one matrix: F^-1 diag(FFT(k)) F restricted to the L valid points is the circulant (Toeplitz where
// N >= L + Lk - 1) matrix W[s][t] = k[(t - s) mod N], so a tile of 16 batch rows of one filter is
// one 16 x L by L x L tensor-core product, with W's operand fragments read straight from k (no
// spectrum, no twiddles, and k's own values rather than a rounded spectrum). See short_conv.cu.
//
// Contract: the same results as cuda/README.md gives for jff_fftconv_fwd / jff_fftconv_bwd. The
// caller asks short_fwd_supported() / short_bwd_supported() first; the backward takes a scratch buffer of
// short_bwd_scratch_bytes() (per-CTA partial sums of dk, summed in a fixed order, so dk and dskip
// are bitwise reproducible); the forward needs none.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "fftconv/fftconv_args.h"

namespace jff {

// Handled: bf16/fp16, 1 <= L <= 128, and L <= 256 where N >= L + Lk - 1 (A/B switch JFF_SHORT_CONV_MAX_L:
// short_conv.cu), N a power of two from L to 32768, 1 <= Lk <= N, any filter groups, on a device of compute
// capability 8.0 or newer (mma.sync) with `max_smem_per_block` bytes of opt-in shared memory per block; the
// forward in both layouts, the backward BHL only (jff.fftconv transposes BLH for it).
bool short_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block);
bool short_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block);

// Bytes of device scratch: none for the forward, dk's partial sums for the backward (16-byte
// aligned pointer expected; may be 0).
size_t short_fwd_scratch_bytes(const FftconvDims& d);
size_t short_bwd_scratch_bytes(const FftconvDims& d);

// Enqueue the forward / backward on `stream`. Return the first CUDA error met (launch or attribute
// setup); cudaErrorInvalidValue when the problem is not supported or the scratch is too small.
cudaError_t short_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes);
cudaError_t short_bwd(const FftconvBwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes);

}  // namespace jff
