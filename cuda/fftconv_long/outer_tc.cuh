// Tensor-core (mma.sync m16n8k16, 16-bit operands, fp32 accumulation) outer passes of the long
// fftconv for N1 in {16, 32, 256, 512} and u in bf16/fp16. Included by outer_pass.cuh, which
// holds the public API, argument checks and launchers; the math is in benchmarks/notes_long.md.
//
// One CTA owns a fixed tile of TW contiguous columns n2 and loops over signal rows, so its
// tables (outer twiddles w_N^(k1 n2) of the tile, DFT fragments) are built once. Per row:
// load -> one or two DFT stages in shared memory -> store, separated by __syncthreads.
// Every DFT stage is a product Out[c][j] = sum_k A[c][k] B[k][j] per warp and 16-column slab:
// M = the 16 columns c (so the data is the A operand, read from shared memory rows k with
// ldmatrix.trans), N = output frequencies j, K = input index k; B is a DFT-like matrix held in
// registers for the whole kernel. Putting the columns in M lets N be as small as the outputs
// that are needed (8-wide n-tiles): the real-input forward only forms k1 < N1/2.
//
// Forward (v real): N1 = P*Q, n1 = Q p + q, k1 = kp + P kq.
//   single level (Q = 1): Out[c][k1] for k1 < N1/2 from B[n1][k1] = w_N1^(n1 k1)/sqrt(N1),
//     except column 0's imaginary part, (-1)^n1/sqrt(N1): that column then carries
//     C[0] + i C[N1/2], the packed row, at no extra cost.
//   two levels (P = 16, Q = 16/32): stage 1, per q, a real-input P-point DFT over p (all kp),
//     times w_N1^(kp q), into Z1 (rows q*P + kp, in place of the unit's input rows); stage 2,
//     per kp, a complex Q-point DFT over q for kq < Q/2 only (k1 < N1/2), written in place too
//     (OUT row k1 = kp + P kq is Z1 row (q = kq, kp)). C[N1/2] (k1 = N1/2 is kp = 0, kq = Q/2, not formed) is
//     Q^-1/2 sum_q (-1)^q Z1[0][q], summed by the lanes that own k1 = 0.
//   Then times w_N^(k1 n2) (k1 >= 1), and out through a staging buffer with 16-byte stores.
// Twiddles (w_N^(k1 n2), w_N1^(kp q)) come from the special-function unit (FastW), not from tables.
// Inverse: E[k1] = Q[k1] conj(w_N^(k1 n2)) for k1 >= 1, E[0] = Re Q[0], E[N1/2] = Im Q[0],
//   E[N1-k1] = conj(E[k1]); z real.
//   single level: z[n1] = sum over the N1/2 packed rows of Er Hr + Ei Hi, the complex-to-real
//     weights Hr[0] = 1, Hi[0] = (-1)^n1, Hr[k] = 2cos, Hi[k] = -2sin (2 pi k n1 / N1), all
//     / sqrt(N1): K = [Er | Ei] stacked, one product, no expansion of the spectrum.
//   two levels: stage A, per kp <= P/2, a complex inverse Q-point DFT over kq of the expanded
//     E[kp + P kq] (the load writes each stored row once or twice, the second time conjugated
//     into its partner's slot), times conj w_N1^(kp q), into G (rows q*(P/2) + kp, with G[P/2]
//     packed into row kp = 0's imaginary plane: G[0] and G[P/2] are real); stage B, per q, the
//     complex-to-real P-point product above. Output rows go to an fp32 buffer so the post gate
//     and skip are applied before the one rounding to the output type.
//
// Shared-memory planes: logical row r of a 16-bit plane is stored as physical row
// r ^ s(r), s(r) = ((r >> 3) ^ (r >> 6)) & 7, with a pitch of U = TW/8 + 1 16-byte units (odd).
// A row's bank group (16-byte unit mod 8) is then ((r ^ s(r)) mod 8) * U mod 8, a bijection of
// the row's low bits XOR s: 8 consecutive rows and 8 rows 8, 16 or 32 apart all land in 8
// distinct bank groups. The strided cases: stage 2's ldmatrix of Z1 rows q*P + kp and its
// transposed stores into OUT rows kp + P kq (16 apart), stage A's stores into G rows
// q*(P/2) + kp (8 apart).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

// The long path keeps monarch_core.cuh's inner products in float32 (kPackedCmul off): its errors grow with
// the transform's stages (bf16 128K backward, emulated: du 8.3e-3 -> 9.2e-3 with packed products) and the
// packed form was timed only on the fused kernels (N <= 32768).
#ifndef JFF_PACKED_CMUL
#define JFF_PACKED_CMUL 0
#endif
#ifdef JFF_LONG_EMU
#include "fftconv_long/emu.h"  // also defines JFF_DYN_SMEM / JFF_LAUNCH for the emulation
#else
#include "common/tma.cuh"
#include "fftconv/monarch_core.cuh"
// Dynamic shared memory and launches, spelled so that the CPU emulation can replace them.
#define JFF_DYN_SMEM(type, name) extern __shared__ __align__(16) type name[]
#define JFF_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<grid, block, smem, stream>>>(__VA_ARGS__)
#endif

#include "fftconv_long/long_plan.h"

#ifndef JFF_LONG_EMU
namespace jff {
// The inverse's outputs are written once: 16-byte streaming stores, as the fused kernels' outputs. (A
// plain uint4 store through store8's default path reached the PTX here as four 32-bit stores: ncu saw
// 4x the store requests.) emu.h has the host stand-in.
__device__ __forceinline__ void store8_last(uint16_t* row, int t, int L, bool vec, uint4 v) {
  store8<Touch::kLast>(row, t, L, vec, v);
}
// Staged loads (the JFF_LONG_*_STAGE paths): a 16-byte cp.async of a stream read once (evict-first; bytes = 0
// zero-fills), the group commit and the waits. emu.h has host stand-ins (immediate copies).
__device__ __forceinline__ void stage16(void* smem, const void* g, int bytes) {
  cp_async16<Touch::kLast>(smem, g, bytes);
}
__device__ __forceinline__ void stage_commit() { cp_async_commit(); }
// 8 fp32 values of a row read once (the filter spectrum's pass over k), zero at t >= L: two 16-byte
// streaming loads where the row is 16-byte aligned. emu.h has the host stand-in.
__device__ __forceinline__ void load8f(const float* row, int t, int L, bool vec, float (&f)[8]) {
  if (vec && t + 8 <= L) {
    const float4 a = load_hinted<Touch::kLast>(reinterpret_cast<const float4*>(row + t));
    const float4 b = load_hinted<Touch::kLast>(reinterpret_cast<const float4*>(row + t + 4));
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) f[e] = t + e < L ? load_hinted<Touch::kLast>(row + t + e) : 0.f;
}
template <int Pending>
__device__ __forceinline__ void stage_wait() {
  cp_async_wait<Pending>();
}
// 8 fp32 outputs written once (dk's inverse from a bf16 workspace), t >= L dropped: two 16-byte streaming
// stores where the row is 16-byte aligned. emu.h has the host stand-in.
__device__ __forceinline__ void store8f_last(float* row, int t, int L, bool vec, const float (&f)[8]) {
  if (vec && t + 8 <= L) {
    store_hinted<Touch::kLast>(reinterpret_cast<float4*>(row + t), make_float4(f[0], f[1], f[2], f[3]));
    store_hinted<Touch::kLast>(reinterpret_cast<float4*>(row + t + 4), make_float4(f[4], f[5], f[6], f[7]));
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e)
    if (t + e < L) store_hinted<Touch::kLast>(row + t + e, f[e]);
}
// __shfl_xor_sync of a double over the whole warp. emu.h has the host stand-in.
__device__ __forceinline__ double shfl_xor_f64(double v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }
}  // namespace jff
#endif

