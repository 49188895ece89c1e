"""The optimizer: global-norm clipping, then AdamW (decoupled decay on kernels and embeddings only) on a
linear warm-up / linear decay schedule."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jtoolformer.train.config import OptimConfig

DECAYED = ("kernel", "embedding")  # norms' scales and all biases are left undecayed


def learning_rate_schedule(cfg: OptimConfig, steps: int) -> optax.Schedule:
    """Rate of update n = 1 … steps: peak·n/W up to update W = warmup_fraction·steps, then falling
    linearly to `end_learning_rate` at the last update. The first update already moves (a warm-up
    starting at 0 would waste it)."""
    warmup = round(cfg.warmup_fraction * steps)
    peak, end = cfg.learning_rate, cfg.end_learning_rate

    def schedule(count: jax.Array) -> jax.Array:
        n = jnp.asarray(count, jnp.float32) + 1
        rising = peak * n / max(warmup, 1)
        falling = end + (peak - end) * (steps - n) / max(steps - warmup, 1)
        return jnp.where(n <= warmup, rising, falling)

    return schedule


def decay_mask(params: Any) -> Any:
    """True on the params weight decay applies to."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key in DECAYED, params)


def make_optimizer(cfg: OptimConfig, steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(cfg, steps)
    adamw = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay,
                        mask=decay_mask, mu_dtype=jnp.dtype(cfg.mu_dtype))
    if cfg.clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw), schedule
    return adamw, schedule
