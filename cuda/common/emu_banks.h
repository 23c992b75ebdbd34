// Shared-memory bank-conflict profiler for the CPU emulation (fftconv_long/emu.h includes this under
// -DJFF_EMU_BANKS; cuda/common/emu_banks_cxx.sh builds an emulated self-test so). No GPU needed: the
// emulated kernels are compiled with GCC's ThreadSanitizer instrumentation (-fsanitize=thread), which calls
// __tsan_readN / __tsan_writeN before every memory access, but linked without the TSan runtime: the hooks below
// take those calls, keep the ones that land in the emulated block's shared memory (g_smem) and note, per fiber
// (CUDA thread), the access's code address (the hook's return address), offset, size and direction.
//
// A warp instruction is rebuilt from its lanes: the n-th access from one code address by each lane of a warp since
// that lane's last barrier (any barrier: __syncthreads, __syncwarp, the halves of every warp collective) is one
// instruction, as SIMT execution issues it; lanes that did not reach it were inactive. Its cost in shared-memory
// wavefronts follows the bank rules of sm_80 / sm_90 (32 banks of 4 bytes): 16-byte accesses (and ldmatrix, one
// 16-byte row address per lane) go in 4 phases of 8 lanes, 8-byte ones in 2 of 16, narrower ones in one of 32; a
// phase takes as many wavefronts as the most distinct 4-byte words any one bank holds (one word read by several
// lanes is a broadcast). The ideal is the fewest wavefronts the same words could take (per phase, words / 32
// rounded up). Per code address the report sums instructions, wavefronts and the ideal.
//
// What it cannot see: the host compiler's accesses are not nvcc's (GCC splits vectors into 4-byte pieces, which
// record() joins again, and it cannot tell those from separate 4-byte accesses that only happen to be adjacent at
// run time, e.g. two float2 stores that GCC split), TMA and cp.async traffic (copies the emulation does with memcpy,
// not lane accesses), and timing. A line with many excess wavefronts is a lead to read, not a measurement.
//
// At exit the per-address totals go to $JFF_EMU_BANKS_OUT (default emu_banks.tsv): offset of the code address in
// the binary (for addr2line), size, r/w, instructions, wavefronts, ideal. benchmarks/emu_banks_report.py turns
// that into source lines, worst first.
#pragma once

#ifndef JFF_EMU_BANKS
#error "emu_banks.h is for -DJFF_EMU_BANKS emulation builds only"
#endif

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>
#include <vector>

// Not instrumented, not inlined into instrumented code.
#define JFF_EMU_NOSAN __attribute__((no_sanitize_thread, noinline))