namespace jff {
namespace longconv {
namespace tc {

struct FwdParams {
  const uint16_t* u;
  const float* uf;      // fp32 input instead of u (the F32IN instances: the filter spectrum's pass over k)
  const uint16_t* pre;  // nullptr: absent (always absent with fp32 input)
  uint16_t* ws;
  int64_t row0, nrows, N2;
  int L;    // <= 2^24
  int vec;  // rows 16-byte aligned: vector loads allowed
};

// The forward's TMA maps (fwd_tma): u and pre as 3-D tensors (n2 < N2, n1 < L / N2, signal row), so that a
// box (TW, min(N1, 256), 1) is one row's tile piece and the rows n1 >= L / N2 (implicit zero padding) come
// as zeros. A kernel parameter of its own (__grid_constant__: TMA takes the parameter's address); `on` = 0: no
// maps (the plain loads run).
struct FwdMaps {
  TileMap u, pre;
  TileMap ws;  // fwd_tma_store: the workspace as InvMaps' ws
  int on;
};

struct InvParams {
  const uint16_t* ws;
  const uint16_t* post;  // nullptr: absent
  const uint16_t* u;     // read only with skip
  const uint16_t* pre;   // read only with skip (nullptr: absent)
  const float* skip;     // (G, H) or nullptr (folded into the inner spectrum)
  uint16_t* y;
  float* yf;  // fp32 output instead of y (the F32OUT instances: dk's inverse from a bf16 workspace)
  const uint16_t* post2;  // second output y2 = post2 * (z + skip term) (both or neither)
  uint16_t* y2;
  int64_t row0, nrows, N2, H, G, R;
  int L;
  int vec;
};

// The inverse's TMA maps (inv_tma, inv2_tma): the workspace as (n2 < N2, 2 k1 + plane < N1, signal row r), so
// that a box (TW, min(N1, 256), 1) is a row's whole tile of both planes; post (and the two-output instance's
// post2) as FwdMaps' u. on = 0: no maps.
struct InvMaps {
  TileMap ws, post, post2;
  TileMap y, y2;          // inv_tma_store: the outputs' views, as post's (on_store = 1)
  TileMap dy, post_dy;    // the register epilogue with dskip's partials: SkipParts' dy and post as post's
  int on, on_store;
};

// With y2 and post (the backward's du / dpre pass: post = pre, post2 = u), optionally dskip's partial sums: per
// (row, column tile, warp), the sum over the warp's t < L of (dy * post) * (post2 * post of InvParams) in double, at
// part[(row0 + r) * gridDim.x * WARPS + blockIdx.x * WARPS + warp]; the launch then has Shape::kSkipBytes more
// shared memory. part nullptr: none. A kernel parameter of its own: as fields of InvParams (128 -> 152 bytes) they
// changed every instance's code (ptxas then addressed the parameter struct through a pointer) and its registers,
// with 20-40 B of new spills.
struct SkipParts {
  const uint16_t* dy;
  const uint16_t* post;  // nullptr: absent
  double* part;
};
// dskip's term of one element, g v = (dy post_dy) (u pre): fp32 products as dskip_rows_kernel forms them, in double.
__device__ __forceinline__ double dskip_term(float dy_post_dy, float u, float pre) {
  return static_cast<double>(dy_post_dy) * static_cast<double>(u * pre);
}
// A warp's dskip partial for signal row `row`, summed over its lanes by a fixed tree (the same bits every run).
template <int WARPS>
__device__ __forceinline__ void write_skip_part(double acc, const SkipParts& parts, int64_t row, int warp, int lane) {
#pragma unroll
  for (int m = 16; m > 0; m >>= 1) acc += shfl_xor_f64(acc, m);
  if (lane == 0) parts.part[(row * gridDim.x + blockIdx.x) * WARPS + warp] = acc;
}

// 16-bit shared-memory plane geometry (see the header comment).
template <int TW>
struct Plane {
  static_assert(TW == 16 || TW == 32 || TW == 64, "tile width");
  static constexpr int U = TW / 8 + 1;
  // Physical row = r with its low 3 bits XORed by s(r): a permutation inside each aligned
  // block of 8 rows, so planes need exactly ceil8(rows) * U units.
  static __device__ __forceinline__ int off(int r) { return (r ^ (((r >> 3) ^ (r >> 6)) & 7)) * U * 8; }
  static __device__ __forceinline__ int at(int r, int col) { return off(r) + col; }  // element (r, col)
  static __host__ __device__ constexpr int elems(int rows) { return ((rows + 7) / 8) * 8 * U * 8; }
};

// A 16-column plane without padding (the two-level passes, where the padded Plane<16>'s third of unused bytes cost
// a CTA per SM): rows of 32 bytes, 4 to a 128-byte line L = r >> 2, whose 16-byte unit j = 2 (r & 3) + col / 8 sits at
// j ^ g(L), g = (L0 ^ L2) | (L0 ^ L3) << 1 | (L0 ^ L1 ^ L2 ^ L4) << 2 (Li: bit i of L). Found by exhaustive search
// over such XOR maps so that the passes' patterns hit 8 distinct bank groups: 8 consecutive rows (ldmatrix reads,
// stage 1's stores), 8 rows 8 apart (the inverse's stage A stores into GB), 8 rows 16 apart (the forward's stage 2),
// 4 rows 16 apart with both units (the forward's load phase), 4 rows Q apart with both units (the inverse's EF
// writes; at Q = 16 the rows P / 2 < kp < P keep a 2-way conflict, Q = 32 none). Accesses stay inside 16-byte units.
struct CPlane16 {
  static __device__ __forceinline__ int at(int r, int col) {
    const int L = r >> 2;
    const int g =
        ((L ^ (L >> 2)) & 1) | (((L ^ (L >> 3)) & 1) << 1) | (((L ^ (L >> 1) ^ (L >> 2) ^ (L >> 4)) & 1) << 2);
    return L * 64 + ((((r & 3) << 1) | (col >> 3)) ^ g) * 8 + (col & 7);
  }
  static __host__ __device__ constexpr int elems(int rows) { return ((rows + 7) / 8) * 8 * 16; }
};

// Per outer size: the staged (cp.async of the next row during this row's DFTs) load paths, and the
// single-level twiddles in shared memory instead of registers. Measured on an H200 (bf16, outer_selftest
// --bench, forward / inverse ms, session 20; default of session 19 -> staged, -> twiddles in shared memory):
//   N1 = 16 (64K):   1.86 / 3.87 -> 1.70 / 3.71, -> 1.79 / 3.54
//   N1 = 32 (256K):  1.93 / 2.90 -> 1.68 / 2.59, -> 1.70 / 2.93
//   N1 = 256 (1M):   2.19 / 2.56 -> 3.28 / 2.36  (the staged forward loses; the inverse wins)
//   N1 = 512 (4M):   2.52 / 3.04 -> 3.07 / 3.10  (both lose)
// JFF_LONG_FWD_STAGE / JFF_LONG_INV_STAGE / JFF_LONG_INV2_STAGE / JFF_LONG_SMEM_TW = 0 or 1 force a switch at every
// size (A/B runs); unset (-1), the size's measured choice below applies. The same holds for the *_MINB caps further on.
#ifndef JFF_LONG_FWD_STAGE
#define JFF_LONG_FWD_STAGE -1
#endif
#ifndef JFF_LONG_INV_STAGE
#define JFF_LONG_INV_STAGE -1
#endif
#ifndef JFF_LONG_INV2_STAGE
#define JFF_LONG_INV2_STAGE -1
#endif
#ifndef JFF_LONG_SMEM_TW
#define JFF_LONG_SMEM_TW -1
#endif
#ifndef JFF_LONG_FWD_TMA
#define JFF_LONG_FWD_TMA -1
#endif
#ifndef JFF_LONG_INV_TMA
#define JFF_LONG_INV_TMA -1
#endif
#ifndef JFF_LONG_FWD_TMA_STORE
#define JFF_LONG_FWD_TMA_STORE -1
#endif
#ifndef JFF_LONG_INV_TMA_STORE
#define JFF_LONG_INV_TMA_STORE -1
#endif
#ifndef JFF_LONG_INV2_TMA
#define JFF_LONG_INV2_TMA -1
#endif
#ifndef JFF_LONG_FWD_MINB
#define JFF_LONG_FWD_MINB -1
#endif
#ifndef JFF_LONG_INV_MINB
#define JFF_LONG_INV_MINB -1
#endif
#ifndef JFF_LONG_INV2_MINB
#define JFF_LONG_INV2_MINB -1
#endif
constexpr int per_size(int forced, int measured) { return forced >= 0 ? forced : measured; }

// Phase probe of the tensor-core passes, a compile-time switch for one timing experiment (results wrong by design;
// the self-test reports failures), as the fused kernels' JFF_FWD_PHASE_PROBE / JFF_BWD_PHASE_PROBE: 1 = the global
// loads and stores alone (no DFT stages), 2 = the DFT stages alone (no global loads or stores; the planes keep
// whatever they hold). Against the full pass it says how far a CTA's serial load -> DFT -> store phases are from
// overlapping (notes_long.md, session 29).
#ifndef JFF_LONG_OUTER_PROBE
#define JFF_LONG_OUTER_PROBE 0
#endif
constexpr bool kOuterProbeTransforms = JFF_LONG_OUTER_PROBE != 1, kOuterProbeStreams = JFF_LONG_OUTER_PROBE != 2;

constexpr bool fwd_stage(int N1) { return per_size(JFF_LONG_FWD_STAGE, N1 <= 32) != 0; }
constexpr bool inv_stage(int N1) { return per_size(JFF_LONG_INV_STAGE, N1 <= 256) != 0; }
// The two-output instance (the backward's du / dpre; its second gate staged too), long_bwd_selftest --bench "du and
// dpre", unstaged -> staged: N1 = 16 5.46 -> 4.11 ms, N1 = 32 4.58 -> 5.97 (128 registers under its cap, 32 B
// spilled), N1 = 256 4.31 -> 4.34.
constexpr bool inv2_stage(int N1) { return per_size(JFF_LONG_INV2_STAGE, N1 == 16) != 0; }
// TMA staging of the forward's u and pre tiles (or fp32 k's): stages (rows in flight) per outer size, 0 = off.
// Measured on an H200 (bf16, outer_selftest --bench, forward ms, two rounds, session 31; plain loads (the staged
// cp.async ones at N1 <= 32) -> 1 / 2 / 3 stages):
//   N1 = 16 (64K):   1.62 -> 1.46 / 1.43 / 1.50      N1 = 32 (256K): 1.60 -> 1.44 / 1.37 / 1.34
//   N1 = 256 (1M):   2.21 -> 2.13 / 1.96 / 1.99      N1 = 512 (4M):  2.51 -> 2.02 / 2.03 / 2.86
// N1 = 512 takes one stage: with the box store below it keeps two CTAs per SM (session 33).
// JFF_LONG_FWD_TMA forces a count at every size (A/B runs).
constexpr int fwd_tma(int N1) { return per_size(JFF_LONG_FWD_TMA, N1 == 32 ? 3 : N1 == 512 ? 1 : 2); }
// The forward's workspace tile out by one TMA box store per row (with TMA loads only) instead of 16-byte stores.
// H200, bf16, outer_selftest --bench, forward ms, two rounds (session 32; 16-byte stores -> box stores):
//   N1 = 16 (64K):   1.43 / 1.44 -> 1.32 / 1.31      N1 = 32 (256K): 1.34 / 1.36 -> 1.38 / 1.38
//   N1 = 256 (1M):   2.01 / 1.98 -> 1.86 / 1.88      N1 = 512 (4M):  2.06 / 2.07 -> 3.00 / 3.01
// (at N1 = 512 the dense output tile, N1 TW 16-bit elements more per CTA, cost occupancy with two TMA stages; with
// one stage it fits two CTAs per SM: session 33, forward ms, 2 stages without -> 1 stage with box stores: N1 = 512
// 2.038 / 2.038 -> 1.910 / 1.908; the same forced at other sizes lost: N1 = 16 1.30 -> 1.32, 32 1.33 -> 1.46,
// 256 1.86 -> 2.06 / 2.13). 0 / 1 forces it.
// The two-level forward's planes R / I as CPlane16 (no padding; JFF_LONG_FWD_CPLANE=1, 0 = Plane<16>): N1 = 512
// 49 -> 32 KB, N1 = 256 25 -> 16 KB, and the bank profiler's conflicts in stage 2 and the load phase go; with them
// N1 = 512 without the box store (below) holds 64 KB: three CTAs per SM instead of two. Yet slower on the GPU
// (H200, bf16, outer_selftest --bench forward ms, two rounds, session 36; Plane<16> -> CPlane16): N1 = 256 (1M)
// 1.890 -> 2.337, N1 = 512 (4M) 1.938 -> 2.186 (2.432 with the box store kept); the k pass at 1M 1.90 -> 2.35.
// So off (the inverse's register epilogue keeps its CPlane16 planes, which did gain there).
#ifndef JFF_LONG_FWD_CPLANE
#define JFF_LONG_FWD_CPLANE 0
#endif
constexpr bool fwd_tma_store(int N1) {
  return fwd_tma(N1) > 0 &&
         per_size(JFF_LONG_FWD_TMA_STORE, N1 == 16 || N1 == 256 || (N1 == 512 && !JFF_LONG_FWD_CPLANE)) != 0;
}
// The same for the single-output inverse's workspace and post tiles (in place of the staged cp.async path at
// N1 <= 256). H200, bf16, outer_selftest --bench, inverse ms, two rounds, session 31; plain or cp.async-staged loads
// -> 1 / 2 / 3 stages:
//   N1 = 16 (64K):   2.81 -> 3.13 / 2.66 / 2.69      N1 = 32 (256K): 2.64 -> 2.49 / 2.16 / 2.18
//   N1 = 256 (1M):   2.40 -> 2.36 / 2.89 / 2.83      N1 = 512 (4M):  3.05 -> 2.97 / 4.22 / 4.28
// (two stages at N1 >= 256 cost occupancy: the inverse's tiles hold a row's stage until its epilogue).
constexpr int inv_tma(int N1) { return per_size(JFF_LONG_INV_TMA, N1 <= 32 ? 2 : 1); }
// The two-output instance (the backward's du / dpre: workspace, post and post2 tiles per stage; JFF_LONG_INV2_TMA).
// H200, long_bwd_selftest --bench "du and dpre", bf16, ms (the cp.async staging at N1 = 16, plain loads elsewhere
// -> 1 / 2 stages; session 31 and session 32's two rounds):
//   N1 = 16 (64K):   6.07 / 6.03 / 6.00 -> 6.22 / 6.31 / - ; 5.79 / 5.79 / 5.80
//   N1 = 32 (256K):  6.45 / 6.38 / 6.39 -> 6.15 / 6.17 / - ; 6.12 / 6.11 / 6.10
//   N1 = 256 (1M):   4.30 / 4.21 / 4.23 -> 4.08 / 4.02 / - ; 5.29 / 5.01 / 4.73
//   N1 = 512 (4M):   6.27 / 6.28 / 6.22 -> 8.59 / 8.58 / - ; 8.57 / 8.56 / 8.61
constexpr int inv2_tma(int N1) { return per_size(JFF_LONG_INV2_TMA, N1 <= 32 ? 2 : N1 == 256 ? 1 : 0); }
// The inverse's outputs (y; y2 in the two-output instance) out by one TMA box store per row instead of 16-byte
// stores, where that instance has TMA stages: each thread writes its chunks over the post (post2) chunks it has
// just read from the row's stage, and thread 0 stores the tile once the row ends (waiting for that store to have
// read the stage before it refills it). H200, bf16, two rounds (session 32; 16-byte stores -> box stores, ms):
//   single output (outer_selftest --bench inverse): N1 = 16 2.65 / 2.65 -> 2.80 / 2.79, N1 = 32 2.14 / 2.13 ->
//     2.38 / 2.39, N1 = 256 2.37 / 2.37 -> 2.48 / 2.49, N1 = 512 2.98 / 2.96 -> 3.06 / 3.06;
//   two outputs (long_bwd_selftest --bench "du and dpre"): N1 = 16 5.79 / 5.91 -> 6.15 / 6.21, N1 = 32 6.17 / 6.10
//     -> 5.17 / 5.21, N1 = 256 4.06 / 4.03 -> 4.37 / 4.37 (N1 = 512 has no stages there).
// So only the two-output instance at N1 = 32. 0 / 1 forces it everywhere.
constexpr bool inv_tma_store(int N1, bool two_outputs) {
  return per_size(JFF_LONG_INV_TMA_STORE, two_outputs && N1 == 32) != 0;
}
constexpr bool smem_tw(int N1) { return per_size(JFF_LONG_SMEM_TW, N1 <= 32) != 0; }  // single level only (N1 <= 32)
// The inverse's register epilogue (TMA; Shape::kReg*, reg_*): stage B multiplies its fp32 results by post (and
// post2) straight from the gates' tiles (swizzled, read by ldmatrix in D's layout) and writes y (y2) over them, and
// each warp stores the tile columns it wrote, so the fp32 output buffer OUTF and the epilogue's pass over it go, and
// a barrier per row; dskip's partials come from dy's and post_dy's tiles the same way. Two levels (N1 = 256, 512):
// the workspace tile, read only by the load phase, shares GB's bytes (GB is written only after that phase), EF / GB
// are CPlane16; the single-output pass's shared memory at N1 = 512 96 KB -> 50 KB, two -> four CTAs per SM (its
// 2.13 ms of loads and stores and 0.88 ms of DFTs ran back to back at two, 4M, session 32's probe), N1 = 256 48 ->
// 25 KB; three barriers per row instead of four. One level (N1 = 16, 32: the 64K inverse runs 2.27 ms against the
// forward's 1.30 for the same bytes): two barriers per row instead of three. Registers fall at every size
// (notes_long.md, session 35). H200, bf16, ms, best of two rounds (session 36; old instances -> register epilogue):
//   single output (outer_selftest --bench inverse): N1 = 16 (64K) 2.252 -> 1.458, N1 = 256 (1M) 2.296 -> 2.010,
//     N1 = 512 (4M) 2.970 -> 2.303; long_bwd_selftest --bench "dpost": N1 = 32 (256K) 1.544 -> 1.463;
//   two outputs ("du and dpre", with dskip's partials but at 1M): N1 = 16 5.269 -> 3.445, 32 4.489 -> 3.433,
//     512 5.985 -> 4.552, but N1 = 256 (no partials there) 3.219 -> 6.192 (not yet understood: notes_long.md).
// So everywhere but the two-output instance at N1 = 256; 0 / 1 forces it off / on at every size.
#ifndef JFF_LONG_INV_REG_EPI
#define JFF_LONG_INV_REG_EPI -1
#endif
constexpr bool inv_reg_epi(int N1, bool two_outputs) {
  return JFF_LONG_OUTER_PROBE == 0 && per_size(JFF_LONG_INV_REG_EPI, !(two_outputs && N1 == 256)) != 0;
}
// Bytes of dynamic shared memory the two-output register-epilogue launch takes at least (0: what it needs). An A/B
// knob for the N1 = 256 question above: e.g. 57344 caps it at 3 CTAs per SM (its own 33.8 KB allow 6).
#ifndef JFF_LONG_REG2_MIN_SMEM
#define JFF_LONG_REG2_MIN_SMEM 0
#endif
// The order in which the outer passes' threads read the TMA stages' dense tiles (JFF_LONG_TILE_ORDER).
// 0: the inverse epilogue's chunks rows fastest, which keeps its fp32 OUTF reads conflict-free but makes the 8
// lanes of a 16-byte shared-memory phase read one column of 8 rows of the post (post2) tile (and write the box
// stores' output tile so): rows 128 bytes (TW = 64) or N1 / 16 x 32 bytes apart, all in the same four banks, an
// 8-way conflict; at TW = 16 the inverse's workspace tile (rows 2 k1 + plane of 32 bytes) and the forward's fp32 k
// tile (32 bytes per lane) read 2-way conflicted. 1: an epilogue order in which both OUTF and the dense tiles are
// conflict-free and each warp instruction still covers whole 32-byte row pieces (Shape::epi_chunk), the two planes
// of a workspace chunk read in a per-lane order ((k1 >> 1) & 1 first), the two halves of an fp32 chunk likewise
// ((i >> 2) & 1 first). The same values either way (bitwise the same y; dskip's per-warp partial sums add their
// chunks in another order). H200, bf16, two rounds (session 33; order 0 -> 1, ms):
//   inverse (outer_selftest --bench): N1 = 16 2.652 / 2.653 -> 2.272 / 2.270, N1 = 32 2.138 / 2.134 -> 1.572 /
//     1.578, N1 = 256 2.353 / 2.354 -> 2.276 / 2.258, N1 = 512 2.965 / 2.964 -> 2.977 / 2.953;
//   whole backward (long_bwd_selftest --bench): 64K 16.13 / 16.14 -> 15.10 / 15.09, 256K 16.69 / 16.83 -> 15.13 /
//     15.13, 1M 21.65 / 21.65 -> 20.57 / 20.56, 4M 24.72 / 24.73 -> 24.28 / 24.36.
#ifndef JFF_LONG_TILE_ORDER
#define JFF_LONG_TILE_ORDER 1
#endif

// Shared memory of the inverse's TMA stages (Shape): alignment padding, `stages` stages of `tiles` 16-bit tiles of
// `tile` elements, an mbarrier (16 bytes with padding) per stage; 0 without stages.
constexpr size_t inv_tma_bytes(size_t pad, int tile, int stages, int tiles) {
  return stages > 0 ? pad + size_t(2) * tiles * tile * stages + size_t(16) * stages : 0;
}

template <int P_, int Q_, int TW_, int WARPS_>
struct Shape {
  static constexpr int P = P_, Q = Q_, TW = TW_, WARPS = WARPS_;
  static constexpr int N1 = P * Q, M = N1 / 2;
  static constexpr bool kTwo = Q > 1;
  static constexpr int SLABS = TW / 16;
  static_assert(kTwo ? (P == 16 && (Q == 16 || Q == 32)) : (P == 16 || P == 32), "outer size");
  static_assert(kTwo || SLABS == WARPS, "single level: one slab per warp");
  static constexpr int PB = kTwo ? P : N1;  // size of the complex-to-real stage (inverse)
  // fp32 output buffer pitch (floats): TW/4 + 1 16-byte units, odd, so that the epilogue's 8 lanes of
  // one 16-byte load phase (8 consecutive rows, same column) hit 8 distinct bank groups.
  static constexpr int FP = TW + 4;
  static_assert((FP / 4) % 2 == 1, "odd pitch in 16-byte units");
  // Forward: two planes of N1 rows. Plane R holds X (v, rows q*P + p), then Z1's real part
  // (rows q*P + kp), then OUT's (rows k1 = kp + P*kq); plane I Z1's and OUT's imaginary parts.
  // Each stage overwrites only rows its own unit has read (see the kernel).
  using FwdPlane = std::conditional_t<kTwo && JFF_LONG_FWD_CPLANE != 0, CPlane16, Plane<TW>>;  // R and I
  static constexpr int kPlane = FwdPlane::elems(N1);
  // Staged forward (fwd_stage): u and pre of the next row, N1 x TW 16-bit each, land here by
  // cp.async while this row's DFTs run.
  static constexpr int kFwdTma = fwd_tma(N1);
  static constexpr bool kFwdStage = kFwdTma == 0 && fwd_stage(N1);
  // TMA staging (kFwdTma stages): stage s holds u's tile at 2 s N1 TW and pre's at (2 s + 1) N1 TW elements (dense
  // rows n1 of TW, 128-byte aligned: every offset is a multiple of 256 bytes), then one mbarrier per stage.
  static constexpr int kTmaBox = N1 < 256 ? N1 : 256;
  // With fwd_tma_store, the dense output tile ([2 k1 + plane][TW], N1 TW elements) comes first.
  static constexpr bool kFwdTmaStore = fwd_tma_store(N1);
  static constexpr size_t kFwdTmaBytes =
      kFwdTma > 0 ? size_t(2) * 2 * N1 * TW * kFwdTma + 16 * kFwdTma + (kFwdTmaStore ? size_t(2) * N1 * TW : 0) : 0;
  // Single-level twiddles per thread (forward: 4 per 16 outputs of k1, inverse: 8), when kept in shared memory.
  static constexpr bool kSmemTw = !kTwo && smem_tw(N1);
  static constexpr int kFwdTwPerThread = kTwo ? 1 : 4 * (P / 16), kInvTwPerThread = 8;
  static constexpr size_t kFwdStageBytes = kFwdStage ? size_t(2) * 2 * N1 * TW : kFwdTmaBytes;
  static constexpr size_t kFwdSmem =
      size_t(2) * 2 * kPlane + kFwdStageBytes + (kSmemTw ? size_t(8) * kFwdTwPerThread * WARPS * 32 : 0);
  // Inverse: region 1 = max(EF, OUTF), GB (two planes of N1/2 rows), then the optional parts below.
  static constexpr int kEFRows = kTwo ? (P / 2 + 1) * Q : 0;
  static constexpr size_t kEFBytes = size_t(2) * 2 * Plane<TW>::elems(kEFRows > 0 ? kEFRows : 1);
  static constexpr size_t kOutFBytes = size_t(4) * N1 * FP;
  static constexpr size_t kR1Bytes = ((kEFBytes > kOutFBytes ? kEFBytes : kOutFBytes) + 15) / 16 * 16;
  static constexpr size_t kInvSmem = kR1Bytes + size_t(2) * 2 * Plane<TW>::elems(M);
  // Staged inverse (inv_stage; the two-output instance: inv2_stage): the next row's workspace chunks (two
  // planes of M x TW) and post (N1 x TW; with two outputs post2 too), appended to kInvSmem.
  // TMA staging (kInvTma stages for the single-output instances, kInv2Tma for the two-output one, in place of
  // the cp.async staging): stage s holds NT = 2 (3) tiles of N1 x TW from kInvTmaOff (128-byte aligned): the
  // workspace ([2 k1 + plane][TW]) at NT s N1 TW, post ([n1][TW]) after it (and post2 after that); then one
  // mbarrier per stage.
  static constexpr int kInvTma = inv_tma(N1), kInv2Tma = inv2_tma(N1);
  static constexpr size_t kInvTmaOff = (kInvSmem + 127) / 128 * 128;
  static constexpr bool kInvStage = kInvTma == 0 && inv_stage(N1), kInv2Stage = kInv2Tma == 0 && inv2_stage(N1);
  static constexpr size_t kInvStageBytes =
      kInvStage ? size_t(2) * (2 * M * TW + N1 * TW) : inv_tma_bytes(kInvTmaOff - kInvSmem, N1 * TW, kInvTma, 2);
  static constexpr size_t kInv2StageBytes =
      kInv2Stage ? size_t(2) * (2 * M * TW + 2 * N1 * TW) : inv_tma_bytes(kInvTmaOff - kInvSmem, N1 * TW, kInv2Tma, 3);
  static constexpr size_t kInvTwBytes = kSmemTw ? size_t(8) * kInvTwPerThread * WARPS * 32 : 0;
  // dskip's partials (SkipParts, two-output instance): the row's dy and post_dy chunks (N1 x TW 16-bit each),
  // appended after all of the above.
  static constexpr size_t kSkipBytes = size_t(2) * 2 * N1 * TW;
  // Register epilogue (inv_reg_epi). Two levels: [EF][GB, the workspace tile over its first N1 TW elements][post's
  // tile [q][pp][TW] (32-byte swizzle), y written over it][mbarrier], EF and GB as CPlane16 (no padding: 96 KB ->
  // 50 KB at N1 = 512, four CTAs per SM). One level: [GB][two stages of (workspace tile, post's tile [n1][TW]
  // (128-byte swizzle))][two mbarriers]. Then the twiddles (kSmemTw). TMA destinations 128-byte aligned, the
  // 128-byte swizzle's 1024.
  using RegPlane = std::conditional_t<kTwo, CPlane16, Plane<TW>>;
  static constexpr int kRegStages = kTwo ? 1 : 2;
  static constexpr int kRegSwizzle = kTwo ? 32 : 128;
  static_assert(2 * TW == kRegSwizzle, "post's tile rows are one swizzle span");
  static constexpr size_t kRegGB =
      kTwo ? (size_t(2) * 2 * RegPlane::elems(kEFRows > 0 ? kEFRows : 1) + 127) / 128 * 128 : 0;
  static constexpr size_t kRegStage = (kRegGB + size_t(2) * 2 * RegPlane::elems(M) + 1023) / 1024 * 1024;
  // Tiles per stage: (one level: the workspace's,) then `gates` gate tiles: post's, with a second output post2's,
  // with dskip's partials dy's and post_dy's.
  static constexpr int reg_tiles(int gates) { return (kTwo ? 0 : 1) + gates; }
  static constexpr size_t reg_stage_bytes(int gates) {  // a multiple of 1024
    return size_t(2) * reg_tiles(gates) * N1 * TW;
  }
  static constexpr size_t reg_smem(int gates) {
    return kRegStage + kRegStages * reg_stage_bytes(gates) + 16 * kRegStages;
  }
  static_assert(!kTwo || size_t(2) * N1 * TW <= size_t(2) * 2 * RegPlane::elems(M), "workspace tile inside GB");

