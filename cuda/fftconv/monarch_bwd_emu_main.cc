// The CPU-emulation build of monarch_bwd_selftest.cu + monarch_bwd.cu as one translation unit
// (built by `monarch_emu_build.sh --bwd`, which generates the *_host files: the sources with
// their `<<<...>>>` launches and `extern __shared__` declarations rewritten for a host compiler;
// see there and monarch_emu.h). Run: <binary> --small [--only SUBSTR].
#include "fftconv/monarch_bwd.h"  // before the element-type macros below, which are for the kernels only

#include "fftconv/monarch_emu.h"  // emulation, and monarch_core.cuh on the stand-in element types

// The kernels run on the 16-bit stand-ins for which the core's Ops are emulated (emu_core.h);
// monarch_bwd.cu names the element types only as template arguments of its launchers.
#define __nv_bfloat16 ::jff_emu::EmuBF16
#define __half ::jff_emu::EmuF16
#include "monarch_bwd_host.cu"  // generated from monarch_bwd.cu
#undef __nv_bfloat16
#undef __half
#include "fftconv_long/emu_core_end.h"

#define main monarch_bwd_selftest_main
#include "monarch_bwd_selftest_host.cu"  // generated from monarch_bwd_selftest.cu
#undef main

int main(int argc, char** argv) { return jff_emu::small_only_main(argc, argv, monarch_bwd_selftest_main); }
