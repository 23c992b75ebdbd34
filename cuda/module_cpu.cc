// Exposes the CPU FFI handlers to Python as capsules; jax_flashfft/_ffi.py registers them.
#include <nanobind/nanobind.h>

#include "xla/ffi/api/ffi.h"

namespace nb = nanobind;

XLA_FFI_DECLARE_HANDLER_SYMBOL(JffFftconvFwdCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffFftconvBwdCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffFftconvSpectrumCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffDepthwiseFwdCpu);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JffDepthwiseBwdCpu);

template <typename Fn>
static nb::capsule Capsule(Fn* fn) {
  return nb::capsule(reinterpret_cast<void*>(fn));
}

NB_MODULE(_jff_cpu, m) {
  m.def("registrations", []() {
    nb::dict d;
    d["jff_fftconv_fwd"] = Capsule(JffFftconvFwdCpu);
    d["jff_fftconv_bwd"] = Capsule(JffFftconvBwdCpu);
    d["jff_fftconv_filter_spectrum"] = Capsule(JffFftconvSpectrumCpu);
    d["jff_depthwise_fwd"] = Capsule(JffDepthwiseFwdCpu);
    d["jff_depthwise_bwd"] = Capsule(JffDepthwiseBwdCpu);
    return d;
  });
}