  // Chunk i (< N1 TW / 8) of the inverse's epilogue: output row n1, 8-column chunk ch, OUTF row `row` (q PB + pp,
  // n1 = Q pp + q). In 16-byte units mod 8 (the bank group of a 16-byte access), OUTF's chunk sits at
  // 5 pp + 2 ch (two levels: FP = 20 floats) or pp + 2 ch (single level: FP = 68), a dense TW-column tile's at
  // 2 q + ch (two levels: 32-byte rows, Q a multiple of 4) or ch (single level: 128-byte rows).
  static __host__ __device__ void epi_chunk(int i, int* n1, int* ch, int* row) {
    int pp, q;
    if constexpr (JFF_LONG_TILE_ORDER == 0) {  // rows fastest: OUTF conflict-free, the dense tile 8-way
      pp = i % PB;
      const int rest = i / PB;
      q = rest / (TW / 8);
      *ch = rest - q * (TW / 8);
    } else if constexpr (!kTwo) {  // TW = 64: phase h, lane j -> row 8 blk + j, chunk j ^ h
      static_assert(TW == 64 && PB % 8 == 0, "single-level epilogue order");
      const int j = i & 7, h = (i >> 3) & 7;
      pp = 8 * (i >> 6) + j;
      q = 0;
      *ch = j ^ h;  // OUTF: j + 2 (j ^ h) distinct mod 8 for every h; the tile: j ^ h
    } else {  // TW = 16, PB = 16: lanes in pairs (k = j / 2) on one 32-byte row piece, 4 pieces per phase
      static_assert(TW == 16 && PB == 16 && Q % 4 == 0, "two-level epilogue order");
      const int j = i & 7, k = j >> 1, ph = i >> 3;
      const int r = ph & 3, a = (ph >> 2) & 3, qb = ph >> 4;
      // pp from {0, 1, 4, 5} (+ 2, + 8): 5 pp + 2 ch distinct mod 8 over the phase; q distinct mod 4 (rotated by r
      // over the four phases of a warp instruction, so that each of its 4 pp meets each of its 4 q once).
      pp = (a & 1) * 2 + (a >> 1) * 8 + (k & 1) + 4 * (k >> 1);
      q = 4 * qb + ((k + r) & 3);
      *ch = j & 1;
    }
    *n1 = Q * pp + q;
    *row = q * PB + pp;
  }
};

// w_D^e, e reduced mod D first: sincospif of an exact multiple of 2/D.
__device__ __forceinline__ float2 wpow(int64_t e, int64_t D) {
  float s, c;
  sincospif(-2.0f * static_cast<float>(e % D) / static_cast<float>(D), &s, &c);
  return make_float2(c, s);
}

// w_D^e for a power of two D <= 2^24 and 0 <= e < 2^31, from the special-function unit: e reduced mod D
// exactly in integers and centred into [-D/2, D/2), then __sincosf of an angle in [-pi, pi], where its
// absolute error is below 2^-21 (one bf16 / fp16 rounding of the data it multiplies: 2^-9 / 2^-12).
// The tensor-core passes take their twiddles from here: ncu of the 1M passes (H200) had the table
// lookups (TileTw, 8-byte shared loads at data-dependent offsets) 4-way bank-conflicted, the forward
// stalled on them (41% short-scoreboard stalls, L1 83% busy) and the inverse likewise.
struct FastW {
  int mask;
  float scale;  // -2 pi / D
  __device__ __forceinline__ explicit FastW(int64_t D)
      : mask(static_cast<int>(D - 1)), scale(-6.283185307179586f / static_cast<float>(D)) {}
  __device__ __forceinline__ float2 operator()(int e) const {
    int r = e & mask;
    if (r > (mask >> 1)) r -= mask + 1;
    float s, c;
    __sincosf(scale * static_cast<float>(r), &s, &c);
    return make_float2(c, s);
  }
};

// The outer twiddle w_N^(k1 n2) of the CTA's tile, n2 = n2_0 + c: A[k1] = w_N^(k1 n2_0) times
// w_N^(k1 c) = lo[j & 63] * hi[j >> 6] (j = k1 c < M*TW). Three fp32 factors (~3 ulp) from
// M + 64 + M*TW/64 entries instead of an M x TW table (32 KB at N1 = 512, TW = 16).
struct TileTw {
  float2* A;
  float2* lo;
  float2* hi;
  __device__ __forceinline__ void build(float2* base, int M, int TW, int64_t N, int64_t n2_0, int tid, int nth) {
    A = base;
    lo = A + M;
    hi = lo + 64;
    const int nhi = (M * TW + 63) / 64;
    for (int i = tid; i < M + 64 + nhi; i += nth) {
      int64_t e;
      if (i < M) e = twiddle_exp(i, n2_0);
      else if (i < M + 64) e = i - M;
      else e = int64_t{64} * (i - M - 64);
      base[i] = wpow(e, N);
    }
  }
  __device__ __forceinline__ float2 operator()(int k1, int c) const {
    const int j = k1 * c;
    return cmul(A[k1], cmul(lo[j & 63], hi[j >> 6]));
  }
};

// b0, b1 of B tile (ks, nt) (K 16 x N 8) of the matrix f(k, j), for this lane.
template <typename T, typename F>
__device__ __forceinline__ void bfrag(uint32_t& b0, uint32_t& b1, int ks, int nt, int lane, F f) {
  const int j = 8 * nt + (lane >> 2), k = 16 * ks + 2 * (lane & 3);
  b0 = Ops<T>::pack(f(k, j), f(k + 1, j));
  b1 = Ops<T>::pack(f(k + 8, j), f(k + 9, j));
}

// This lane's ldmatrix address inside an A tile: K rows kbase + 8(q>>1) + r, column c0 + 8(q&1)
// (q = lane/8, r = lane%8), so registers 0..3 come back as the A fragment's (m, k) quarters
// (0-7, 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15).
__device__ __forceinline__ int a_k(int kbase, int lane) { return kbase + 8 * ((lane >> 3) >> 1) + (lane & 7); }
__device__ __forceinline__ int a_c(int c0, int lane) { return c0 + 8 * ((lane >> 3) & 1); }

// The transposed store of one C half-tile: (rows c = c0 + 8h + gid, columns j = jb + 2tig, +1)
// packed as 16-bit pairs -> movmatrix -> this lane holds (j = jb + gid; c = c0 + 8h + 2tig, +1),
// a 32-bit store into row j's plane row. All lanes must call it (movmatrix is collective).
template <typename T, int TW, typename PLN = Plane<TW>>
__device__ __forceinline__ void store_t(T* plane, int row, int col, float lo, float hi, bool do_store) {
  const uint32_t x = movmatrix_trans(Ops<T>::pack(lo, hi));
  if (do_store) *reinterpret_cast<uint32_t*>(plane + PLN::at(row, col)) = x;
}

// The start of a pass's TMA staging: thread 0 initialises the stages' mbarriers and issues the CTA's first
// `stages` rows (blockIdx.y, blockIdx.y + gridDim.y, ...) as issue(row, stage).
template <typename Issue>
__device__ __forceinline__ void tma_start(uint64_t* bars, int stages, int64_t nrows, Issue&& issue) {
  if (threadIdx.x == 0)
    for (int st = 0; st < stages; ++st) mbar_init(bars + st);
  __syncthreads();
  if (threadIdx.x == 0)
    for (int st = 0; st < stages; ++st)
      if (blockIdx.y + int64_t(st) * gridDim.y < nrows) issue(blockIdx.y + int64_t(st) * gridDim.y, st);
}

// A row's dense [N1][TW] tile at `tile` out to `map` at column n2_0, signal row `row`, in N1 / box boxes (thread 0;
// every writer of the tile has run tma_store_fence, then a barrier).
template <int N1, int TW, int BOX, typename T>
__device__ __forceinline__ void tma_store_row(const TileMap& map, int64_t n2_0, int64_t row, const T* tile) {
#pragma unroll
  for (int b = 0; b < N1 / BOX; ++b)
    tma_store_3d(map, static_cast<int>(n2_0), b * BOX, static_cast<int>(row), tile + b * BOX * TW);
}

// ---------------------------------------------------------------------------------------------
// Forward.
// ---------------------------------------------------------------------------------------------
// Minimum CTAs per SM asked of ptxas, i.e. a register cap, per outer size. The passes wait on global loads
// (ncu, 1M: long-scoreboard stalls first), so resident warps count. Measured on an H200 (bf16, forward /
// inverse ms, outer_selftest --bench, session 19; no cap -> the cap chosen):
//   N1 = 16 (64K, B=16):  2.75 / 4.57 -> 1.85 / 3.86 (8 / 6 CTAs)   (session-18 kernels: 1.79 / 3.86)
//   N1 = 32 (256K, B=4):  2.14 / 3.45 -> 1.93 / 2.90 (5 / 4)        (1.79 / 3.01)
//   N1 = 256 (1M):        2.31 / 3.16 -> 2.18 / 2.56 (5 / 5)        (2.90 / 3.98)
//   N1 = 512 (4M, H=192): 2.51 / 3.03, no cap (caps of 4-6 lose)    (3.80 / 5.00; CUDA-core 3.03 / 4.30)
// The inverse with a second output (Y2, the backward's du / dpre; long_bwd_selftest --bench, session 20):
//   N1 = 16: 6.87 -> 5.48 ms, N1 = 32: 5.78 -> 4.54 under a cap of 4; 1M neutral (4.22 -> 4.16), 4M loses (4.54 -> 4.87).
// JFF_LONG_FWD_MINB / JFF_LONG_INV_MINB override every size, JFF_LONG_INV2_MINB the Y2 instance (A/B runs).
constexpr int fwd_min_blocks(int N1) {
  return per_size(JFF_LONG_FWD_MINB, N1 == 16 ? 8 : N1 == 32 || N1 == 256 ? 5 : 1);
}
constexpr int inv_min_blocks(int N1, bool y2) {
  return y2 ? per_size(JFF_LONG_INV2_MINB, per_size(JFF_LONG_INV_MINB, N1 <= 32 ? 4 : 1))
            : per_size(JFF_LONG_INV_MINB, N1 == 16 ? 6 : N1 == 32 ? 4 : N1 == 256 ? 5 : 1);
}

// F32IN: the input is fp32 (p.uf, no pre-gate), rounded to T as it is loaded; the workspace is T. The filter
// spectrum's pass over k for bf16 data (kspec_tc in inner_pass.cuh) runs this instead of the fp32 CUDA-core pass.
template <typename T, int P, int Q, int TW, int WARPS, bool F32IN = false>
__global__ void __launch_bounds__(WARPS * 32, fwd_min_blocks(P * Q)) outer_fwd_tc_kernel(const FwdParams p,
                                                                              const __grid_constant__ FwdMaps maps) {
  using S = Shape<P, Q, TW, WARPS>;
  using O = Ops<T>;
  using PL = typename S::FwdPlane;  // planes R and I
  constexpr int N1 = S::N1, M = S::M, NTH = WARPS * 32;
  // Stage-1 B: real input, K = P (n1 or p), N = outputs (k1 < N1/2 single level; all kp two-level).
  constexpr int KS1 = P / 16, NT1 = S::kTwo ? P / 8 : P / 16;
  // Stage-2 B (two levels): complex, K = Q (q), N = kq < Q/2.
  constexpr int KS2 = S::kTwo ? Q / 16 : 1, NT2 = S::kTwo ? Q / 16 : 1;

  JFF_DYN_SMEM(uint4, smraw);
  T* R = reinterpret_cast<T*>(smraw);  // plane R: X -> Z1 real -> OUT real
  T* I = R + S::kPlane;                // plane I: Z1 imaginary -> OUT imaginary

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t N = static_cast<int64_t>(N1) * p.N2;
  const int64_t n2_0 = static_cast<int64_t>(blockIdx.x) * TW;
  const FastW wN(N), w1(N1);
  // w_N^(k1 n2) for the tile's column c (k1 n2 < N/2 <= 2^23: exact in int).
  auto tw = [&](int k1, int c) { return wN(k1 * static_cast<int>(n2_0 + c)); };

  const float s1 = rsqrtf(static_cast<float>(P));
  uint32_t B1r[KS1][NT1][2], B1i[KS1][NT1][2];
#pragma unroll
  for (int ks = 0; ks < KS1; ++ks)
#pragma unroll
    for (int nt = 0; nt < NT1; ++nt) {
      bfrag<T>(B1r[ks][nt][0], B1r[ks][nt][1], ks, nt, lane, [&](int k, int j) { return s1 * wpow(k * j, P).x; });
      bfrag<T>(B1i[ks][nt][0], B1i[ks][nt][1], ks, nt, lane, [&](int k, int j) {
        if (!S::kTwo && j == 0) return (k & 1) ? -s1 : s1;  // column 0 carries C[N1/2] (packed row)
        return s1 * wpow(k * j, P).y;
      });
    }
  const float s2 = rsqrtf(static_cast<float>(Q));
  uint32_t B2r[KS2][NT2][2], B2i[KS2][NT2][2];
#pragma unroll
  for (int ks = 0; ks < KS2; ++ks)
#pragma unroll
    for (int nt = 0; nt < NT2; ++nt) {
      bfrag<T>(B2r[ks][nt][0], B2r[ks][nt][1], ks, nt, lane, [&](int k, int j) { return s2 * wpow(k * j, Q).x; });
      bfrag<T>(B2i[ks][nt][0], B2i[ks][nt][1], ks, nt, lane, [&](int k, int j) { return s2 * wpow(k * j, Q).y; });
    }
  // Single level: a lane's outputs (k1, column) are the same in every row, so are their twiddles: computed
  // once, exactly (sincospif), and kept in registers (smem_tw: in shared memory). (From FastW per row the 64K forward took 2.28-2.42 ms
  // against 1.79 with the old tables: at N1 = 16 the twiddles are a large part of the work.)
  float2 tw1[S::kTwo || S::kSmemTw ? 1 : NT1][2][2];
  float2* TWS = reinterpret_cast<float2*>(reinterpret_cast<unsigned char*>(smraw) + 2 * S::kPlane * sizeof(T) +
                                          S::kFwdStageBytes);  // [value][thread] when S::kSmemTw
  if constexpr (!S::kTwo) {
#pragma unroll
    for (int nt = 0; nt < NT1; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float2 w = wpow(twiddle_exp(8 * nt + 2 * tig + e, n2_0 + 16 * warp + 8 * h + gid), N);
          if constexpr (S::kSmemTw) {
            TWS[((nt * 2 + h) * 2 + e) * NTH + tid] = w;
          } else {
            tw1[nt][h][e] = w;
          }
        }
  }

  constexpr int CH = TW / 8;  // 16-byte chunks per tile row
  // Staged path (16-byte aligned rows only): chunk i = n1 * CH + ch of the next row goes by cp.async into slot
  // i of SU / SP, issued and later read by the same thread (no barrier needed between the two), right after
  // this row's chunks are consumed, so the copies overlap this row's DFTs and store.
  T* SU = I + S::kPlane;
  T* SP = SU + N1 * TW;
  const bool staged = S::kFwdStage && p.vec && !F32IN && kOuterProbeStreams;
  // TMA: thread 0 keeps the CTA's next kFwdTma rows in flight (issue_tma after the barrier that ends a row's load
  // phase, when every thread has read the stage), so the DFTs and stores of a row overlap the loads of the next ones.
  constexpr int NS = S::kFwdTma > 0 ? S::kFwdTma : 1;
  static_assert((2 * S::kPlane * sizeof(T)) % 128 == 0, "TMA stages start 128-byte aligned");
  const bool tma = S::kFwdTma > 0 && maps.on && kOuterProbeStreams;
  T* const SO = I + S::kPlane;  // fwd_tma_store's output tile
  T* const ST = SO + (S::kFwdTmaStore ? N1 * TW : 0);
  uint64_t* const bars = reinterpret_cast<uint64_t*>(ST + 2 * NS * N1 * TW);
  auto issue_tma = [&](int64_t rr, int st) {
    const int row = static_cast<int>(p.row0 + rr);
    // F32IN: the fp32 tile fills the stage (4 bytes per element = u and pre's 2 + 2).
    mbar_expect_tx(bars + st, static_cast<uint32_t>((F32IN || p.pre != nullptr ? 2 : 1) * N1 * TW * sizeof(T)));
#pragma unroll
    for (int b = 0; b < N1 / S::kTmaBox; ++b) {
      T* dst = ST + 2 * st * N1 * TW + (F32IN ? 2 : 1) * b * S::kTmaBox * TW;
      tma_load_3d(dst, maps.u, static_cast<int>(n2_0), b * S::kTmaBox, row, bars + st);
      if (!F32IN && p.pre != nullptr)
        tma_load_3d(dst + N1 * TW, maps.pre, static_cast<int>(n2_0), b * S::kTmaBox, row, bars + st);
    }
  };
  if (tma) tma_start(bars, NS, p.nrows, issue_tma);
  int iter = 0;  // this CTA's row count so far: the TMA stage iter % NS, its phase parity (iter / NS) & 1
  auto issue = [&](int64_t rr) {
    const int64_t b = (p.row0 + rr) * static_cast<int64_t>(p.L);
    for (int i = tid; i < N1 * CH; i += NTH) {
      const int n1 = i / CH, ch = i - n1 * CH;
      const int t = static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch;
      const int bytes = t < p.L ? 16 : 0;  // p.vec: L % 8 == 0, so a chunk is whole or absent
      const int64_t off = bytes ? b + t : b;
      stage16(SU + 8 * i, p.u + off, bytes);
      if (p.pre != nullptr) stage16(SP + 8 * i, p.pre + off, bytes);
    }
    stage_commit();
  };
  if (staged && blockIdx.y < p.nrows) issue(blockIdx.y);
  for (int64_t r = blockIdx.y; r < p.nrows; r += gridDim.y, ++iter) {
    const int64_t base = (p.row0 + r) * static_cast<int64_t>(p.L);
    const uint16_t* ur = F32IN ? nullptr : p.u + base;  // (F32IN reads p.uf below)
    const uint16_t* pr = p.pre != nullptr ? p.pre + base : nullptr;
    if (tma) {
      const int st = iter % NS;
      mbar_wait(bars + st, static_cast<uint32_t>((iter / NS) & 1));
      const T* su = ST + 2 * st * N1 * TW;
      for (int i = tid; i < N1 * CH; i += NTH) {
        const int n1 = i / CH, ch = i - n1 * CH;
        uint4 x;
        if constexpr (F32IN) {
          // JFF_LONG_TILE_ORDER: half h0 first, so that a phase's 8 lanes (32 bytes apart) hit 8 bank groups.
          const int h0 = JFF_LONG_TILE_ORDER != 0 ? (i >> 2) & 1 : 0;
          const float4* f = reinterpret_cast<const float4*>(su) + 2 * i;
          const float4 f0 = f[h0], f1 = f[1 - h0];
          const float4 a = h0 ? f1 : f0, b = h0 ? f0 : f1;
          x = make_uint4(O::pack(a.x, a.y), O::pack(a.z, a.w), O::pack(b.x, b.y), O::pack(b.z, b.w));
        } else {
          x = *reinterpret_cast<const uint4*>(su + 8 * i);
        }
        if (!F32IN && pr != nullptr) {
          const uint4 g = *reinterpret_cast<const uint4*>(su + N1 * TW + 8 * i);
          x = make_uint4(O::mul2(x.x, g.x), O::mul2(x.y, g.y), O::mul2(x.z, g.z), O::mul2(x.w, g.w));
        }
        *reinterpret_cast<uint4*>(R + PL::at((n1 % Q) * P + n1 / Q, 8 * ch)) = x;
      }
    } else if (staged) {
      stage_wait<0>();  // this thread's copies of row r
      for (int i = tid; i < N1 * CH; i += NTH) {
        const int n1 = i / CH, ch = i - n1 * CH;
        uint4 x = *reinterpret_cast<const uint4*>(SU + 8 * i);
        if (pr != nullptr) {
          const uint4 g = *reinterpret_cast<const uint4*>(SP + 8 * i);
          x = make_uint4(O::mul2(x.x, g.x), O::mul2(x.y, g.y), O::mul2(x.z, g.z), O::mul2(x.w, g.w));
        }
        *reinterpret_cast<uint4*>(R + PL::at((n1 % Q) * P + n1 / Q, 8 * ch)) = x;
      }
      if (r + gridDim.y < p.nrows) issue(r + gridDim.y);
    }
    // ---- load v = u*pre (16-bit product, as the fused kernels), zero beyond L. UNR chunks per
    // thread are requested before any is used, so each thread has several loads in flight.
    constexpr int UNR = 4;
    if constexpr (F32IN) {
      const float* kr = p.uf + base;
      for (int i0 = tma ? N1 * CH : tid; kOuterProbeStreams && i0 < N1 * CH; i0 += UNR * NTH) {
        float f[UNR][8];
#pragma unroll
        for (int j = 0; j < UNR; ++j) {
          const int i = i0 + j * NTH, n1 = i / CH, ch = i - n1 * CH;
          const int t = i < N1 * CH ? static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch : p.L;
          load8f(kr, t, p.L, p.vec, f[j]);
        }
#pragma unroll
        for (int j = 0; j < UNR; ++j) {
          const int i = i0 + j * NTH, n1 = i / CH, ch = i - n1 * CH;
          if (i >= N1 * CH) continue;
          const uint4 x = make_uint4(O::pack(f[j][0], f[j][1]), O::pack(f[j][2], f[j][3]), O::pack(f[j][4], f[j][5]),
                                     O::pack(f[j][6], f[j][7]));
          *reinterpret_cast<uint4*>(R + PL::at((n1 % Q) * P + n1 / Q, 8 * ch)) = x;
        }
      }
    }
    for (int i0 = tma || staged || F32IN ? N1 * CH : tid; kOuterProbeStreams && i0 < N1 * CH; i0 += UNR * NTH) {
      uint4 v[UNR], g[UNR];
#pragma unroll
      for (int j = 0; j < UNR; ++j) {
        const int i = i0 + j * NTH, n1 = i / CH, ch = i - n1 * CH;
        const int t = i < N1 * CH ? static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch : p.L;  // t >= L: no load
        v[j] = load8(ur, t, p.L, p.vec);
        if (pr != nullptr) g[j] = load8(pr, t, p.L, p.vec);
      }
#pragma unroll
      for (int j = 0; j < UNR; ++j) {
        const int i = i0 + j * NTH, n1 = i / CH, ch = i - n1 * CH;
        if (i >= N1 * CH) continue;
        uint4 x = v[j];
        if (pr != nullptr)
          x = make_uint4(O::mul2(x.x, g[j].x), O::mul2(x.y, g[j].y), O::mul2(x.z, g[j].z), O::mul2(x.w, g[j].w));
        const int srow = (n1 % Q) * P + n1 / Q;
        *reinterpret_cast<uint4*>(R + PL::at(srow, 8 * ch)) = x;
      }
    }
    __syncthreads();
    if (tma && tid == 0 && r + int64_t(NS) * gridDim.y < p.nrows) issue_tma(r + int64_t(NS) * gridDim.y, iter % NS);

    if constexpr (!kOuterProbeTransforms) {
    } else if constexpr (!S::kTwo) {
      // ---- single level: one slab per warp.
      const int c0 = 16 * warp;
      float Dr[NT1][4], Di[NT1][4];
#pragma unroll
      for (int nt = 0; nt < NT1; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) Dr[nt][e] = Di[nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < KS1; ++ks) {
        uint32_t a[4];
        ldmatrix_x4_trans(a, R + PL::at(a_k(16 * ks, lane), a_c(c0, lane)));
#pragma unroll
        for (int nt = 0; nt < NT1; ++nt) {
          O::mma(Dr[nt], a, B1r[ks][nt][0], B1r[ks][nt][1]);
          O::mma(Di[nt], a, B1i[ks][nt][0], B1i[ks][nt][1]);
        }
      }
      __syncwarp();  // OUT overwrites the warp's own columns of X: all its lanes have read them
#pragma unroll
      for (int nt = 0; nt < NT1; ++nt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          // k1 = 0: the twiddle is exactly 1 (sincospif(0)), so the packed row passes unrotated.
          float2 w0, w1t;
          if constexpr (S::kSmemTw) {
            w0 = TWS[((nt * 2 + h) * 2) * NTH + tid];
            w1t = TWS[((nt * 2 + h) * 2 + 1) * NTH + tid];
          } else {
            w0 = tw1[nt][h][0];
            w1t = tw1[nt][h][1];
          }
          const float2 z0 = cmul(make_float2(Dr[nt][2 * h], Di[nt][2 * h]), w0);
          const float2 z1 = cmul(make_float2(Dr[nt][2 * h + 1], Di[nt][2 * h + 1]), w1t);
          const int row = 8 * nt + gid, col = c0 + 8 * h + 2 * tig;
          store_t<T, TW, PL>(R, row, col, z0.x, z1.x, true);
          store_t<T, TW, PL>(I, row, col, z0.y, z1.y, true);
        }
    } else {
      // ---- stage 1: per (slab, q), real-input P-point DFT over p, times w_N1^(kp q), into Z1
      // rows q*P + kp: the same rows (and columns) the unit read, so in place.
      for (int un = warp; un < S::SLABS * Q; un += WARPS) {
        const int q = un % Q, c0 = 16 * (un / Q);
        float Dr[NT1][4], Di[NT1][4];
#pragma unroll
        for (int nt = 0; nt < NT1; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) Dr[nt][e] = Di[nt][e] = 0.f;
        uint32_t a[4];
        ldmatrix_x4_trans(a, R + PL::at(q * P + a_k(0, lane), a_c(c0, lane)));
#pragma unroll
        for (int nt = 0; nt < NT1; ++nt) {
          O::mma(Dr[nt], a, B1r[0][nt][0], B1r[0][nt][1]);
          O::mma(Di[nt], a, B1i[0][nt][0], B1i[0][nt][1]);
        }
        __syncwarp();
#pragma unroll
        for (int nt = 0; nt < NT1; ++nt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int kp = 8 * nt + 2 * tig;
            const float2 z0 = cmul(make_float2(Dr[nt][2 * h], Di[nt][2 * h]), w1(kp * q));
            const float2 z1 = cmul(make_float2(Dr[nt][2 * h + 1], Di[nt][2 * h + 1]), w1((kp + 1) * q));
            const int row = q * P + 8 * nt + gid, col = c0 + 8 * h + 2 * tig;
            store_t<T, TW, PL>(R, row, col, z0.x, z1.x, true);
            store_t<T, TW, PL>(I, row, col, z0.y, z1.y, true);
          }
      }
      __syncthreads();
      // ---- stage 2: per (slab, kp), complex Q-point DFT over q for kq < Q/2, times w_N^(k1 n2),
      // into OUT row k1 = kp + P kq = Z1 row (q = kq, kp): again only rows the unit has read.
      for (int un = warp; un < S::SLABS * P; un += WARPS) {
        const int kp = un % P, c0 = 16 * (un / P);
        float Dr[NT2][4], Di[NT2][4];
#pragma unroll
        for (int nt = 0; nt < NT2; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) Dr[nt][e] = Di[nt][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KS2; ++ks) {
          uint32_t ar[4], ai[4], nai[4];
          const int off = PL::at(a_k(16 * ks, lane) * P + kp, a_c(c0, lane));
          ldmatrix_x4_trans(ar, R + off);
          ldmatrix_x4_trans(ai, I + off);
#pragma unroll
          for (int i = 0; i < 4; ++i) nai[i] = ai[i] ^ kSignBits;
#pragma unroll
          for (int nt = 0; nt < NT2; ++nt) {
            O::mma(Dr[nt], ar, B2r[ks][nt][0], B2r[ks][nt][1]);
            O::mma(Dr[nt], nai, B2i[ks][nt][0], B2i[ks][nt][1]);
            O::mma(Di[nt], ar, B2i[ks][nt][0], B2i[ks][nt][1]);
            O::mma(Di[nt], ai, B2r[ks][nt][0], B2r[ks][nt][1]);
          }
        }
        // k1 = 0 (kp = 0, kq = 0, tig = 0, element 2h): imaginary part := C[N1/2].
        if (kp == 0 && tig == 0) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int c = c0 + 8 * h + gid;
            float acc = 0.f;
            for (int q = 0; q < Q; ++q) {
              const float v = O::unpack(static_cast<uint32_t>(
                                  *reinterpret_cast<const uint16_t*>(R + PL::at(q * P, c))))
                                  .x;
              acc += (q & 1) ? -v : v;
            }
            Di[0][2 * h] = s2 * acc;
          }
        }
        __syncwarp();  // all lanes' reads of the unit's rows are done before they are overwritten
#pragma unroll
        for (int nt = 0; nt < NT2; ++nt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int c = c0 + 8 * h + gid, kq = 8 * nt + 2 * tig;
            const int k1a = kp + P * kq, k1b = kp + P * (kq + 1);
            const float2 z0 = cmul(make_float2(Dr[nt][2 * h], Di[nt][2 * h]), tw(k1a, c));
            const float2 z1 = cmul(make_float2(Dr[nt][2 * h + 1], Di[nt][2 * h + 1]), tw(k1b, c));
            const int row = kp + P * (8 * nt + gid), col = c0 + 8 * h + 2 * tig;
            store_t<T, TW, PL>(R, row, col, z0.x, z1.x, true);
            store_t<T, TW, PL>(I, row, col, z0.y, z1.y, true);
          }
      }
    }
    const bool tma_out = S::kFwdTmaStore && tma;
    if (tma_out && tid == 0) tma_store_wait_read();  // the previous row's box store has read SO
    __syncthreads();
    // ---- store the M packed rows of this tile: 16-byte chunks, both planes (chunk i is SO's 8 i with tma_out).
    // Compact planes without the box store: a phase's 8 lanes take 4 rows' both halves of one plane instead of 2 rows
    // of both planes (CPlane16 puts the same (row, half) of R and I in one bank group: 2-way), the same 32-byte
    // pieces per lane pair. (Plane<16> keeps the order it was timed with.)
    const bool plane_order = std::is_same_v<PL, CPlane16> && !tma_out;
    for (int i = tid; kOuterProbeStreams && i < M * 2 * CH; i += NTH) {
      int k1 = i / (2 * CH), rem = i - k1 * 2 * CH, pl = rem / CH, ch = rem - pl * CH;
      if (plane_order) {  // (CH = 2)
        k1 = 4 * (i >> 4) + ((i >> 1) & 3);
        pl = (i >> 3) & 1;
        ch = i & 1;
      }
      const uint4 v = *reinterpret_cast<const uint4*>((pl ? I : R) + PL::at(k1, 8 * ch));
      if (tma_out) {
        *reinterpret_cast<uint4*>(SO + 8 * i) = v;
      } else {
        *reinterpret_cast<uint4*>(p.ws + ws_offset(r, k1, pl, n2_0 + 8 * ch, N1, p.N2)) = v;
      }
    }
    if (tma_out) tma_store_fence();
    __syncthreads();  // the next row's load overwrites X / OUT
    if (tma_out && tid == 0) tma_store_row<N1, TW, S::kTmaBox>(maps.ws, n2_0, r, SO);
  }
  if (S::kFwdTmaStore && tma && tid == 0) tma_store_wait_all();
}

// ---------------------------------------------------------------------------------------------
// Inverse.
// ---------------------------------------------------------------------------------------------
// Y2: the second output y2 (p.y2 is set); a separate instance so that the single-output pass keeps its
// registers (the second prefetched gate takes 7-40 more).
// F32OUT: the output is fp32 (p.yf; no post, no skip, no y2): the fp32 result is stored without rounding.
// SKIP (with Y2): dskip's partials (SkipParts); an instance of its own, since that code costs registers even when
// unused (N1 = 256: 164 -> 182, 3 -> 2 CTAs per SM, du / dpre pass 4.26 -> 4.96 ms at 1M, H200).
// REG: the register epilogue (inv_reg_epi; 16-bit outputs (Y2 too, with SKIP too), no explicit skip; TMA maps with
// the gates' swizzled views): Shape::reg_smem(kRegGates) of shared memory.
template <typename T, int P, int Q, int TW, int WARPS, bool Y2 = false, bool F32OUT = false, bool SKIP = false,
          bool REG = false>
__global__ void __launch_bounds__(WARPS * 32, inv_min_blocks(P * Q, Y2))
    outer_inv_tc_kernel(const InvParams p, const SkipParts parts, const __grid_constant__ InvMaps maps) {
  using S = Shape<P, Q, TW, WARPS>;
  using O = Ops<T>;
  using PL = Plane<TW>;
  constexpr int N1 = S::N1, M = S::M, NTH = WARPS * 32, PB = S::PB, FP = S::FP;
  constexpr int KSA = S::kTwo ? Q / 16 : 1, NTA = S::kTwo ? Q / 8 : 1;  // stage A: K = kq, N = q
  constexpr int KSB = PB / 16, NTB = PB / 8;                          // stage B: K = [re | im], N = p
  static_assert(!REG || !F32OUT, "register epilogue: 16-bit outputs");
  constexpr int kRegGates = 1 + (Y2 ? 1 : 0) + (SKIP ? 2 : 0);  // post, post2, dy, post_dy
  using PE = std::conditional_t<REG, typename S::RegPlane, PL>;  // EF's and GB's plane geometry

  JFF_DYN_SMEM(uint4, smraw);
  unsigned char* r1 = reinterpret_cast<unsigned char*>(smraw);
  float* OUTF = reinterpret_cast<float*>(r1);  // rows q*PB + p, pitch FP
  T* EFr = reinterpret_cast<T*>(r1);           // rows kp*Q + kq (two levels; dead before OUTF)
  T* EFi = EFr + PE::elems(S::kEFRows > 0 ? S::kEFRows : 1);
  T* GBr = reinterpret_cast<T*>(r1 + (REG ? S::kRegGB : S::kR1Bytes));  // rows q*(PB/2) + kp (single level: k1)
  T* GBi = GBr + PE::elems(M);
  T* SWr = GBi + PL::elems(M);  // staged path: workspace chunk i of plane 0 at SWr + 8 i, of plane 1 at SWi + 8 i
  T* SWi = SWr + M * TW;
  T* SPo = SWi + M * TW;  // post chunk i of the epilogue's order at SPo + 8 i
  T* SPo2 = SPo + N1 * TW;  // Y2: post2's chunk i at SPo2 + 8 i
  constexpr bool kStage = !REG && (Y2 ? S::kInv2Stage : S::kInvStage);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
  const int64_t N = static_cast<int64_t>(N1) * p.N2;
  const int64_t n2_0 = static_cast<int64_t>(blockIdx.x) * TW;
  const FastW wN(N), w1(N1);
  auto tw = [&](int k1, int c) { return wN(k1 * static_cast<int>(n2_0 + c)); };

  const float sa = rsqrtf(static_cast<float>(Q));
  uint32_t BAr[KSA][NTA][2], BAi[KSA][NTA][2];
  if constexpr (S::kTwo) {
#pragma unroll
    for (int ks = 0; ks < KSA; ++ks)
#pragma unroll
      for (int nt = 0; nt < NTA; ++nt) {  // conj(w_Q^(kq q)) / sqrt(Q)
        bfrag<T>(BAr[ks][nt][0], BAr[ks][nt][1], ks, nt, lane, [&](int k, int j) { return sa * wpow(k * j, Q).x; });
        bfrag<T>(BAi[ks][nt][0], BAi[ks][nt][1], ks, nt, lane, [&](int k, int j) { return -sa * wpow(k * j, Q).y; });
      }
  }
  const float sb = rsqrtf(static_cast<float>(PB));
  uint32_t BB[KSB][NTB][2];
#pragma unroll
  for (int ks = 0; ks < KSB; ++ks)
#pragma unroll
    for (int nt = 0; nt < NTB; ++nt)
      bfrag<T>(BB[ks][nt][0], BB[ks][nt][1], ks, nt, lane, [&](int k, int j) {
        const int kk = k % (PB / 2);
        const bool im = k >= PB / 2;
        if (kk == 0) return im ? ((j & 1) ? -sb : sb) : sb;  // G0 and G_{PB/2} (packed row 0)
        const float2 w = wpow(kk * j, PB);                    // (cos, -sin)(2 pi kk j / PB)
        return im ? 2.f * sb * w.y : 2.f * sb * w.x;          // Re(G w^-1) = Gr cos - Gi sin
      });

  constexpr int CH = TW / 8;
  // Single level: each thread loads at most one chunk per row, always the same (k1, ch) = (tid / CH,
  // tid % CH), so its 8 twiddles are computed once, exactly, and kept like the forward's.
  static_assert(S::kTwo || S::M * CH <= NTH, "single level: one chunk per thread");
  float2 twl[S::kTwo || S::kSmemTw ? 1 : 8];
  // [value][thread] when S::kSmemTw: after the staging slots where this instance has them.
  float2* TWL = reinterpret_cast<float2*>(
      r1 + (REG ? S::reg_smem(kRegGates) : S::kInvSmem + (Y2 ? S::kInv2StageBytes : S::kInvStageBytes)));
  if constexpr (!S::kTwo) {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float2 w = wpow(twiddle_exp(tid / CH, n2_0 + 8 * (tid % CH) + e), N);
      if constexpr (S::kSmemTw) {
        TWL[e * NTH + tid] = w;
      } else {
        twl[e] = w;
      }
    }
  }

