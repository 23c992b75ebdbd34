// The tensor-core backward's float16 kernels, as one translation unit of the
// package build (monarch_bwd.cu compiled for one element type; see JFF_MONARCH_BWD_TYPES there).
#define JFF_MONARCH_BWD_TYPES 2
#include "fftconv/monarch_bwd.cu"
