// The long fftconv (N = 65536 .. 2^24) behind jff_fftconv_fwd / jff_fftconv_bwd: one four-step
// level N = N1 * N2 around the fused inner kernel (benchmarks/notes_long.md). Same interface as
// the tensor-core path (fftconv/monarch.h): the handler asks *_supported, allocates
// *_scratch_bytes from XLA's scratch allocator and enqueues.
//
// Forward: k's spectrum slices K' = khat + skip for all G*H filters (fp32, ~4N bytes per filter: the
// call's kspec operand when given -- jff_fftconv_filter_spectrum, long_filter_spectrum below -- else
// built in the scratch), then per chunk of rows: outer forward (u, pre -> workspace in u's dtype), inner
// step (in place), outer inverse (-> y, post-gated). Backward: long_bwd.cuh.
#pragma once

#include <cstddef>

#include <cuda_runtime.h>

#include "fftconv/fftconv_args.h"

namespace jff {

// Handled: BHL, N a power of two in 65536 .. 2^24 whose default split (longconv::default_n1) the
// inner step takes for the dtype (bf16/fp16 on tensor cores: every such N; fp32 on CUDA cores:
// N <= 2^23, the fp32 inner row being at most 16384 points), compute capability >= 8.0 and enough
// opt-in shared memory per block for every kernel of the plan (e.g. fp32 N = 512K or 8M needs 192 KB).
bool long_fwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block);
bool long_bwd_supported(const FftconvDims& d, int device_major, size_t max_smem_per_block);

// Bytes of device scratch (16-byte aligned pointer expected). O(G*H*N + min(B*H*N, ~1 GiB)) for
// the forward (O(min(B*H*N, ~1 GiB)) with a kspec operand); the backward adds dk's fp32 spectrum and its
// chunked workspaces.
size_t long_fwd_scratch_bytes(const FftconvFwdArgs& a);
size_t long_bwd_scratch_bytes(const FftconvBwdArgs& a);

// The prepared filter spectrum K' (G*H filters of Lk <= N taps, skip folded in; nullptr: no skip) for data
// of dtype `data` into kspec (GH * longconv::prepared_spectrum_floats(N, data == bf16) floats, 16-byte aligned; bf16
// slices for bf16 data, longconv::kspec_bf16; cudaErrorInvalidValue where a build keeps them in fp32 and they would
// not fit), through the scratch of long_spectrum_scratch_bytes (at most
// ~1 GiB: filters are transformed in groups that fit).
// Supported where the long forward's filter kernels run: N a long size, compute capability >= 8.0 and
// the shared memory of the filter-slice kernel.
bool long_spectrum_supported(int64_t N, int device_major, size_t max_smem_per_block);
size_t long_spectrum_scratch_bytes(int64_t GH, int64_t N);
cudaError_t long_filter_spectrum(const float* k, const float* skip, int64_t GH, int64_t Lk, int64_t N, DType data,
                                 float* kspec, cudaStream_t stream, void* scratch, size_t scratch_bytes);

// Enqueue on `stream`; cudaErrorInvalidValue when unsupported or the scratch is too small,
// otherwise the first launch error.
cudaError_t long_fwd(const FftconvFwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes);
cudaError_t long_bwd(const FftconvBwdArgs& a, cudaStream_t stream, void* scratch, size_t scratch_bytes);

}  // namespace jff