  const bool skip_on = p.skip != nullptr;
  // Chunk i of the epilogue (Shape::epi_chunk): output row n1, 8-column chunk ch, OUTF row `row`.
  auto chunk = [&](int i, int* n1, int* ch, int* row) { S::epi_chunk(i, n1, ch, row); };
  // Staged path (16-byte aligned rows): each thread cp.asyncs the chunks it will itself read,
  // into its own slots, in two groups per row: the workspace chunks of row rr (issued once this row's are
  // placed) and its post chunks (issued once this row's epilogue has read them). A group is committed at
  // both points even when empty, so "all but the newest group" is always the one wanted.
  const bool staged = kStage && p.vec && kOuterProbeStreams;
  auto issue_ws = [&](int64_t rr) {
    if (rr < p.nrows)
      for (int i = tid; i < M * CH; i += NTH) {
        const int k1 = i / CH, ch = i - k1 * CH;
        stage16(SWr + 8 * i, p.ws + ws_offset(rr, k1, 0, n2_0 + 8 * ch, N1, p.N2), 16);
        stage16(SWi + 8 * i, p.ws + ws_offset(rr, k1, 1, n2_0 + 8 * ch, N1, p.N2), 16);
      }
    stage_commit();
  };
  // dskip's partials (Y2 with parts.part): the row's dy and post_dy chunks are cp.async'ed into their own slots
  // (16-byte rows) with the row's post chunks (staged path) or at the row's start, so that their latency overlaps
  // the row's DFTs: read after the epilogue instead, they added a dependent global round trip per row (+3 ms on a
  // 4 ms pass at 1M and 64K, H200). Each thread reads back only the chunks it copied (the epilogue's chunks).
  static_assert(!SKIP || Y2, "dskip's partials come with the second output");
  const bool skip_on2 = SKIP && parts.part != nullptr;
  const bool skip_staged = !REG && skip_on2 && p.vec && kOuterProbeStreams;
  T* SDy = reinterpret_cast<T*>(r1 + S::kInvSmem + S::kInv2StageBytes + S::kInvTwBytes);
  T* SDp = SDy + N1 * TW;
  auto issue_skip = [&](int64_t rr) {  // (no commit)
    if (rr < p.nrows) {
      const int64_t b = (p.row0 + rr) * static_cast<int64_t>(p.L);
      for (int i = tid; i < N1 * CH; i += NTH) {
        int n1, ch, row;
        chunk(i, &n1, &ch, &row);
        const int t = static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch;
        const int bytes = t < p.L ? 16 : 0;
        stage16(SDy + 8 * i, parts.dy + (bytes ? b + t : b), bytes);
        if (parts.post != nullptr) stage16(SDp + 8 * i, parts.post + (bytes ? b + t : b), bytes);
      }
    }
  };
  auto issue_post = [&](int64_t rr) {
    if (rr < p.nrows && (p.post != nullptr || Y2)) {
      const int64_t b = (p.row0 + rr) * static_cast<int64_t>(p.L);
      for (int i = tid; i < N1 * CH; i += NTH) {
        int n1, ch, row;
        chunk(i, &n1, &ch, &row);
        const int t = static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch;
        const int bytes = t < p.L ? 16 : 0;  // p.vec: L % 8 == 0, so a chunk is whole or absent
        if (p.post != nullptr) stage16(SPo + 8 * i, p.post + (bytes ? b + t : b), bytes);
        if constexpr (Y2) stage16(SPo2 + 8 * i, p.post2 + (bytes ? b + t : b), bytes);
      }
    }
    if (skip_staged) issue_skip(rr);
    stage_commit();
  };
  if (staged) {
    issue_ws(blockIdx.y);
    issue_post(blockIdx.y);
  }
  // TMA: thread 0 keeps the CTA's next rows in flight, each row's workspace and post (and post2) tiles in one
  // stage, which the row holds until its epilogue has read them (the barrier ending the row).
  // REG: Shape::reg_smem's stages (reg_ws, reg_post; post2's tile after post's).
  constexpr int kTmaStages = REG ? S::kRegStages : Y2 ? S::kInv2Tma : S::kInvTma, NSI = kTmaStages > 0 ? kTmaStages : 1;
  constexpr int NT = Y2 ? 3 : 2;
  const bool tma = REG || (kTmaStages > 0 && maps.on && kOuterProbeStreams);
  // inv_tma_store: the outputs go over the stage's post (post2) tiles, then out by box stores (16-bit outputs).
  const bool tma_out = !F32OUT && inv_tma_store(N1, Y2) && tma && maps.on_store;
  T* const SI = reinterpret_cast<T*>(r1 + S::kInvTmaOff);
  T* const SR = reinterpret_cast<T*>(r1 + S::kRegStage);
  constexpr int kRegTiles = S::reg_tiles(kRegGates);
  auto reg_ws = [&](int st) { return S::kTwo ? GBr : SR + st * kRegTiles * N1 * TW; };  // stage st's workspace tile
  auto reg_post = [&](int st) { return S::kTwo ? SR : SR + st * kRegTiles * N1 * TW + N1 * TW; };  // and post's
  uint64_t* const ibars =
      REG ? reinterpret_cast<uint64_t*>(r1 + S::kRegStage + S::kRegStages * S::reg_stage_bytes(kRegGates))
          : reinterpret_cast<uint64_t*>(SI + NT * NSI * N1 * TW);
  auto issue_tma = [&](int64_t rr, int st) {
    const int tiles = 1 + (p.post != nullptr ? 1 : 0) + (Y2 ? 1 : 0) +
                      (REG && skip_on2 ? 1 + (parts.post != nullptr ? 1 : 0) : 0);
    mbar_expect_tx(ibars + st, static_cast<uint32_t>(tiles * N1 * TW * sizeof(T)));
    const int row = static_cast<int>(p.row0 + rr);
    if constexpr (REG) {
#pragma unroll
      for (int b = 0; b < N1 / S::kTmaBox; ++b)
        tma_load_3d(reg_ws(st) + b * S::kTmaBox * TW, maps.ws, static_cast<int>(n2_0), b * S::kTmaBox,
                    static_cast<int>(rr), ibars + st);
      // Two levels: the gates' views (n2, pp, (L / N2) row + q), one box (TW, P, Q) per row; one level: (n2, n1,
      // row), one box (kTmaBox = N1).
      const int c2 = S::kTwo ? (p.L / static_cast<int>(p.N2)) * row : row;
      if (p.post != nullptr) tma_load_3d(reg_post(st), maps.post, static_cast<int>(n2_0), 0, c2, ibars + st);
      if constexpr (Y2) tma_load_3d(reg_post(st) + N1 * TW, maps.post2, static_cast<int>(n2_0), 0, c2, ibars + st);
      if (SKIP && skip_on2) {
        tma_load_3d(reg_post(st) + 2 * N1 * TW, maps.dy, static_cast<int>(n2_0), 0, c2, ibars + st);
        if (parts.post != nullptr)
          tma_load_3d(reg_post(st) + 3 * N1 * TW, maps.post_dy, static_cast<int>(n2_0), 0, c2, ibars + st);
      }
    } else {
#pragma unroll
      for (int b = 0; b < N1 / S::kTmaBox; ++b) {
        T* dst = SI + NT * st * N1 * TW + b * S::kTmaBox * TW;
        tma_load_3d(dst, maps.ws, static_cast<int>(n2_0), b * S::kTmaBox, static_cast<int>(rr), ibars + st);
        if (p.post != nullptr)
          tma_load_3d(dst + N1 * TW, maps.post, static_cast<int>(n2_0), b * S::kTmaBox, row, ibars + st);
        if constexpr (Y2)
          tma_load_3d(dst + 2 * N1 * TW, maps.post2, static_cast<int>(n2_0), b * S::kTmaBox, row, ibars + st);
      }
    }
  };
  if (tma) tma_start(ibars, NSI, p.nrows, issue_tma);
  int iter = 0;  // rows so far: the TMA stage iter % NSI, its phase parity (iter / NSI) & 1
  for (int64_t r = blockIdx.y; r < p.nrows; r += gridDim.y, ++iter) {
    T* const stw = REG ? reg_ws(iter % NSI) : SI + NT * (iter % NSI) * N1 * TW;  // TMA: this row's workspace tile
    if (skip_staged && !staged) {  // (the staged path issues them with the post chunks)
      issue_skip(r);
      stage_commit();
    }
    // ---- load the M packed rows, conjugate twiddle (fp32), into GB (single) or EF (two levels).
    // One 8-column chunk of stored row k1: conjugate twiddle (fp32), then into GB (single level)
    // or into the expanded tile EF (two levels: the row's own slot and, conjugated, its
    // partner's; the two real rows of Q[0] go to E[0] and E[N1/2]).
    auto place = [&](int k1, int ch, uint4 vr, uint4 vi) {
      float er[8], ei[8];
      unpack8<T>(vr, er);
      unpack8<T>(vi, ei);
      if (k1 > 0) {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          float2 w;
          if constexpr (S::kTwo) {
            w = tw(k1, 8 * ch + e);
          } else if constexpr (S::kSmemTw) {
            w = TWL[e * NTH + tid];  // k1 = tid / CH, ch = tid % CH (see above)
          } else {
            w = twl[e];  // k1 = tid / CH, ch = tid % CH (see above)
          }
          const float a = er[e], b = ei[e];
          er[e] = a * w.x + b * w.y;  // times conj(w)
          ei[e] = b * w.x - a * w.y;
        }
      }
      const uint4 pr = pack8<T>(er), pi = pack8<T>(ei);
      const int col = 8 * ch;
      if constexpr (!S::kTwo) {
        *reinterpret_cast<uint4*>(GBr + PE::at(k1, col)) = pr;
        *reinterpret_cast<uint4*>(GBi + PE::at(k1, col)) = pi;
      } else {
        float nei[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) nei[e] = -ei[e];
        const uint4 npi = pack8<T>(nei);
        const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
        const int kp = k1 % P, kq = k1 / P;
        auto put = [&](int row, uint4 a, uint4 b) {
          *reinterpret_cast<uint4*>(EFr + PE::at(row, col)) = a;
          *reinterpret_cast<uint4*>(EFi + PE::at(row, col)) = b;
        };
        if (k1 == 0) {
          put(0, pr, zero);      // E[0]    = Re Q[0]
          put(Q / 2, pi, zero);  // E[N1/2] = Im Q[0]  (kp = 0, kq = Q/2)
        } else if (kp == 0) {
          put(kq, pr, pi);
          put(Q - kq, pr, npi);
        } else if (kp <= P / 2) {
          put(kp * Q + kq, pr, pi);
          if (kp == P / 2) put(kp * Q + (Q - 1 - kq), pr, npi);
        } else {
          put((P - kp) * Q + (Q - 1 - kq), pr, npi);
        }
      }
    };
    constexpr int UNR = 2;  // chunks per thread in flight (two planes each); 4 was slower (session 19)
    if (tma) {
      mbar_wait(ibars + iter % NSI, static_cast<uint32_t>((iter / NSI) & 1));
      for (int i = tid; i < M * CH; i += NTH) {
        const int k1 = i / CH, ch = i - k1 * CH;
        // JFF_LONG_TILE_ORDER: plane p0 first, so that at TW = 16 a phase's 8 lanes (4 rows k1) hit 8 bank groups.
        const int p0 = JFF_LONG_TILE_ORDER != 0 ? (k1 >> 1) & 1 : 0;
        const uint4 a = *reinterpret_cast<const uint4*>(stw + (2 * k1 + p0) * TW + 8 * ch);
        const uint4 b = *reinterpret_cast<const uint4*>(stw + (2 * k1 + 1 - p0) * TW + 8 * ch);
        place(k1, ch, p0 ? b : a, p0 ? a : b);
      }
    } else if (staged) {
      stage_wait<1>();  // all but the newest group (this row's post): this row's workspace chunks
      for (int i = tid; i < M * CH; i += NTH) {
        const int k1 = i / CH, ch = i - k1 * CH;
        place(k1, ch, *reinterpret_cast<const uint4*>(SWr + 8 * i), *reinterpret_cast<const uint4*>(SWi + 8 * i));
      }
      issue_ws(r + gridDim.y);
    }
    for (int i0 = tma || staged ? M * CH : tid; kOuterProbeStreams && i0 < M * CH; i0 += UNR * NTH) {
      uint4 vr[UNR], vi[UNR];
#pragma unroll
      for (int j = 0; j < UNR; ++j) {
        const int i = i0 + j * NTH, k1 = i / CH, ch = i - k1 * CH;
        if (i < M * CH) {
          vr[j] = __ldg(reinterpret_cast<const uint4*>(p.ws + ws_offset(r, k1, 0, n2_0 + 8 * ch, N1, p.N2)));
          vi[j] = __ldg(reinterpret_cast<const uint4*>(p.ws + ws_offset(r, k1, 1, n2_0 + 8 * ch, N1, p.N2)));
        }
      }
#pragma unroll
      for (int j = 0; j < UNR; ++j) {
        const int i = i0 + j * NTH, k1 = i / CH, ch = i - k1 * CH;
        if (i < M * CH) place(k1, ch, vr[j], vi[j]);
      }
    }
    __syncthreads();