namespace jff_emu {
namespace banks {

struct Access {
  uint32_t epoch;  // the lane's barrier count at the access
  uint32_t occurrence;  // how many accesses from this code address the lane made before it in that epoch
  const void* pc;
  uint32_t offset;  // bytes into shared memory
  uint8_t size;
  uint8_t write;
  uint8_t lane;
};

// A lane's run of contiguous accesses inside one 16-byte-aligned block, not yet counted (see record).
struct Run {
  uint32_t offset;
  uint32_t size;
  bool write;
  const void* pc;  // the first access's
};

struct Totals {
  uint64_t instructions = 0, wavefronts = 0, ideal = 0;
  int size = 0;
  bool write = false;
};

struct State {
  const unsigned char* smem = nullptr;
  size_t smem_bytes = 0;
  const int* cur = nullptr;  // the running fiber (emu.h's g_cur)
  std::vector<uint32_t> epoch;  // per fiber
  std::vector<std::unordered_map<const void*, uint32_t>> occurrences;  // per fiber, this epoch
  std::vector<std::vector<Run>> runs;  // per fiber: open runs, oldest first
  std::vector<std::vector<Access>> warps;  // per warp of the running block
  std::map<const void*, Totals> totals;  // per code address
  bool on = false;
  ~State();
};
inline State g_state;

// Open runs per lane: enough for an unrolled loop whose split vectors GCC interleaves (the .x of many values
// first, then their .y).
constexpr size_t kOpenRuns = 32;

// Fiber f's run as the accesses nvcc would issue: aligned pieces of 16, 8, 4, 2 or 1 bytes.
JFF_EMU_NOSAN inline void count_run(int f, const Run& r) {
  State& s = g_state;
  uint32_t off = r.offset, left = r.size;
  while (left > 0) {
    uint32_t piece = 16;
    while (piece > left || off % piece != 0) piece /= 2;
    const uint32_t occ = s.occurrences[f][r.pc]++;
    s.warps[f >> 5].push_back(Access{s.epoch[f], occ, r.pc, off, static_cast<uint8_t>(piece),
                                     static_cast<uint8_t>(r.write), static_cast<uint8_t>(f & 31)});
    off += piece;
    left -= piece;
  }
}
JFF_EMU_NOSAN inline void close_runs(int f) {
  for (const Run& r : g_state.runs[f]) count_run(f, r);
  g_state.runs[f].clear();
}

// One access of the running fiber. GCC splits what nvcc issues as one vector access (a float4 or uint4 read, a
// float2's two halves, an unrolled loop over 8 floats) into 4-byte ones, often interleaved with other arrays'
// (real and imaginary planes) or in another order; so a lane's accesses of 4 bytes or less are first joined into
// runs: one next to an open run of the same direction (after or before it) inside the same 16-byte-aligned block
// extends it (up to kOpenRuns open at once), and a run is counted as the aligned vector accesses that cover it when
// it fills its 16 bytes, when one more run would open, or at the lane's next barrier. This assumes nvcc vectorizes
// whatever is contiguous and aligned. Accesses of 8 bytes or more count as they are: joining them would also join
// an unrolled loop's separate float2 stores that only happen to be adjacent at run time (the shared FFT's
// swizzled passes), which nvcc cannot vectorize.
JFF_EMU_NOSAN inline void record(const void* p, unsigned size, bool write, const void* pc) {
  State& s = g_state;
  if (!s.on) return;
  const uintptr_t off = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(s.smem);
  if (off >= s.smem_bytes) return;
  const int f = *s.cur;
  std::vector<Run>& runs = s.runs[f];
  const uint32_t o = static_cast<uint32_t>(off);
  if (size >= 8 || o % 16 + size > 16) {  // a float2 or wider (or a piece across blocks): counted as it is
    count_run(f, Run{o, size, write, pc});
    return;
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    Run& r = runs[i];
    const bool after = r.offset + r.size == o, before = o + size == r.offset;  // (GCC may read .y before .x)
    const uint32_t lo = std::min(r.offset, o), hi = std::max(r.offset + r.size, o + size);
    if (r.write == write && (after || before) && lo / 16 == (hi - 1) / 16) {
      if (before) r.offset = o;
      r.size += size;
      if (r.size == 16) {
        count_run(f, r);
        runs.erase(runs.begin() + static_cast<std::ptrdiff_t>(i));
      }
      return;
    }
  }
  if (runs.size() == kOpenRuns) {
    count_run(f, runs.front());
    runs.erase(runs.begin());
  }
  runs.push_back(Run{o, size, write, pc});
}

// A fiber passes a barrier: its next accesses belong to new instructions.
JFF_EMU_NOSAN inline void on_barrier() {
  State& s = g_state;
  if (!s.on) return;
  close_runs(*s.cur);
  ++s.epoch[*s.cur];
  s.occurrences[*s.cur].clear();
}

JFF_EMU_NOSAN inline void on_block_start(const unsigned char* smem, size_t smem_bytes, const int* cur, int nth) {
  State& s = g_state;
  s.smem = smem;
  s.smem_bytes = smem_bytes;
  s.cur = cur;
  s.epoch.assign(nth, 0);
  s.occurrences.assign(nth, {});
  s.runs.assign(nth, {});
  s.warps.assign(nth / 32, {});
  s.on = true;
}

// Wavefronts of one warp instruction: `a` holds its lanes' accesses (one per active lane).
JFF_EMU_NOSAN inline void cost(const Access* a, size_t n, uint64_t* waves, uint64_t* ideal) {
  const int size = a[0].size, lanes_per_phase = size >= 16 ? 8 : (size == 8 ? 16 : 32);
  for (int phase = 0; phase < 32 / lanes_per_phase; ++phase) {
    std::vector<uint32_t> words;
    for (size_t i = 0; i < n; ++i) {
      if (a[i].lane / lanes_per_phase != phase) continue;
      for (uint32_t w = a[i].offset / 4; w <= (a[i].offset + a[i].size - 1) / 4; ++w) words.push_back(w);
    }
    if (words.empty()) continue;
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    uint32_t per_bank[32] = {};
    uint32_t worst = 0;
    for (uint32_t w : words) worst = std::max(worst, ++per_bank[w % 32]);
    *waves += worst;
    *ideal += (words.size() + 31) / 32;
  }
}

// JFF_EMU_BANKS_DUMP=OFFSET (an offset from the TSV, hex): print the lanes of that code address's first
// instructions to stderr (offset:size per lane), to see why a line costs what it does.
JFF_EMU_NOSAN inline bool dump_this(const void* pc) {
  static const char* want = std::getenv("JFF_EMU_BANKS_DUMP");
  if (want == nullptr) return false;
  Dl_info info{};
  const uintptr_t base = dladdr(pc, &info) != 0 ? reinterpret_cast<uintptr_t>(info.dli_fbase) : 0;
  return std::strtoul(want, nullptr, 16) == reinterpret_cast<uintptr_t>(pc) - base - 1;
}

JFF_EMU_NOSAN inline void on_block_end() {
  State& s = g_state;
  for (size_t f = 0; f < s.runs.size(); ++f) close_runs(static_cast<int>(f));
  s.on = false;
  for (auto& w : s.warps) {
    std::sort(w.begin(), w.end(), [](const Access& x, const Access& y) {
      if (x.epoch != y.epoch) return x.epoch < y.epoch;
      if (x.pc != y.pc) return x.pc < y.pc;
      if (x.occurrence != y.occurrence) return x.occurrence < y.occurrence;
      return x.lane < y.lane;
    });
    for (size_t i = 0; i < w.size();) {
      size_t e = i + 1;
      while (e < w.size() && w[e].epoch == w[i].epoch && w[e].pc == w[i].pc && w[e].occurrence == w[i].occurrence) ++e;
      Totals& t = s.totals[w[i].pc];
      if (t.instructions < 4 && dump_this(w[i].pc)) {  // JFF_EMU_BANKS_DUMP: the first instructions' lanes
        std::fprintf(stderr, "emu_banks: instruction at %p:", w[i].pc);
        for (size_t k = i; k < e; ++k) std::fprintf(stderr, " %d:%u+%u", w[k].lane, w[k].offset, w[k].size);
        std::fprintf(stderr, "\n");
      }
      ++t.instructions;
      t.size = w[i].size;
      t.write = w[i].write != 0;
      cost(&w[i], e - i, &t.wavefronts, &t.ideal);
      i = e;
    }
    w.clear();
  }
}

JFF_EMU_NOSAN inline State::~State() {
  if (totals.empty()) return;
  const char* path = std::getenv("JFF_EMU_BANKS_OUT");
  FILE* f = std::fopen(path != nullptr ? path : "emu_banks.tsv", "w");
  if (f == nullptr) return;
  std::fprintf(f, "offset\tsize\trw\tinstructions\twavefronts\tideal\n");
  for (const auto& [pc, t] : totals) {
    Dl_info info{};
    const uintptr_t base = dladdr(pc, &info) != 0 ? reinterpret_cast<uintptr_t>(info.dli_fbase) : 0;
    // The return address follows the call: one byte back lies inside the accessing line's code.
    const unsigned long offset = static_cast<unsigned long>(reinterpret_cast<uintptr_t>(pc) - base - 1);
    std::fprintf(f, "0x%lx\t%d\t%c\t%llu\t%llu\t%llu\n", offset, t.size, t.write ? 'w' : 'r',
                 static_cast<unsigned long long>(t.instructions),
                 static_cast<unsigned long long>(t.wavefronts), static_cast<unsigned long long>(t.ideal));
  }
  std::fclose(f);
}

}  // namespace banks
}  // namespace jff_emu

