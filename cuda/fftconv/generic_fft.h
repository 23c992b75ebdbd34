// Generic CUDA fftconv: correct for the whole contract of cuda/README.md (every power-of-two N up
// to 2^24, any L, Lk, B, H, G, R, both layouts, f16/bf16/f32, optional gates and skip), fp32 inside.
//
// Algorithm (the facts behind it are in /work/shared/DESIGN.md §3):
//  * A real length-N row x is packed as the complex length-M row z[m] = x[2m] + i x[2m+1], M = N/2,
//    so every transform is a complex FFT of size M. The real spectrum at k and k+M is recovered from
//    Z[k] and Z[M-k] ("pair step"), multiplied there, and packed back before the inverse. Rows are never
//    packed with each other, so a row's error does not scale with another row's magnitude.
//  * M <= 4096: one fused kernel per direction (load + gates + zero padding, FFT, pair step, inverse
//    FFT, epilogue) with the transform in shared memory.
//  * M > 4096: four-step M = N1 * N2 through a scratch buffer: a column pass (FFT over n1, twiddle),
//    a row pass (FFT over n2, pair step, inverse FFT over n2; each block owns the two rows k1 and
//    N1 - k1 that the pair step couples) and an inverse column pass with the epilogue.
//  * Forward FFTs are decimation in frequency (natural in, bit-reversed out) and inverse FFTs are
//    decimation in time (bit-reversed in, natural out), so no permutation pass exists anywhere; k's
//    spectrum is produced by the same code and so is stored in the same order.
//  * Backward: dv and the per-row correlation corr(dz, v)[:Lk] come from the same spectra; each row's
//    correlation goes to scratch and a reduction kernel adds rows into dk (and its lag 0 into dskip) in
//    ascending batch order, so results are bitwise reproducible.
//  * BLH (channels-last) rows are strided by H. They are staged through scratch as contiguous float
//    rows by tile-transposing kernels that also apply the gates, so every global access coalesces.
//  * Scratch (k spectra, four-step rows, per-row correlations, staged rows) is bounded by processing
//    filters and rows in chunks; the chunking depends only on shapes and the device, so the launch
//    sequence is fixed.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "fftconv/fftconv_args.h"

namespace jff {
namespace generic {

struct DeviceProps {
  int major = 0;                    // compute capability
  size_t smem_optin = 48 * 1024;    // cudaDevAttrMaxSharedMemoryPerBlockOptin, bytes
};

// Knobs of the plan. The defaults are what the handler uses; the self-test shrinks them to drive the
// chunked and four-step paths at sizes a CPU reference can check.
struct PlanOptions {
  size_t scratch_budget = size_t(512) << 20;  // soft cap; one filter plus one row is always allowed
  int max_fused_log2m = 12;                   // fused kernel for M <= 2^this (and when it fits smem)
  int max_log2n2 = 12;                        // four-step row length N2 <= 2^this
  bool stage_blh = true;                      // BLH through coalesced staging (else strided access)
};

// How one call runs. Everything here follows from shapes, options and the device.
struct Plan {
  bool bwd = false, has_post = false;
  bool fused = false;
  bool staged = false;              // BLH rows staged as contiguous float rows in scratch
  int log2n = 1, log2m = 0;         // N_eff = max(N, 2) = 2M (N = 1 gives the same result as N = 2)
  int log2n1 = 0, log2n2 = 0;       // four-step: M = N1 * N2, N1 = column-FFT size
  int planes = 1;                   // complex planes per row: fwd 1; bwd 2 (v, dz) + 1 when post
  int fused_t = 1;                  // rows (transforms) per block in the fused kernels
  int col_t = 1;                    // columns per block in the four-step column passes
  size_t fused_smem = 0, kfused_smem = 0, col_smem = 0, row_smem = 0;
  int64_t filters = 0;              // G * H
  int64_t rows_max = 0;             // batch rows of group 0, the largest group
  int64_t cyc = 0, rem = 0, R = 1;  // B = cyc * (R*G) + rem, R clamped to B: rows per group in O(1)
  int64_t nf = 0, jc = 0;           // chunk: nf filters x jc rows of each
  size_t kspec_bytes = 0, rows_bytes = 0, cpart_bytes = 0, stage_bytes = 0;  // each 256-aligned
  size_t scratch_bytes = 0;
};

// Fills `plan` for the forward (bwd = false) or backward problem `d`. Requires B >= 1, H >= 1,
// L >= 1 (the handler deals with empty problems itself). Fails only when the device cannot hold the
// smallest transform tiles in shared memory.
ffi::Error MakePlan(const FftconvDims& d, bool bwd, bool has_post, const DeviceProps& props,
                    const PlanOptions& opts, Plan* plan);

// Enqueue the whole computation on `stream`. `scratch` must hold plan.scratch_bytes (256-byte
// aligned). No allocation, no synchronisation, no host access to device data.
ffi::Error RunFwd(const FftconvFwdArgs& a, const Plan& plan, void* scratch, cudaStream_t stream);
ffi::Error RunBwd(const FftconvBwdArgs& a, const Plan& plan, void* scratch, cudaStream_t stream);

}  // namespace generic
}  // namespace jff