    if constexpr (S::kTwo && kOuterProbeTransforms) {
      // ---- stage A: per (slab, kp <= P/2), inverse Q-point DFT over kq, times conj w_N1^(kp q),
      // into GB rows q*(P/2) + kp (kp = 0 -> real plane of kp' = 0, kp = P/2 -> its imaginary plane).
      for (int un = warp; un < S::SLABS * (P / 2 + 1); un += WARPS) {
        const int kp = un % (P / 2 + 1), c0 = 16 * (un / (P / 2 + 1));
        float Dr[NTA][4], Di[NTA][4];
#pragma unroll
        for (int nt = 0; nt < NTA; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) Dr[nt][e] = Di[nt][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KSA; ++ks) {
          uint32_t ar[4], ai[4], nai[4];
          const int off = PE::at(kp * Q + a_k(16 * ks, lane), a_c(c0, lane));
          ldmatrix_x4_trans(ar, EFr + off);
          ldmatrix_x4_trans(ai, EFi + off);
#pragma unroll
          for (int i = 0; i < 4; ++i) nai[i] = ai[i] ^ kSignBits;
#pragma unroll
          for (int nt = 0; nt < NTA; ++nt) {
            O::mma(Dr[nt], ar, BAr[ks][nt][0], BAr[ks][nt][1]);
            O::mma(Dr[nt], nai, BAi[ks][nt][0], BAi[ks][nt][1]);
            O::mma(Di[nt], ar, BAi[ks][nt][0], BAi[ks][nt][1]);
            O::mma(Di[nt], ai, BAr[ks][nt][0], BAr[ks][nt][1]);
          }
        }
        const bool special = kp == 0 || kp == P / 2;
#pragma unroll
        for (int nt = 0; nt < NTA; ++nt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int q = 8 * nt + 2 * tig;
            // conj(w_N1^(kp q)) = w_N1^(N1 - kp q)
            const float2 z0 = cmul(make_float2(Dr[nt][2 * h], Di[nt][2 * h]), w1(N1 - kp * q));
            const float2 z1 = cmul(make_float2(Dr[nt][2 * h + 1], Di[nt][2 * h + 1]), w1(N1 - kp * (q + 1)));
            const int row = (8 * nt + gid) * (P / 2) + (special ? 0 : kp), col = c0 + 8 * h + 2 * tig;
            store_t<T, TW, PE>(kp == P / 2 ? GBi : GBr, row, col, z0.x, z1.x, true);
            store_t<T, TW, PE>(GBi, row, col, z0.y, z1.y, !special);
          }
      }
      __syncthreads();
    }

