// Self-test of the emulation's shared-memory bank profiler (common/emu_banks.h): small kernels with known bank
// behaviour, each launched alone, and the wavefronts the profiler counts for them against the sm_80 / sm_90 rules.
//   CXX="bash cuda/common/emu_banks_cxx.sh" sh cuda/fftconv_long/emu_build.sh /tmp/emu_banks_test \
//       cuda/common/emu_banks_test.cu && /tmp/emu_banks_test
// (make emulate runs it.)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "fftconv_long/emu.h"

#ifndef JFF_EMU_BANKS
#error "build with cuda/common/emu_banks_cxx.sh"
#endif

// Where every kernel puts what it read, so that no access is optimised away (external linkage: stores to a
// file-local array nobody reads would be dropped, and the reads with them).
float g_sink[64 * 32];

namespace {

int g_fail = 0, g_cases = 0;

__global__ void float4_rows(int stride_bytes) {  // lane l: one 16-byte read at l * stride
  JFF_DYN_SMEM(unsigned char, sm);
  const int l = threadIdx.x;
  const float4 v = *reinterpret_cast<const float4*>(sm + l * stride_bytes);
  g_sink[l] = v.x + v.y + v.z + v.w;
}
__global__ void words(int stride_words) {  // lane l: one 4-byte read at word l * stride (0: one word for all)
  JFF_DYN_SMEM(float, sm);
  const int l = threadIdx.x;
  g_sink[l] = sm[l * stride_words];
}
__global__ void float2_writes(int stride_bytes) {  // lane l: one 8-byte write at l * stride
  JFF_DYN_SMEM(unsigned char, sm);
  const int l = threadIdx.x;
  *reinterpret_cast<float2*>(sm + l * stride_bytes) = make_float2(float(l), 1.f);
}
__global__ void components(int) {  // lane l: the four floats of 16-byte chunk l, one by one (GCC's split float4)
  JFF_DYN_SMEM(float, sm);
  const int l = threadIdx.x;
  volatile float* p = sm + 4 * l;
  g_sink[l] = p[0] + p[1] + p[2] + p[3];
}
__global__ void components_reversed(int) {  // lane l: the two floats of 8-byte pair l, the second one first
  JFF_DYN_SMEM(float, sm);
  const int l = threadIdx.x;
  volatile float* p = sm + 2 * l;
  const float b = p[1];
  g_sink[l] = b + p[0];
}
__global__ void swapped_pairs(int) {  // lane l: two 8-byte stores into its 16-byte chunk, in an order set by l
  JFF_DYN_SMEM(uint64_t, sm);
  const int l = threadIdx.x, first = l & 1;
  sm[(2 * l) ^ first] = uint64_t(l);
  sm[(2 * l + 1) ^ first] = uint64_t(l) << 32;
}
__global__ void half_warp(int stride_bytes) {  // lanes 0-15 only (divergence): one 16-byte read each
  JFF_DYN_SMEM(unsigned char, sm);
  const int l = threadIdx.x;
  if (l < 16) {
    const float4 v = *reinterpret_cast<const float4*>(sm + l * stride_bytes);
    g_sink[l] = v.x + v.y + v.z + v.w;
  }
}
__global__ void barrier_split(int) {  // the same line twice, a barrier between: two instructions, not one
  JFF_DYN_SMEM(float, sm);
  const int l = threadIdx.x;
  float acc = 0.f;
  for (int i = 0; i < 2; ++i) {
    acc += sm[32 * l + i];  // 32 words apart: 32-way
    __syncthreads();
  }
  g_sink[l] = acc;
}
__global__ void ldmatrix_rows(int stride_bytes) {  // ldmatrix.x4: lane l gives row l at l * stride
  JFF_DYN_SMEM(unsigned char, sm);
  const int l = threadIdx.x;
  uint32_t r[4];
  jff_emu::ldmatrix_x4(r, sm + l * stride_bytes, false);
  g_sink[l] = float(r[0] & 1u);
}

void expect(const char* what, void (*kernel)(int), int arg, int threads, uint64_t waves, uint64_t ideal) {
  jff_emu::banks::g_state.totals.clear();
  JFF_LAUNCH(kernel, dim3(1), dim3(threads), 32 * 1024, nullptr, arg);
  uint64_t w = 0, id = 0, n = 0;
  for (const auto& [pc, t] : jff_emu::banks::g_state.totals) {
    w += t.wavefronts;
    id += t.ideal;
    n += t.instructions;
  }
  const bool ok = w == waves && id == ideal;
  ++g_cases;
  g_fail += !ok;
  std::printf("%s %-58s wavefronts %3llu (expected %3llu), ideal %3llu (expected %3llu), instructions %llu\n",
              ok ? "PASS" : "FAIL", what, static_cast<unsigned long long>(w), static_cast<unsigned long long>(waves),
              static_cast<unsigned long long>(id), static_cast<unsigned long long>(ideal),
              static_cast<unsigned long long>(n));
}

}  // namespace

