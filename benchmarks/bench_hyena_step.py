"""One jit-compiled Hyena training step (forward + backward + optax AdamW), our kernels vs backend="xla".

The model is the one `examples/associative_recall.py` trains (token embedding, pre-norm blocks of Hyena
operator + MLP, LM head), here at d_model 768, 2 layers, order 2, bf16 activations with float32 parameters.
The batch holds a fixed number of tokens (B = tokens // L), so every row does comparable work. Run from the
repository root:

    python benchmarks/bench_hyena_step.py            # L = 1K, 4K, 16K, 64K (a GPU job)
    python benchmarks/bench_hyena_step.py --quick    # CPU-sized smoke run

A training step has no meaningful memory floor (its matmuls are compute bound), so the table's floor columns
stay empty; `baseline/ours` is the end-to-end speed-up. `err` is the relative difference between the two
backends of the loss after one training step, from identical parameters and tokens.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "associative_recall.py"
DEFAULT_SIZES = "1K,4K,16K,64K"
QUICK_SIZES = "256,1K"


def _example():
    spec = importlib.util.spec_from_file_location("associative_recall", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU-sized: d_model 64, L = 256 and 1K, 4096 tokens a step")
    p.add_argument("--sizes", help=f"sequence lengths, comma separated (default {DEFAULT_SIZES})")
    p.add_argument("--tokens", type=int, help="tokens per step, B = tokens // L (default 2^18; 4096 with --quick)")
    p.add_argument("--batch", type=int, help="fixed batch size instead of tokens // L")
    p.add_argument("--d-model", type=int, help="default 768 (64 with --quick)")
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--vocab-size", type=int, default=32)
    p.add_argument("--dtype", default=None, help="activation dtype (default bf16 on GPU, fp32 on CPU)")
    p.add_argument("--target-s", type=float, help="seconds of timing per measurement (default 2.0; 0.3 with --quick)")
    p.add_argument("--out", help="results folder (default benchmarks/results)")
    p.add_argument("--name", help="results name (default hyena_step, hyena_step-quick with --quick)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--no-plot", action="store_true")
    a = p.parse_args(argv)
    a.sizes = [harness.parse_size(s) for s in harness.parse_list(a.sizes or (QUICK_SIZES if a.quick else DEFAULT_SIZES))]
    a.tokens = a.tokens or (4096 if a.quick else 1 << 18)
    a.d_model = a.d_model or (64 if a.quick else 768)
    a.dtype = harness.parse_dtype(a.dtype or ("bf16" if harness.on_gpu() else "fp32"))
    a.target_s = a.target_s or (0.3 if a.quick else 2.0)
    a.name = a.name or ("hyena_step-quick" if a.quick else "hyena_step")
    return a


def make_step(ar, a, seq_len, backend):
    """(step, params, opt_state): `step(params, opt_state, tokens, targets)` is one jitted training step."""
    model = ar.HyenaLM(a.vocab_size, a.d_model, a.n_layers, seq_len, order=a.order, dtype=a.dtype,
                       backend=backend, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(1e-3, weight_decay=0.1)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, tokens, targets):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(tokens)
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, params, opt_state


def run_size(ar, a, seq_len):
    batch = a.batch or max(1, a.tokens // seq_len)
    row = {"L": harness.fmt_size(seq_len), "seq_len": seq_len, "batch": batch, "d_model": a.d_model,
           "n_layers": a.n_layers, "order": a.order, "dtype": harness.dtype_name(a.dtype)}
    token_bytes = 2 * batch * seq_len * 4
    sets = []
    for i in range(harness.input_set_count(token_bytes, min_sets=2)):
        k1, k2 = jax.random.split(jax.random.key(i))
        sets.append((jax.random.randint(k1, (batch, seq_len), 0, a.vocab_size),
                     jax.random.randint(k2, (batch, seq_len), 0, a.vocab_size)))
    losses = {}
    for side, backend in (("ours", None), ("baseline", "xla")):
        try:
            step, params, opt_state = make_step(ar, a, seq_len, backend)
            # The loss after one update: at initialisation a zero-initialised output projection can hide the
            # long convolutions from the loss, but not from the gradients that the update applies.
            updated = step(params, opt_state, *sets[0])
            losses[side] = float(step(updated[0], updated[1], *sets[0])[2])
            del updated
            # Parameters travel as arguments: closed over, they would be baked into the program as constants.
            timing = harness.time_fn(step, *[(params, opt_state, t, y) for t, y in sets], target_s=a.target_s)
            row[f"{side}_ms"] = timing["reported_ms"]
            row[f"{side}_timing"] = timing
            del step, params, opt_state
        except Exception as e:  # noqa: BLE001 - an OOM at one size must not lose the others
            row[f"{side}_error"] = harness.error_text(e)
    row["baseline_over_ours"] = harness.ratio(row.get("baseline_ms"), row.get("ours_ms"))
    if len(losses) == 2:
        row["ours_rel_l2"] = abs(losses["ours"] - losses["baseline"]) / abs(losses["baseline"])
        row["loss"] = losses["baseline"]
    if row.get("ours_ms"):
        row["ours_tokens_per_s"] = batch * seq_len / (row["ours_ms"] * 1e-3)
    return row


def main(argv=None):
    a = parse_args(argv)
    ar = _example()
    rows = []
    title = (f"Hyena train step (fwd+bwd+AdamW): d_model {a.d_model}, {a.n_layers} layers, order {a.order}, "
             f"{harness.dtype_name(a.dtype)} activations, {harness.device_kind()}; baseline = backend='xla'")
    for seq_len in a.sizes:
        rows.append(run_size(ar, a, seq_len))
        print(f"  L={harness.fmt_size(seq_len)} done", flush=True)
    harness.print_table(rows, [("L", "L"), ("batch", "B")], title=title)
    if not a.no_save:
        meta = harness.metadata(a.name, {"d_model": a.d_model, "n_layers": a.n_layers, "order": a.order,
                                         "tokens_per_step": a.tokens, "dtype": harness.dtype_name(a.dtype),
                                         "err_column": "relative difference of the loss after one step, ours vs baseline"})
        path = harness.write_results(a.name, meta, rows, a.out)
        print(f"wrote {path}")
        if not a.no_plot:
            try:
                png = harness.plot(rows, path.with_suffix(".png"), x_label=lambda r: f"L={r['L']} B={r['batch']}",
                                   title="Hyena train step", panel=lambda r: f"d_model {r['d_model']}")
                print(f"wrote {png}")
            except ImportError:
                print("matplotlib not installed: no plot")
    return rows


if __name__ == "__main__":
    main()
