"""examples/associative_recall.py: the task generator, and the script itself run data-parallel on 8 forced
CPU devices in a subprocess (as a user would run it), for both backends."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jax_flashfft
import jax_flashfft._ffi as _ffi

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "associative_recall.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("associative_recall", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seq_len", [9, 12, 64])
def test_task_generator(seq_len):
    ar = _load_example()
    vocab = 10
    tokens, targets, mask = (np.asarray(a) for a in ar.make_batch(jax.random.key(seq_len), 64, seq_len, vocab))
    assert tokens.shape == targets.shape == mask.shape == (64, seq_len)
    for row_tokens, row_targets, row_mask in zip(tokens, targets, mask):
        pad = seq_len - 1 - 2 * ((seq_len - 1) // 2)
        assert np.all(row_tokens[:pad] == vocab)  # the pad token, outside the key and value ranges
        keys, values = row_tokens[pad:-1:2], row_tokens[pad + 1:-1:2]
        assert np.all(keys < vocab // 2) and np.all(values >= vocab // 2) and np.all(values < vocab)
        # One dictionary per sequence: a recurring key always comes with the same value.
        dictionary = {}
        for key, value in zip(keys, values):
            assert dictionary.setdefault(key, value) == value
        query = row_tokens[-1]
        assert query in dictionary and row_targets[-1] == dictionary[query] and row_mask[-1]
        # Supervised positions are exactly the keys seen before; their target is the key's value.
        for i, key in enumerate(keys):
            position = pad + 2 * i
            assert row_mask[position] == (key in keys[:i])
            if row_mask[position]:
                assert row_targets[position] == dictionary[key]
        assert not row_mask[pad + 1:-1:2].any()  # value positions predict a fresh key: never supervised


@pytest.mark.skipif(not _ffi.cpu_available(), reason="CPU extension not built")
def test_script_trains_data_parallel_on_8_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    # The script must import the jax_flashfft these tests import (the installed package, or the source tree in
    # a developer's in-place build), never a source tree that lacks the compiled extension.
    package_parent = str(Path(jax_flashfft.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    args = ["--seq-len", "32", "--steps", "40", "--batch-size", "16", "--d-model", "16", "--vocab-size", "8",
            "--filter-width", "16", "--eval-size", "32", "--backend", "both", "--quiet"]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for backend in ("ffi", "xla"):
        assert re.search(rf"\[{backend}\] .*8 cpu device\(s\)", out), out  # the batch really was sharded 8 ways
        first, last = map(float, re.search(rf"\[{backend}\] loss ([\d.]+) -> ([\d.]+)", out).groups())
        assert np.isfinite(first) and np.isfinite(last) and last < first, out
        assert re.search(rf"\[{backend}\] held-out accuracy: [\d.]+%", out), out
    assert "speed-up" in out
