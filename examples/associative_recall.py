"""Train a small Hyena language model on synthetic associative recall, through jax_flashfft's kernels.

The task (Hyena, arXiv 2302.10866; H3, arXiv 2212.14052): a sequence of key-value pairs drawn from a per-
sequence random dictionary, then a query key; the model must output the value that followed that key.
Keys are tokens [0, V/2), values [V/2, V); a key may recur, always with the same value. Data is generated on
the fly (fresh sequences every step); accuracy is measured on held-out sequences from a separate RNG stream.

The loss covers every position where the answer is determined (the token after a key that already occurred
earlier, and the final query); held-out accuracy is measured on the final query only, the standard metric.

    python examples/associative_recall.py                      # CPU default: >= 90% in well under 5 min
    python examples/associative_recall.py --seq-len 8192 --backend both   # GPU: step time, both backends

With several local devices (GPUs, or XLA_FLAGS=--xla_force_host_platform_device_count=8 on CPU) the batch
is sharded over a 1-D mesh and the script runs unchanged: the ops partition along the batch and XLA
all-reduces the gradients.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

import jax_flashfft.nnx as jffnn


# ---------------------------------------------------------------------------------------------------------
# Task


def make_batch(key, batch_size: int, seq_len: int, vocab_size: int):
    """`(tokens, targets, mask)`, each `(batch, seq_len)`; `mask` marks positions whose next token is
    determined by the context (and `final`, the query position, is always the last one)."""
    num_keys = vocab_size // 2
    pairs = (seq_len - 1) // 2
    k_dict, k_keys, k_query = jax.random.split(key, 3)
    dictionary = jax.random.randint(k_dict, (batch_size, num_keys), num_keys, vocab_size)
    keys = jax.random.randint(k_keys, (batch_size, pairs), 0, num_keys)
    values = jnp.take_along_axis(dictionary, keys, axis=1)
    query_pair = jax.random.randint(k_query, (batch_size, 1), 0, pairs)
    query = jnp.take_along_axis(keys, query_pair, axis=1)
    answer = jnp.take_along_axis(values, query_pair, axis=1)

    body = jnp.stack([keys, values], axis=-1).reshape(batch_size, 2 * pairs)
    pad = seq_len - 1 - 2 * pairs  # one leading pad token when seq_len is even
    pad_token = vocab_size
    tokens = jnp.concatenate([jnp.full((batch_size, pad), pad_token), body, query], axis=1)

    # Target at a key position is the value that follows it; it is learnable only if the key occurred before.
    seen_before = jnp.any(
        (keys[:, :, None] == keys[:, None, :]) & jnp.tril(jnp.ones((pairs, pairs), bool), -1)[None], axis=-1)
    targets = jnp.stack([values, jnp.zeros_like(values)], axis=-1).reshape(batch_size, 2 * pairs)
    mask = jnp.stack([seen_before, jnp.zeros_like(seen_before)], axis=-1).reshape(batch_size, 2 * pairs)
    targets = jnp.concatenate([jnp.zeros((batch_size, pad), targets.dtype), targets, answer], axis=1)
    mask = jnp.concatenate([jnp.zeros((batch_size, pad), bool), mask, jnp.ones((batch_size, 1), bool)], axis=1)
    return tokens.astype(jnp.int32), targets.astype(jnp.int32), mask


# ---------------------------------------------------------------------------------------------------------
# Model


class Block(nnx.Module):
    """Pre-norm residual block: Hyena operator, then a small MLP."""

    def __init__(self, d_model, max_len, *, order, filter_args, mlp_ratio, dtype, backend, rngs):
        self.norm1 = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
        self.mixer = jffnn.HyenaOperator(
            d_model, max_len, order=order, filter_args=filter_args, dtype=dtype, backend=backend, rngs=rngs)
        self.norm2 = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
        self.mlp_in = nnx.Linear(d_model, mlp_ratio * d_model, dtype=dtype, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_ratio * d_model, d_model, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp_out(jax.nn.gelu(self.mlp_in(self.norm2(x))))


class HyenaLM(nnx.Module):
    def __init__(self, vocab_size, d_model, n_layers, max_len, *, order=2, filter_args=None, mlp_ratio=2,
                 dtype=None, backend=None, rngs):
        self.embed = nnx.Embed(vocab_size + 1, d_model, dtype=dtype, rngs=rngs)  # + the pad token
        self.blocks = nnx.List([
            Block(d_model, max_len, order=order, filter_args=filter_args or {}, mlp_ratio=mlp_ratio,
                  dtype=dtype, backend=backend, rngs=rngs)
            for _ in range(n_layers)])
        self.norm = nnx.LayerNorm(d_model, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(d_model, vocab_size, dtype=dtype, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)).astype(jnp.float32)


# ---------------------------------------------------------------------------------------------------------
# Training


def train(args, backend: str | None):
    devices = jax.local_devices()
    mesh = jax.make_mesh((len(devices),), ("data",), devices=devices, axis_types=(jax.sharding.AxisType.Auto,))
    batch_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    if args.batch_size % len(devices):
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the {len(devices)} local devices")

    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[args.dtype]
    model = HyenaLM(
        args.vocab_size, args.d_model, args.n_layers, args.seq_len, order=args.order,
        filter_args=dict(emb_dim=args.filter_emb_dim, width=args.filter_width, freq=args.filter_freq),
        dtype=dtype, backend=backend, rngs=nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.device_put(params, replicated)

    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 10), args.steps, args.lr * 0.05)
    # Decay matrices only: norms, biases, sine frequencies and skips are scales and offsets, not capacity.
    decay_mask = jax.tree.map(lambda p: p.ndim >= 2, params)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.1, mask=decay_mask))
    opt_state = jax.device_put(tx.init(params), replicated)

    def loss_fn(params, tokens, targets, mask):
        logits = nnx.merge(graphdef, params)(tokens)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)

    @jax.jit
    def train_step(params, opt_state, key):
        tokens, targets, mask = jax.lax.with_sharding_constraint(
            make_batch(key, args.batch_size, args.seq_len, args.vocab_size), batch_sharding)
        loss, grads = jax.value_and_grad(loss_fn)(params, tokens, targets, mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def eval_step(params, key):
        tokens, targets, _ = jax.lax.with_sharding_constraint(
            make_batch(key, args.batch_size, args.seq_len, args.vocab_size), batch_sharding)
        logits = nnx.merge(graphdef, params)(tokens)
        return jnp.sum(jnp.argmax(logits[:, -1], axis=-1) == targets[:, -1])

    # Held-out sequences come from a key stream training never touches.
    train_key, eval_key = jax.random.split(jax.random.key(args.seed + 1))
    losses, step_times = [], []
    warmup = min(5, max(args.steps - 1, 0))
    label = backend or "ffi"  # None: the compiled kernels (unless JFF_BACKEND says otherwise)
    with tqdm(range(args.steps), desc=f"train [{label}]", unit="step", disable=args.quiet) as bar:
        for step in bar:
            start = time.perf_counter()
            params, opt_state, loss = train_step(params, opt_state, jax.random.fold_in(train_key, step))
            losses.append(loss)
            if step >= warmup or step == args.steps - 1:
                loss.block_until_ready()  # honest per-step timing; a tiny cost on CPU, none worth hiding
                step_times.append(time.perf_counter() - start)
            if step % 25 == 0 or step == args.steps - 1:
                bar.set_postfix(loss=f"{float(loss):.4f}")

    eval_batches = max(1, -(-args.eval_size // args.batch_size))
    correct = sum(int(eval_step(params, jax.random.fold_in(eval_key, i))) for i in range(eval_batches))
    accuracy = correct / (eval_batches * args.batch_size)
    step_ms = 1e3 * float(np.mean(step_times[1:] if len(step_times) > 1 else step_times))
    tenth = max(1, len(losses) // 10)
    first, last = (float(np.mean([float(x) for x in part])) for part in (losses[:tenth], losses[-tenth:]))
    print(f"[{label}] loss {first:.4f} -> {last:.4f} (mean of the first and last 10% of steps)")
    print(f"[{label}] mean step time {step_ms:.2f} ms "
          f"(after {warmup} warm-up steps; batch {args.batch_size}, seq-len {args.seq_len}, "
          f"{len(devices)} {devices[0].platform} device(s))")
    print(f"[{label}] held-out accuracy: {accuracy:.2%} on {eval_batches * args.batch_size} sequences")
    return accuracy, step_ms, [float(x) for x in losses]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=20, help="keys are [0, V/2), values [V/2, V)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--backend", choices=("ffi", "xla", "both"), default="ffi",
                   help="ffi: jax_flashfft's kernels; xla: the pure-JAX path; both: one run each, compared")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--filter-emb-dim", type=int, default=5)
    p.add_argument("--filter-width", type=int, default=64)
    p.add_argument("--filter-freq", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--eval-size", type=int, default=1024)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.vocab_size < 4 or args.vocab_size % 2:
        p.error("--vocab-size must be even and >= 4")
    if args.seq_len < 3:
        p.error("--seq-len must be >= 3 (one key-value pair and a query)")
    return args


def main(argv=None):
    args = parse_args(argv)
    backends = ("ffi", "xla") if args.backend == "both" else (args.backend,)
    results = {b: train(args, None if b == "ffi" else b) for b in backends}
    if len(results) == 2:
        ffi_ms, xla_ms = results["ffi"][1], results["xla"][1]
        print(f"step time: ffi {ffi_ms:.2f} ms, xla {xla_ms:.2f} ms, speed-up {xla_ms / ffi_ms:.2f}x")
    return results


if __name__ == "__main__":
    main()
