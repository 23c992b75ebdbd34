"""compute-sanitizer target for the long fftconv path through XLA: one forward+backward at N = 65536 and
N = 2^20 (B=1, H=2, bf16 and float32, gated, odd L; and bf16 at L = N, where the outer passes load their tiles
by TMA), then a float64 check so a sanitizer run also proves the results.

    compute-sanitizer --tool memcheck python benchmarks/sanitize_long.py
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jax_flashfft as jff

rng = np.random.default_rng(0)
worst = 0.0
both, bf16 = (jnp.bfloat16, jnp.float32), (jnp.bfloat16,)
for n, length, klen, dtypes in ((1 << 16, 65531, 3001, both), (1 << 20, 1_000_001, 1 << 20, both),
                                (1 << 16, 1 << 16, 1 << 16, bf16), (1 << 20, 1 << 20, 1 << 20, bf16)):
    for dtype in dtypes:
        shape = (1, 2, length)
        u, pre, post, dy = (jnp.asarray(rng.standard_normal(shape), dtype) for _ in range(4))
        k = jnp.asarray(rng.standard_normal((2, klen)) / np.sqrt(klen), jnp.float32)
        skip = jnp.asarray(rng.standard_normal(2), jnp.float32)

        def f(u, k, pre, post, skip):
            return jff.fftconv(u, k, pre_gate=pre, post_gate=post, skip=skip, fft_size=n)

        y, vjp = jax.vjp(f, u, k, pre, post, skip)
        grads = jax.block_until_ready(vjp(dy))
        v = np.asarray(pre, np.float64) * np.asarray(u, np.float64)
        kf = np.fft.rfft(np.asarray(k, np.float64), n=n)
        z = np.fft.irfft(np.fft.rfft(v, n=n) * kf, n=n)[..., :length] + np.asarray(skip, np.float64)[:, None] * v
        ref = np.asarray(post, np.float64) * z
        err = np.linalg.norm(np.asarray(y, np.float64) - ref) / np.linalg.norm(ref)
        finite = all(bool(jnp.isfinite(g.astype(jnp.float32)).all()) for g in grads)
        print(f"N={n} L={length} {jnp.dtype(dtype).name}: y rel-L2 {err:.2e}, gradients finite: {finite}", flush=True)
        worst = max(worst, err / (2e-2 if dtype == jnp.bfloat16 else 1e-5))
        if not finite:
            worst = float("inf")
print("PASS" if worst <= 1 else "FAIL")
sys.exit(0 if worst <= 1 else 1)
