"""Loads the compiled handler modules and registers their FFI targets with XLA.

`_jff_cpu` is always built; `_jff_cuda` exists when the package was built with nvcc. Registration happens
once, on import of this module.
"""

from __future__ import annotations

import jax

TARGETS = ("jff_fftconv_fwd", "jff_fftconv_bwd", "jff_fftconv_filter_spectrum", "jff_depthwise_fwd", "jff_depthwise_bwd")

try:
    from jax_flashfft import _jff_cpu
except ImportError as e:  # pragma: no cover - a broken install
    _jff_cpu = None
    _CPU_IMPORT_ERROR = e
else:
    _CPU_IMPORT_ERROR = None

try:
    from jax_flashfft import _jff_cuda
except ImportError:
    _jff_cuda = None


def _register() -> None:
    if _jff_cpu is not None:
        for name, capsule in _jff_cpu.registrations().items():
            jax.ffi.register_ffi_target(name, capsule, platform="cpu")
    if _jff_cuda is not None:
        for name, capsule in _jff_cuda.registrations().items():
            jax.ffi.register_ffi_target(name, capsule, platform="CUDA")


_register()


def cpu_available() -> bool:
    return _jff_cpu is not None


def cuda_available() -> bool:
    """True when the CUDA handlers were compiled into this install."""
    return _jff_cuda is not None


def require_extension() -> None:
    if _jff_cpu is None:
        raise ImportError(
            "jax_flashfft's compiled extension is missing (reinstall with `pip install .`), or use "
            f"backend='xla' for the pure-JAX path. Import error: {_CPU_IMPORT_ERROR}"
        )
