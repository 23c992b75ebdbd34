// CUDA depthwise conv: host-side launchers shared by the FFI handler (handler_cuda.cc) and the
// standalone self-test (depthwise_selftest.cu). Semantics are those of cuda/README.md; the
// arguments arrive already validated (shapes, dtypes, 1 <= K <= 128, pads >= 0, L_out >= 1).
//
// Two families of kernels:
//  * fast paths, templated on K in {2, 3, 4, 5, 7}: one pass over memory with vectorised
//    loads (BLH: 8 bytes of channels per thread, 4 when D is not a multiple of 4 halves,
//    streaming down the length; BHL: a warp streaming along one row in 16-byte vectors, the
//    halo of K-1 elements fetched from neighbouring lanes by shuffles). The next step's data
//    is requested before the current step is computed. The backward pass fuses dx, dw and
//    dbias into a single read of dy and x.
//  * generic paths for every other K, unaligned pointers or odd channel counts: plain loops,
//    correct for anything the contract allows, not tuned.
// dw and dbias are deterministic: each block (or warp) writes its partial sums to a fixed
// slot of a float32 scratch buffer and a second kernel adds the slots in a fixed order.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace jff {

// The problem as the kernels see it: depthwise_args.h's structs without the XLA headers
// (which nvcc cannot compile), filled in by handler_cuda.cc.
enum class DwElem : int { kF16 = 0, kBF16 = 1, kF32 = 2 };

struct DwDims {
  DwElem x_dtype;   // of x, y, dy, dx
  DwElem w_dtype;   // of w and bias: kF32 or x_dtype
  int32_t layout;   // 0: BHL, x is (B, D, L); 1: BLH, x is (B, L, D)
  int64_t B, L, D, K;
  int64_t pad_lo, pad_hi;
  int64_t L_out;    // L + pad_lo + pad_hi - K + 1 >= 1
};

struct DwFwdArgs {
  DwDims d;
  const void* x;
  const void* w;     // (K, D)
  const void* bias;  // (D,), nullptr when absent
  void* y;
};

struct DwBwdArgs {
  DwDims d;
  const void* dy;
  const void* x;
  const void* w;
  void* dx;
  float* dw;         // (K, D)
  float* dbias;      // (D,), nullptr when not wanted
};

// Knobs the self-test sweeps to pick the defaults; production calls pass nullptr.
struct DepthwiseTuning {
  int blh_fwd_variant = -1;  // index into the BLH forward (vector width, rows) table; -1: default
  int blh_bwd_variant = -1;  // index into the BLH backward table; -1: default
  int bhl_bwd_variant = -1;  // index into the BHL backward table; -1: default
  int64_t target_warps = 0;  // warps the work is cut into; 0: default
  int64_t min_rows = 0;      // BLH: fewest rows per stretch; 0: default
  bool skip_finalize = false;  // timing only: leave out the dw/dbias reduction kernel
  bool force_generic = false;
  bool bhl_general = false;    // BHL: the general fast kernels even where the aligned ones apply
  bool no_pdl = false;         // launch without programmatic dependent launch (A/B timing)
};

// Number of entries in the tuning tables above, and a short description of one entry.
int DepthwiseBlhFwdVariants();
int DepthwiseBlhBwdVariants();
int DepthwiseBhlBwdVariants();
std::string DepthwiseBlhFwdVariantName(int v);
std::string DepthwiseBlhBwdVariantName(int v);

// Which kernels a call would use, e.g. "blh-fast V8 R4 S16"; for logs and the self-test table.
std::string DepthwiseFwdPlanName(const DwFwdArgs& a, const DepthwiseTuning* tuning = nullptr);
std::string DepthwiseBwdPlanName(const DwBwdArgs& a, const DepthwiseTuning* tuning = nullptr);

// Enqueues the forward pass on `stream`. Returns "" on success, else a message naming the
// failing CUDA call or kernel.
std::string LaunchDepthwiseFwd(const DwFwdArgs& a, cudaStream_t stream,
                               const DepthwiseTuning* tuning = nullptr);

// Bytes of device scratch LaunchDepthwiseBwd needs for these arguments (pointers matter:
// their alignment picks the kernel). Always > 0.
size_t DepthwiseBwdScratchBytes(const DwBwdArgs& a, const DepthwiseTuning* tuning = nullptr);

// Enqueues the backward pass (dx, dw, and dbias when a.dbias != nullptr). `scratch` must hold
// DepthwiseBwdScratchBytes(a) bytes, 16-byte aligned, and stay alive until the stream has
// run the enqueued kernels (stream-ordered reuse, as with XLA's own temporaries, is fine).
std::string LaunchDepthwiseBwd(const DwBwdArgs& a, void* scratch, size_t scratch_bytes,
                               cudaStream_t stream, const DepthwiseTuning* tuning = nullptr);

}  // namespace jff
