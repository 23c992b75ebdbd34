"""Validation and backend selection shared by the public ops."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

ACTIVATION_DTYPES = (jnp.float16, jnp.bfloat16, jnp.float32)
BACKENDS = ("ffi", "xla")


def dtype_name(dtype) -> str:
    return np.dtype(dtype).name


def check_activation_dtype(name: str, x) -> None:
    if not any(x.dtype == d for d in ACTIVATION_DTYPES):
        raise TypeError(f"{name} must be float16, bfloat16 or float32; got {dtype_name(x.dtype)}")


def check_float_dtype(name: str, x) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating-point dtype; got {dtype_name(x.dtype)}")


def as_array(name: str, x):
    if x is None:
        return None
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        try:
            x = jnp.asarray(x)
        except TypeError as e:
            raise TypeError(f"{name} must be an array; got {type(x).__name__}") from e
    return x


def resolve_backend(backend: str | None, op_env: str) -> str:
    """`backend` argument, else JFF_<OP>_BACKEND, else JFF_BACKEND, else "ffi"."""
    chosen = backend
    source = "backend"
    if chosen is None:
        for var in (op_env, "JFF_BACKEND"):
            if os.environ.get(var):
                chosen, source = os.environ[var], var
                break
    if chosen is None:
        return "ffi"
    chosen = chosen.lower()
    if chosen not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS} (or None); got {chosen!r}")
    return chosen


def parse_layout(layout, allowed=("BHL", "BLH")) -> str:
    if not isinstance(layout, str) or layout.upper() not in allowed:
        raise ValueError(f"layout must be one of {allowed}; got {layout!r}")
    return layout.upper()


LAYOUT_CODE = {"BHL": 0, "BLH": 1}


def in_rule_order(rule: str, factors) -> tuple:
    """Shardy wants special factors listed in the order they first appear in the rule."""
    seen = []
    for token in rule.replace(",", " ").replace("->", " ").split():
        if token not in seen:
            seen.append(token)
    return tuple(sorted(factors, key=seen.index))