    // ---- stage B: per (slab, q), complex-to-real PB-point product over the packed rows, fp32 out.
    double reg_skip = 0.0;  // REG with dskip's partials: this warp's sum over its units' elements
    for (int un = warp; kOuterProbeTransforms && un < S::SLABS * Q; un += WARPS) {
      const int q = un % Q, c0 = 16 * (un / Q);
      float D[NTB][4];
#pragma unroll
      for (int nt = 0; nt < NTB; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) D[nt][e] = 0.f;
#pragma unroll
      for (int ks = 0; ks < KSB; ++ks) {
        const int k = a_k(16 * ks, lane);  // stacked K index: [0, PB/2) real plane, then imaginary
        const T* plane = k >= PB / 2 ? GBi : GBr;
        uint32_t a[4];
        ldmatrix_x4_trans(a, plane + PE::at(q * (PB / 2) + k % (PB / 2), a_c(c0, lane)));
#pragma unroll
        for (int nt = 0; nt < NTB; ++nt) O::mma(D[nt], a, BB[ks][nt][0], BB[ks][nt][1]);
      }
      if constexpr (REG) {
        // y = post * z with one rounding, over post in its swizzled tile: rows pp of this unit's columns c0 .. c0 +
        // 15 (two levels: slab q of the [q][pp][TW] tile, c0 = 0; one level: the [n1][TW] tile, n1 = pp).
        // ldmatrix.trans hands this lane post at D's places (matrix m = 2 nt + h: rows pp = 8 nt + 2 tig (+1) of
        // column c0 + 8 h + gid, packed); movmatrix turns each product pair into row 8 nt + gid, columns c0 + 8 h +
        // 2 tig (+1), a 32-bit store. Then the warp stores what it wrote: lane -> row (lane & 15) + 16 j, 8-column
        // chunk lane >> 4 (whole 32-byte row pieces per instruction). Every shared access conflict-free (the swizzle
        // puts 8 rows' 16-byte pieces in 8 bank groups); the unit's columns are this warp's alone until the row ends.
        // With a second output the same for y2 = post2 * z over post2's tile; with dskip's partials, dy's and
        // post_dy's tiles read the same way give (dy post_dy) (post2 post) per element, summed in double.
        T* const tile0 = reg_post(iter % NSI);  // post's tile; post2's, dy's, post_dy's follow at N1 TW apart
        const uint32_t slab = S::kTwo ? q * (P * TW * 2) : 0;
        auto at = [&](T* tile, int pp, int col) {  // the byte of (pp, col) in a swizzled tile
          return reinterpret_cast<unsigned char*>(tile) +
                 tma_swizzle(smem_addr(tile), slab + pp * (TW * 2) + col * 2, S::kRegSwizzle);
        };
        auto frag = [&](T* tile, uint32_t (&f)[NTB / 2][4]) {  // the tile's values at D's places, packed pairs
#pragma unroll
          for (int i = 0; i < NTB / 2; ++i) {
            const int m = 4 * i + (lane >> 3);
            ldmatrix_x4_trans(f[i], at(tile, 8 * (m >> 1) + (lane & 7), c0 + 8 * (m & 1)));
          }
        };
        auto out = [&](T* tile, const uint32_t (&f)[NTB / 2][4], bool gated, uint16_t* dst) {
#pragma unroll
          for (int nt = 0; nt < NTB; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              float z0 = D[nt][2 * h], z1 = D[nt][2 * h + 1];
              if (gated) {
                const float2 g = O::unpack(f[nt >> 1][2 * (nt & 1) + h]);
                z0 *= g.x;
                z1 *= g.y;
              }
              *reinterpret_cast<uint32_t*>(at(tile, 8 * nt + gid, c0 + 8 * h + 2 * tig)) =
                  movmatrix_trans(O::pack(z0, z1));
            }
          __syncwarp();
#pragma unroll
          for (int j = 0; j < PB / 16; ++j) {
            const int pp = (lane & 15) + 16 * j, col = c0 + 8 * (lane >> 4), n1 = S::kTwo ? Q * pp + q : pp;
            const int t = static_cast<int>(p.N2 * n1 + n2_0) + col;
            const uint4 v = *reinterpret_cast<const uint4*>(at(tile, pp, col));
            if (t < p.L) store8_last(dst + (p.row0 + r) * static_cast<int64_t>(p.L), t, p.L, true, v);
          }
        };
        uint32_t f0[NTB / 2][4] = {}, f2[NTB / 2][4] = {};
        if (p.post != nullptr) frag(tile0, f0);
        if constexpr (Y2) frag(tile0 + N1 * TW, f2);
        if constexpr (SKIP) {
          if (skip_on2) {  // (post is given with dskip's partials: post = pre, post2 = u; zeros past L add nothing)
            uint32_t fd[NTB / 2][4], fq[NTB / 2][4] = {};
            frag(tile0 + 2 * N1 * TW, fd);
            if (parts.post != nullptr) frag(tile0 + 3 * N1 * TW, fq);
#pragma unroll
            for (int i = 0; i < NTB / 2; ++i)
#pragma unroll
              for (int k = 0; k < 4; ++k) {
                float2 g = O::unpack(fd[i][k]);
                if (parts.post != nullptr) {
                  const float2 gq = O::unpack(fq[i][k]);
                  g.x *= gq.x;
                  g.y *= gq.y;
                }
                const float2 u = O::unpack(f2[i][k]), pre = O::unpack(f0[i][k]);
                reg_skip += dskip_term(g.x, u.x, pre.x) + dskip_term(g.y, u.y, pre.y);
              }
          }
        }
        // out() writes over places other lanes' ldmatrix read: order those reads first (racecheck's intra-warp WAR).
        __syncwarp();
        out(tile0, f0, p.post != nullptr, p.y);
        if constexpr (Y2) out(tile0 + N1 * TW, f2, true, p.y2);
      } else {
#pragma unroll
        for (int nt = 0; nt < NTB; ++nt)
#pragma unroll
          for (int h = 0; h < 2; ++h)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int pp = 8 * nt + 2 * tig + e, c = c0 + 8 * h + gid;
              OUTF[(q * PB + pp) * FP + c] = D[nt][2 * h + e];
            }
      }
    }
    if constexpr (REG) {
      if (skip_on2) write_skip_part<WARPS>(reg_skip, parts, p.row0 + r, warp, lane);
      tma_store_fence();  // this row's generic accesses of GB and the tile, before the async proxy refills them
      __syncthreads();
      if (tid == 0 && r + int64_t(NSI) * gridDim.y < p.nrows) issue_tma(r + int64_t(NSI) * gridDim.y, iter % NSI);
      continue;
    }
    __syncthreads();

    // ---- epilogue: y = post * (z + skip * pre * u) for t < L, one rounding.
    const int64_t grow = p.row0 + r;
    const int64_t base = grow * static_cast<int64_t>(p.L);
    float sk = 0.f;
    if (skip_on) {
      const int64_t b = grow / p.H, h = grow - b * p.H;
      sk = p.skip[group_of(b, p.R, p.G) * p.H + h];
    }
    if (staged) stage_wait<1>();  // all but the newest group (the next row's workspace): this row's post
    if (skip_staged && !staged) stage_wait<0>();  // this row's dy and post_dy chunks (the only group)
    double skip_acc = 0.0;
    constexpr int UNRE = 4;  // post chunks per thread in flight
    for (int i0 = tid; kOuterProbeStreams && i0 < N1 * CH; i0 += UNRE * NTH) {
      uint4 pg[UNRE], pg2[UNRE];
#pragma unroll
      for (int j = 0; j < UNRE; ++j) {
        const int i = i0 + j * NTH;
        int n1, ch, row;
        chunk(i, &n1, &ch, &row);
        const int t = i < N1 * CH ? static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch : p.L;  // t >= L: no load
        if (tma) {
          pg[j] = p.post != nullptr && i < N1 * CH ? *reinterpret_cast<const uint4*>(stw + N1 * TW + n1 * TW + 8 * ch)
                                                   : make_uint4(0u, 0u, 0u, 0u);
        } else if (staged) {
          pg[j] = p.post != nullptr && i < N1 * CH ? *reinterpret_cast<const uint4*>(SPo + 8 * i)
                                                   : make_uint4(0u, 0u, 0u, 0u);
        } else {
          pg[j] = p.post != nullptr ? load8(p.post + base, t, p.L, p.vec) : make_uint4(0u, 0u, 0u, 0u);
        }
        if constexpr (Y2) {
          if (tma) {
            pg2[j] = i < N1 * CH ? *reinterpret_cast<const uint4*>(stw + 2 * N1 * TW + n1 * TW + 8 * ch)
                                 : make_uint4(0u, 0u, 0u, 0u);
          } else if (staged) {
            pg2[j] = i < N1 * CH ? *reinterpret_cast<const uint4*>(SPo2 + 8 * i) : make_uint4(0u, 0u, 0u, 0u);
          } else {
            pg2[j] = load8(p.post2 + base, t, p.L, p.vec);
          }
        }
      }
#pragma unroll
      for (int j = 0; j < UNRE; ++j) {
        const int i = i0 + j * NTH;
        int n1, ch, row;
        chunk(i, &n1, &ch, &row);
        const int t = static_cast<int>(p.N2 * n1 + n2_0) + 8 * ch;
        if (i >= N1 * CH || t >= p.L) continue;
        const float* src = OUTF + row * FP + 8 * ch;
        float z[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) z[e] = src[e];
        if (skip_on) {
          float uu[8];
          unpack8<T>(load8(p.u + base, t, p.L, p.vec), uu);
          if (p.pre != nullptr) {
            float gg[8];
            unpack8<T>(load8(p.pre + base, t, p.L, p.vec), gg);
#pragma unroll
            for (int e = 0; e < 8; ++e) uu[e] *= gg[e];
          }
#pragma unroll
          for (int e = 0; e < 8; ++e) z[e] += sk * uu[e];
        }
        if constexpr (Y2) {
          float z2[8];
          unpack8<T>(pg2[j], z2);
          if (skip_on2) {  // dskip: g v = (dy post_dy) (u pre) in fp32 as dskip_rows_kernel forms them, in double
            float g[8], gq[8], pre[8];
            unpack8<T>(skip_staged ? *reinterpret_cast<const uint4*>(SDy + 8 * i)
                                   : load8(parts.dy + base, t, p.L, p.vec),
                       g);
            if (parts.post != nullptr) {
              unpack8<T>(skip_staged ? *reinterpret_cast<const uint4*>(SDp + 8 * i)
                                     : load8(parts.post + base, t, p.L, p.vec),
                         gq);
#pragma unroll
              for (int e = 0; e < 8; ++e) g[e] *= gq[e];
            }
            unpack8<T>(pg[j], pre);
#pragma unroll
            for (int e = 0; e < 8; ++e) skip_acc += dskip_term(g[e], z2[e], pre[e]);
          }
#pragma unroll
          for (int e = 0; e < 8; ++e) z2[e] *= z[e];
          if (tma_out) {  // over the post2 chunk this thread read (pg2[j])
            *reinterpret_cast<uint4*>(stw + 2 * N1 * TW + n1 * TW + 8 * ch) = pack8<T>(z2);
          } else {
            store8_last(p.y2 + base, t, p.L, p.vec, pack8<T>(z2));
          }
        }
        if (p.post != nullptr) {
          float gg[8];
          unpack8<T>(pg[j], gg);
#pragma unroll
          for (int e = 0; e < 8; ++e) z[e] *= gg[e];
        }
        if constexpr (F32OUT) {
          store8f_last(p.yf + base, t, p.L, p.vec, z);
        } else if (tma_out) {  // over the post chunk this thread read (pg[j])
          *reinterpret_cast<uint4*>(stw + N1 * TW + n1 * TW + 8 * ch) = pack8<T>(z);
        } else {
          store8_last(p.y + base, t, p.L, p.vec, pack8<T>(z));
        }
      }
    }
    if (skip_on2) write_skip_part<WARPS>(skip_acc, parts, grow, warp, lane);
    if (staged) issue_post(r + gridDim.y);
    if (tma_out) tma_store_fence();  // the output chunks above, before the box stores read them
    __syncthreads();  // the next row's load overwrites GB / EF
    if (tma_out && tid == 0) {
      tma_store_row<N1, TW, S::kTmaBox>(maps.y, n2_0, grow, stw + N1 * TW);
      if constexpr (Y2) tma_store_row<N1, TW, S::kTmaBox>(maps.y2, n2_0, grow, stw + 2 * N1 * TW);
      tma_store_wait_read();  // before issue_tma refills this stage
    }
    if (tma && tid == 0 && r + int64_t(NSI) * gridDim.y < p.nrows) issue_tma(r + int64_t(NSI) * gridDim.y, iter % NSI);
  }
  if (tma_out && tid == 0) tma_store_wait_all();
}

}  // namespace tc
}  // namespace longconv
}  // namespace jff
