"""Log-probabilities of chosen tokens without materialising [.., V] logits: the output projection is
applied a vocabulary chunk at a time with a running log-sum-exp, so memory does not grow with V."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jtoolformer.models import ModelConfig

F32 = jnp.float32


def output_head(params, cfg: ModelConfig) -> tuple[jax.Array, jax.Array | None]:
    """(W [D, V], bias [V] or None) of the model's output projection."""
    if cfg.tie_embeddings:
        return params["wte"]["embedding"].T, None
    head = params["lm_head"]
    return head["kernel"], head.get("bias")


def vocab_chunk(vocab_size: int, max_chunk: int = 8192) -> int:
    """The largest divisor of vocab_size not above max_chunk (static chunks, no padding copies)."""
    return max(c for c in range(1, min(vocab_size, max_chunk) + 1) if vocab_size % c == 0)


def _chunk_logits(hidden, w, b, start, size):
    w_c = jax.lax.dynamic_slice_in_dim(w, start, size, axis=1)
    logits = jnp.einsum("...d,dv->...v", hidden, w_c.astype(hidden.dtype), preferred_element_type=F32)
    if b is not None:
        logits = logits + jax.lax.dynamic_slice_in_dim(b, start, size).astype(F32)
    return logits


def logsumexp_over_vocab(hidden: jax.Array, w: jax.Array, b: jax.Array | None, max_chunk: int = 8192) -> jax.Array:
    """log Σ_v exp(hidden·W[:, v] + b[v]) for hidden [..., D] → [...], float32."""
    v = w.shape[1]
    size = vocab_chunk(v, max_chunk)

    def body(carry, start):
        m, s = carry
        logits = _chunk_logits(hidden, w, b, start, size)
        m_new = jnp.maximum(m, logits.max(axis=-1))
        s = s * jnp.exp(m - m_new) + jnp.exp(logits - m_new[..., None]).sum(axis=-1)
        return (m_new, s), None

    init = (jnp.full(hidden.shape[:-1], -jnp.inf, F32), jnp.zeros(hidden.shape[:-1], F32))
    (m, s), _ = jax.lax.scan(body, init, jnp.arange(0, v, size))
    return m + jnp.log(s)


def selected_logits(hidden: jax.Array, w: jax.Array, b: jax.Array | None, ids: jax.Array) -> jax.Array:
    """hidden [..., D] and ids [...] (one token per vector) → logit of that token [...], float32."""
    cols = jnp.take(w, ids, axis=1)  # [D, ...]
    logits = jnp.einsum("...d,d...->...", hidden.astype(F32), cols.astype(F32))
    return logits + (b[ids].astype(F32) if b is not None else 0.0)


def token_logprobs(hidden: jax.Array, w: jax.Array, b: jax.Array | None, targets: jax.Array,
                   max_chunk: int = 8192) -> jax.Array:
    """log p(target | hidden) for hidden [..., D], targets [...] → [...], float32."""
    return selected_logits(hidden, w, b, targets) - logsumexp_over_vocab(hidden, w, b, max_chunk)
