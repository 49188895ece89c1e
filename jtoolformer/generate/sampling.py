"""Choosing the next token from logits: greedy, or sampled under temperature, top-k and top-p."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jtoolformer.config import Checked, setting


@dataclass(frozen=True)
class Sampling(Checked):
    """temperature 0 is greedy; top_k 0 and top_p 1 switch those filters off."""

    temperature: float = setting(0.0, ge=0)
    top_k: int = setting(0, ge=0)
    top_p: float = setting(1.0, gt=0, le=1)


def sample(logits: jax.Array, key: jax.Array, sampling: Sampling) -> jax.Array:
    """One token per row of logits [B, V] (float32)."""
    if sampling.temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / sampling.temperature
    if sampling.top_k:
        kth = jax.lax.top_k(logits, sampling.top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if sampling.top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        before = jnp.cumsum(probs, axis=-1) - probs  # mass of strictly more likely tokens
        cutoff = jnp.min(jnp.where(before < sampling.top_p, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return _inverse_cdf_sample(key, logits)


def _inverse_cdf_sample(key: jax.Array, logits: jax.Array) -> jax.Array:
    """One draw per row from softmax(logits) [B, V]: the first token whose cumulative probability
    reaches a uniform u in (0, 1]. One random number per row, where the Gumbel-max trick of
    `jax.random.categorical` draws V of them (55 ms against 9 ms for 64 rows of 49k on a CPU)."""
    cumulative = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    u = 1.0 - jax.random.uniform(key, (logits.shape[0], 1))
    chosen = jnp.sum(cumulative < u * cumulative[:, -1:], axis=-1)
    return jnp.minimum(chosen, logits.shape[-1] - 1).astype(jnp.int32)
