// Exposes the CUDA FFI handlers to Python as capsules; jax_flashfft/_ffi.py registers them.
#include <nanobind/nanobind.h>

#include "xla/ffi/api/ffi.h"

namespace nb = nanobind;

XLA_FFI_DECLARE_HANDLER_SYMBOL(JffFftconvFwdCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffFftconvBwdCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffFftconvSpectrumCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffDepthwiseFwdCuda);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffDepthwiseBwdCuda);

template <typename Fn>
static nb::capsule Capsule(Fn* fn) {
  return nb::capsule(reinterpret_cast<void*>(fn));
}

NB_MODULE(_jff_cuda, m) {
  m.def("registrations", []() {
    nb::dict d;
    d["jff_fftconv_fwd"] = Capsule(JffFftconvFwdCuda);
    d["jff_fftconv_bwd"] = Capsule(JffFftconvBwdCuda);
    d["jff_fftconv_filter_spectrum"] = Capsule(JffFftconvSpectrumCuda);
    d["jff_depthwise_fwd"] = Capsule(JffDepthwiseFwdCuda);
    d["jff_depthwise_bwd"] = Capsule(JffDepthwiseBwdCuda);
    return d;
  });
}