// The instrumentation's entry points (GCC's -fsanitize=thread ABI), without the TSan runtime.
#define JFF_BANKS_HOOK(name, size, write)                                                   \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) void name(void* p) {                        \
    jff_emu::banks::record(p, size, write, __builtin_return_address(0));                     \
  }
JFF_BANKS_HOOK(__tsan_read1, 1, false)
JFF_BANKS_HOOK(__tsan_read2, 2, false)
JFF_BANKS_HOOK(__tsan_read4, 4, false)
JFF_BANKS_HOOK(__tsan_read8, 8, false)
JFF_BANKS_HOOK(__tsan_read16, 16, false)
JFF_BANKS_HOOK(__tsan_write1, 1, true)
JFF_BANKS_HOOK(__tsan_write2, 2, true)
JFF_BANKS_HOOK(__tsan_write4, 4, true)
JFF_BANKS_HOOK(__tsan_write8, 8, true)
JFF_BANKS_HOOK(__tsan_write16, 16, true)
JFF_BANKS_HOOK(__tsan_unaligned_read2, 2, false)
JFF_BANKS_HOOK(__tsan_unaligned_read4, 4, false)
JFF_BANKS_HOOK(__tsan_unaligned_read8, 8, false)
JFF_BANKS_HOOK(__tsan_unaligned_read16, 16, false)
JFF_BANKS_HOOK(__tsan_unaligned_write2, 2, true)
JFF_BANKS_HOOK(__tsan_unaligned_write4, 4, true)
JFF_BANKS_HOOK(__tsan_unaligned_write8, 8, true)
JFF_BANKS_HOOK(__tsan_unaligned_write16, 16, true)
JFF_BANKS_HOOK(__tsan_volatile_read1, 1, false)
JFF_BANKS_HOOK(__tsan_volatile_read2, 2, false)
JFF_BANKS_HOOK(__tsan_volatile_read4, 4, false)
JFF_BANKS_HOOK(__tsan_volatile_read8, 8, false)
JFF_BANKS_HOOK(__tsan_volatile_read16, 16, false)
JFF_BANKS_HOOK(__tsan_volatile_write1, 1, true)
JFF_BANKS_HOOK(__tsan_volatile_write2, 2, true)
JFF_BANKS_HOOK(__tsan_volatile_write4, 4, true)
JFF_BANKS_HOOK(__tsan_volatile_write8, 8, true)
JFF_BANKS_HOOK(__tsan_volatile_write16, 16, true)
#undef JFF_BANKS_HOOK
// A range (an aggregate copy): 16-byte pieces, each its own instruction at the same code address.
#define JFF_BANKS_RANGE(name, write)                                                        \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) void name(void* p, unsigned long n) {       \
    for (unsigned long i = 0; i < n; i += 16)                                                \
      jff_emu::banks::record(static_cast<char*>(p) + i, n - i < 16 ? static_cast<unsigned>(n - i) : 16, write, \
                             __builtin_return_address(0));                                   \
  }