int main() {
  // 16-byte accesses: 4 phases of 8 lanes; contiguous is 4 wavefronts, 128 bytes apart all 8 lanes of a phase share
  // one bank group (8 each), 32 bytes apart two phases' worth of words meet in 4 groups (2 each).
  expect("16-byte reads, contiguous", float4_rows, 16, 32, 4, 4);
  expect("16-byte reads, 128 bytes apart (8-way)", float4_rows, 128, 32, 32, 4);
  expect("16-byte reads, 32 bytes apart (2-way)", float4_rows, 32, 32, 8, 4);
  // 4-byte: one phase of 32 lanes.
  expect("4-byte reads, contiguous", words, 1, 32, 1, 1);
  expect("4-byte reads, 2 words apart (2-way)", words, 2, 32, 2, 1);
  expect("4-byte reads, 32 words apart (32-way)", words, 32, 32, 32, 1);
  expect("4-byte reads of one word (broadcast)", words, 0, 32, 1, 1);
  expect("4-byte reads, two warps, contiguous", words, 1, 64, 2, 2);
  // 8-byte: 2 phases of 16 lanes.
  expect("8-byte writes, contiguous", float2_writes, 8, 32, 2, 2);
  expect("8-byte writes, 16 bytes apart (2-way)", float2_writes, 16, 32, 4, 2);
  // Joined runs: four 4-byte reads of one aligned chunk count as one 16-byte read.
  expect("a float4's components one by one, contiguous chunks", components, 0, 32, 4, 4);
  expect("a float2's components, the second first", components_reversed, 0, 32, 2, 2);
  // Two 8-byte stores that only happen to fill one chunk at run time stay two instructions (nvcc cannot know):
  // each a half-warp of 8-byte stores 16 bytes apart, 2-way.
  expect("two 8-byte stores, adjacent only at run time", swapped_pairs, 0, 32, 8, 4);
  // Inactive lanes take no part: 16 lanes of 16-byte reads are 2 phases.
  expect("16-byte reads, lanes 0-15 only", half_warp, 16, 32, 2, 2);
  expect("16-byte reads, lanes 0-15 only, 128 bytes apart", half_warp, 128, 32, 16, 2);
  // A barrier ends an instruction: two 32-way reads, not one 64-word access.
  expect("one line on both sides of a barrier (32-way twice)", barrier_split, 0, 32, 64, 2);
  // ldmatrix: one 16-byte row address per lane, 4 phases.
  expect("ldmatrix.x4, contiguous rows", ldmatrix_rows, 16, 32, 4, 4);
  expect("ldmatrix.x4, rows 128 bytes apart (8-way)", ldmatrix_rows, 128, 32, 32, 4);
  std::printf(g_fail ? "FAILED %d of %d\n" : "ALL PASS (%d of %d)\n", g_fail ? g_fail : g_cases, g_cases);
  return g_fail ? 1 : 0;
}
