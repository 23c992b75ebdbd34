// The CPU-emulation build of monarch_selftest.cu + monarch_fwd.cu as one translation unit
// (built by monarch_emu_build.sh, which generates the *_host files: the sources with their
// `<<<...>>>` launches and `extern __shared__` declarations rewritten for a host compiler;
// see there and monarch_emu.h). Run: <binary> --small [--only SUBSTR].
#include "fftconv/monarch.h"  // before the element-type macros below, which are for the kernels only

#include "fftconv/monarch_emu.h"  // emulation, and monarch_core.cuh on the stand-in element types

// The kernels run on the 16-bit stand-ins for which the core's Ops are emulated (emu_core.h);
// monarch_fwd.cu names the element types only as template arguments of its launchers.
#define __nv_bfloat16 ::jff_emu::EmuBF16
#define __half ::jff_emu::EmuF16
#include "monarch_fwd_host.cu"  // generated from monarch_fwd.cu
#undef __nv_bfloat16
#undef __half
#include "fftconv_long/emu_core_end.h"

#define main monarch_selftest_main
#include "monarch_selftest_host.cu"  // generated from monarch_selftest.cu
#undef main

int main(int argc, char** argv) { return jff_emu::small_only_main(argc, argv, monarch_selftest_main); }
