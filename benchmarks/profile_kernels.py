"""Device time per kernel of one jitted fftconv call, under jax.profiler: where a JAX-level benchmark row spends its
time (the long path's self-tests time their passes alone, without k's spectrum op or XLA's own kernels).

    python3 benchmarks/profile_kernels.py --size 64K --batch 16 --mode fwd+bwd     # on a CUDA machine

The inputs are bench_fftconv.py's (gated bfloat16, BHL or --layout BLH, L = N, fft_size = N; --skip adds a skip;
--causal its causal case, L = N/2). The program runs --calls times back to back on one input set (at the long sizes
each tensor is far larger than L2) under the profiler after a warm-up; each kernel's device time is summed over the
calls and divided by them. Prints one line per kernel name (ms per call, launches per call, share), longest first,
then the sum of kernel time and the device span (first start to last end) per call.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fftconv as bench  # noqa: E402
import harness  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="64K", help="FFT size N = L (default 64K)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--heads", type=int, default=768)
    p.add_argument("--mode", choices=bench.MODES, default="fwd+bwd")
    p.add_argument("--skip", action="store_true", help="add a per-channel skip (the backward then computes dskip too)")
    p.add_argument("--causal", action="store_true", help="bench_fftconv's causal case: L = Lk = N/2, fft_size=None")
    p.add_argument("--layout", choices=("BHL", "BLH"), default="BHL")
    p.add_argument("--calls", type=int, default=10)
    return p.parse_args(argv)


def kernel_times(planes):
    """{kernel name: [total ns, launches]} over the device plane's kernel lines, and the device span in ns
    (ValueError without a device plane or kernel events)."""
    per = collections.defaultdict(lambda: [0, 0])
    first, last = None, None
    for ln in harness.device_plane(planes).lines:
        if ln.name in harness._DERIVED_LINES:
            continue
        for e in ln.events:
            per[e.name][0] += e.duration_ns
            per[e.name][1] += 1
            first = e.start_ns if first is None else min(first, e.start_ns)
            last = e.end_ns if last is None else max(last, e.end_ns)
    if first is None:
        raise ValueError("the profile holds no kernel events")
    return per, last - first


def main(argv=None):
    a = parse_args(argv)
    import jax_flashfft as jff

    n = harness.parse_size(a.size)
    length = n // 2 if a.causal else n
    conv = bench.op_fn(jff, None, None if a.causal else n, a.layout)
    shape = (a.batch, a.heads, length) if a.layout == "BHL" else (a.batch, length, a.heads)
    args = bench.make_set(jax.random.key(0), shape, a.heads, length, jnp.bfloat16, a.mode != "fwd")
    skip = jax.random.normal(jax.random.key(1), (a.heads,), jnp.float32) if a.skip else None

    def fn(u, k, pre, post, *dy):  # bench_fftconv's fwd_fn / fwd_bwd_fn / step_fn, with the optional skip
        f = lambda u_, k_, p_, q_: conv(u_, k_, pre_gate=p_, post_gate=q_, skip=skip)  # noqa: E731
        if a.mode == "fwd":
            return f(u, k, pre, post)
        y, vjp = jax.vjp(f, u, k, pre, post)
        return (y, vjp(dy[0])) if a.mode == "step" else vjp(dy[0])

    jitted = jax.jit(fn)
    for _ in range(3):
        jax.block_until_ready(jitted(*args))

    def run():
        jax.block_until_ready([jitted(*args) for _ in range(a.calls)])

    try:
        per, span = kernel_times(harness.profile_planes(run))
    except ValueError as e:  # no GPU, or nothing profiled
        raise SystemExit(str(e)) from None
    total = sum(t for t, _ in per.values())
    print(f"{jax.devices()[0].device_kind}: fftconv {a.mode} N={n} L={length} B={a.batch} H={a.heads} {a.layout} "
          "bf16 gated"
          f"{' + skip' if a.skip else ''}, {a.calls} calls")
    print(f"{'ms/call':>9} {'launches':>8} {'share':>6}  kernel")
    for name, (t, cnt) in sorted(per.items(), key=lambda kv: -kv[1][0]):
        print(f"{t / a.calls / 1e6:9.3f} {cnt / a.calls:8.1f} {100 * t / total:5.1f}%  {name[:150]}")
    print(f"kernel time {total / a.calls / 1e6:.3f} ms per call; device span {span / a.calls / 1e6:.3f} ms per call "
          "(includes the gaps between kernels and between calls)")


if __name__ == "__main__":
    main()