JFF_BANKS_RANGE(__tsan_read_range, false)
JFF_BANKS_RANGE(__tsan_write_range, true)
#undef JFF_BANKS_RANGE
// Atomics (host code of the self-tests: std::atomic): done plainly, the fibers never run in parallel.
#define JFF_BANKS_ATOMICS(bits, type)                                                                           \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) type __tsan_atomic##bits##_load(const volatile type* a, int) {   \
    return *a;                                                                                                 \
  }                                                                                                            \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_atomic##bits##_store(volatile type* a, type v, int) { \
    *a = v;                                                                                                    \
  }                                                                                                            \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) type __tsan_atomic##bits##_exchange(volatile type* a, type v, int) { \
    const type old = *a;                                                                                       \
    *a = v;                                                                                                    \
    return old;                                                                                                \
  }                                                                                                            \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) type __tsan_atomic##bits##_fetch_add(volatile type* a, type v, int) { \
    const type old = *a;                                                                                       \
    *a = static_cast<type>(old + v);                                                                           \
    return old;                                                                                                \
  }                                                                                                            \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) type __tsan_atomic##bits##_fetch_sub(volatile type* a, type v, int) { \
    const type old = *a;                                                                                       \
    *a = static_cast<type>(old - v);                                                                           \
    return old;                                                                                                \
  }                                                                                                            \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) int __tsan_atomic##bits##_compare_exchange_strong(            \
      volatile type* a, type* expected, type v, int, int) {                                                    \
    if (*a == *expected) {                                                                                     \
      *a = v;                                                                                                  \
      return 1;                                                                                                \
    }                                                                                                          \
    *expected = *a;                                                                                            \
    return 0;                                                                                                  \
  }                                                                                                            \
  extern "C" JFF_EMU_NOSAN __attribute__((used)) int __tsan_atomic##bits##_compare_exchange_weak(              \
      volatile type* a, type* expected, type v, int m, int f) {                                                \
    return __tsan_atomic##bits##_compare_exchange_strong(a, expected, v, m, f);                                \
  }
JFF_BANKS_ATOMICS(8, uint8_t)
JFF_BANKS_ATOMICS(16, uint16_t)
JFF_BANKS_ATOMICS(32, uint32_t)
JFF_BANKS_ATOMICS(64, uint64_t)
#undef JFF_BANKS_ATOMICS
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_atomic_thread_fence(int) {}
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_atomic_signal_fence(int) {}
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_init() {}
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_func_entry(void*) {}
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_func_exit() {}
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_vptr_update(void*, void*) {}
extern "C" JFF_EMU_NOSAN __attribute__((used)) void __tsan_vptr_read(void*) {}
