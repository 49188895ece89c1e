"""Model FLOPs per token and the machine's peak, for MFU."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jtoolformer.models import ModelConfig


def matmul_params(cfg: ModelConfig) -> int:
    """Parameters that take part in matmuls: all but an untied input embedding (a lookup)."""
    return cfg.n_params - (0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model)


def train_flops_per_token(cfg: ModelConfig) -> float:
    """6·N (forward 2·N, backward 4·N); attention's score and value products are not counted, so MFU
    is understated by about seq_len / (6·d_model)."""
    return 6.0 * matmul_params(cfg)


def measure_peak_flops(mesh: Mesh, dtype: str, size: int = 1024, min_seconds: float = 0.25) -> float:
    """FLOP/s of all the mesh's devices together on chained square matmuls in `dtype` (one chain per
    device), timed until a run lasts at least `min_seconds`."""
    devices = mesh.devices.size
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names))
    x = jax.device_put(jnp.ones((devices, size, size), dtype), sharding)
    w = jax.device_put(jnp.broadcast_to(jnp.eye(size, dtype=dtype), (devices, size, size)), sharding)

    @jax.jit
    def chain(x, w, n):
        return jax.lax.fori_loop(0, n, lambda _, y: jnp.einsum("bij,bjk->bik", y, w), x)

    n = 1
    chain(x, w, np.int32(n)).block_until_ready()  # compiles
    while True:
        start = time.perf_counter()
        chain(x, w, np.int32(n)).block_until_ready()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return 2.0 * size**3 * devices * n / elapsed
        n *= 2
