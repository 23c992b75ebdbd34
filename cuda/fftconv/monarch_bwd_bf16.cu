// The tensor-core backward's bfloat16 kernels and its host-side entry points, as one translation unit of the
// package build (monarch_bwd.cu compiled for one element type; see JFF_MONARCH_BWD_TYPES there).
#define JFF_MONARCH_BWD_TYPES 1
#include "fftconv/monarch_bwd.cu"
