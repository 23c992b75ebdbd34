"""Device diagnosis: call the CUDA FFI targets directly with bad attributes, each case in its own process,
with XLA's command buffers (CUDA graphs) on and off, and report how each process ended. A handler that
returns an ffi::Error must make JAX raise; a crash (negative return code) is a bug."""

from __future__ import annotations

import os
import subprocess
import sys

CASE = r'''
import sys, numpy as np, jax, jax.numpy as jnp
import jax_flashfft  # registers the targets
gpu = jax.devices("gpu")[0]
case = sys.argv[1]
x = jax.device_put(jnp.ones((2, 16, 8), jnp.float16), gpu)
w = jax.device_put(jnp.ones((3, 8), jnp.float32), gpu)
bias = jax.device_put(jnp.zeros((0,), jnp.float32), gpu)
attrs = dict(pad_lo=np.int64(1), pad_hi=np.int64(1), layout=np.int32(1))
out = (2, 16, 8)
if case == "layout": attrs["layout"] = np.int32(7)
elif case == "pad_lo": attrs["pad_lo"] = np.int64(-1)
elif case == "taps": w = jax.device_put(jnp.ones((129, 8), jnp.float32), gpu)
elif case == "w_dtype": w = jax.device_put(jnp.ones((3, 8), jnp.bfloat16), gpu)
elif case == "bias": bias = jax.device_put(jnp.ones((5,), jnp.float32), gpu)
elif case == "out": out = (2, 15, 8)
elif case == "good": pass
def f(x, w, b):
    return jax.ffi.ffi_call("jff_depthwise_fwd", jax.ShapeDtypeStruct(out, x.dtype))(x, w, b, **attrs)
try:
    y = jax.block_until_ready(jax.jit(f)(x, w, bias))
    print("RESULT ok", float(jnp.sum(y.astype(jnp.float32))))
except Exception as e:
    print("RESULT raised", type(e).__name__, str(e).splitlines()[0][:200])
'''


def main():
    cases = ["good", "layout", "pad_lo", "taps", "w_dtype", "bias", "out"]
    for flags in ("", "--xla_gpu_enable_command_buffer="):
        for case in cases:
            env = dict(os.environ, XLA_FLAGS=flags, XLA_PYTHON_CLIENT_PREALLOCATE="false")
            p = subprocess.run([sys.executable, "-X", "faulthandler", "-c", CASE, case], env=env,
                               capture_output=True, text=True, timeout=300, cwd="/tmp")
            result = [l for l in p.stdout.splitlines() if l.startswith("RESULT")]
            tail = p.stderr.strip().splitlines()[-3:] if p.returncode else []
            print(f"flags={flags or 'default':35s} case={case:8s} rc={p.returncode:4d} {result} {tail}", flush=True)


if __name__ == "__main__":
    main()
