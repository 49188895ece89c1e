"""FLOPs per token counted from the params themselves; the measured peak against numpy's matmul."""

import time

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from jtoolformer.models import abstract_params, load_model_config
from jtoolformer.sharding import make_mesh
from jtoolformer.train.flops import measure_peak_flops, train_flops_per_token


@pytest.mark.parametrize("path", ["configs/gptj_tiny.yaml", "configs/llama_tiny.yaml", "configs/gptj_6b.yaml"])
def test_flops_per_token_count_every_matmul_weight(path):
    cfg = load_model_config(path)
    flat = flatten_dict(abstract_params(cfg))
    weights = sum(np.prod(x.shape) for p, x in flat.items() if p[-1] == "kernel")
    if cfg.tie_embeddings:  # the embedding is also the output projection
        weights += np.prod(flat[("wte", "embedding")].shape)
    assert train_flops_per_token(cfg) == 6 * weights


def test_measured_peak_is_near_a_numpy_matmul():
    n = 1024
    a = np.ones((n, n), np.float32)
    a @ a
    start, reps = time.perf_counter(), 0
    while time.perf_counter() - start < 0.25:
        a @ a
        reps += 1
    numpy_flops = 2 * n**3 * reps / (time.perf_counter() - start)
    peak = measure_peak_flops(make_mesh(1, 1, 1, devices=jax.devices()[:1]), "float32", size=n)
    assert numpy_flops / 10 < peak < numpy_flops * 10
