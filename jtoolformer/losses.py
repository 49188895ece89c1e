"""Log-probabilities of chosen tokens without materialising [.., V] logits, by either of two
implementations (ModelConfig.logprob_impl): "xla" applies the output projection a vocabulary chunk at a
time with a running log-sum-exp; "pallas" runs the fused kernel of jtoolformer.kernels.vocab_logprobs,
which also keeps the backward pass free of [N, V]."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from jtoolformer.kernels.dispatch import kernel_backend, platform, resolve_impl
from jtoolformer.kernels.vocab_logprobs import self_check, selected_logits, vocab_logsumexp
from jtoolformer.models import ModelConfig

F32 = jnp.float32
# Where "auto" takes the fused kernel. Not on TPUs: at GPT-J-6B's shapes XLA:TPU gives the train step
# the same memory with either loss (29.30 / 29.27 GiB per v4 chip, scripts/results/plan_memory.json),
# and alone the kernel needs more temporaries and bytes than XLA (kernels_tpu.json). GPUs: unmeasured.
AUTO_KERNEL_ON = ("gpu",)

__all__ = ["output_head", "vocab_tiles", "logsumexp_over_vocab", "selected_logits", "token_logprobs"]


def output_head(params, cfg: ModelConfig) -> tuple[jax.Array, jax.Array | None]:
    """(W [D, V], bias [V] or None) of the model's output projection."""
    if cfg.tie_embeddings:
        return params["wte"]["embedding"].T, None
    head = params["lm_head"]
    return head["kernel"], head.get("bias")


def vocab_tiles(vocab_size: int, max_chunk: int = 8192) -> tuple[int, int]:
    """(chunk width, number of chunks) covering the vocabulary. The last chunk is moved back to end at
    vocab_size and the columns it shares with the one before are masked: no padded copy of W, and no
    tiny chunks when vocab_size has no convenient divisor (32001 = 3 · 10667)."""
    size = min(vocab_size, max_chunk)
    return size, -(-vocab_size // size)


def _chunk_logits(hidden, w, b, start, size):
    w_c = jax.lax.dynamic_slice_in_dim(w, start, size, axis=1)
    logits = jnp.einsum("...d,dv->...v", hidden, w_c.astype(hidden.dtype), preferred_element_type=F32)
    if b is not None:
        logits = logits + jax.lax.dynamic_slice_in_dim(b, start, size).astype(F32)
    return logits


def logsumexp_over_vocab(hidden: jax.Array, w: jax.Array, b: jax.Array | None, max_chunk: int = 8192) -> jax.Array:
    """log Σ_v exp(hidden·W[:, v] + b[v]) for hidden [..., D] → [...], float32."""
    v = w.shape[1]
    size, count = vocab_tiles(v, max_chunk)

    @jax.checkpoint  # the backward pass recomputes each chunk's logits: [..., V] is never stored
    def body(carry, k):
        m, s = carry
        start = jnp.minimum(k * size, v - size)
        fresh = start + jnp.arange(size) >= k * size  # not counted by the chunk before
        logits = jnp.where(fresh, _chunk_logits(hidden, w, b, start, size), -jnp.inf)
        m_new = jnp.maximum(m, logits.max(axis=-1))
        s = s * jnp.exp(m - m_new) + jnp.exp(logits - m_new[..., None]).sum(axis=-1)
        return (m_new, s), None

    init = (jnp.full(hidden.shape[:-1], -jnp.inf, F32), jnp.zeros(hidden.shape[:-1], F32))
    (m, s), _ = jax.lax.scan(body, init, jnp.arange(count))
    return m + jnp.log(s)


def _kernel_logprobs(hidden, w, b, targets, mesh: Mesh | None):
    """The fused kernel over rows [N, D]. On a mesh, when the devices divide V, each takes a slice of
    the vocabulary for every row (its own slice of W and dW, no whole copy of either) and the rows'
    log-sum-exps and target logits are combined across devices; else each takes a share of the rows."""
    backend, interpret = kernel_backend(platform(mesh))
    lse = functools.partial(vocab_logsumexp, backend=backend, interpret=interpret)
    h, t = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    axes = tuple(a for a in (mesh.axis_names if mesh is not None else ()) if mesh.shape[a] > 1)
    devices = math.prod(mesh.shape[a] for a in axes) if axes else 1
    bias = () if b is None else (b,)
    whole, split = PartitionSpec(), PartitionSpec(axes)

    def rows_logprobs(h, w, t, *bias):
        b = bias[0] if bias else None
        return selected_logits(h, w, b, t) - lse(h, w, b)

    def vocab_slice_logprobs(h, w, t, *bias):
        b, width = bias[0] if bias else None, w.shape[1]
        local = lse(h, w, b)
        top = jax.lax.pmax(jax.lax.stop_gradient(local), axes)
        total = jnp.log(jax.lax.psum(jnp.exp(local - top), axes)) + top
        own = t - jax.lax.axis_index(axes) * width
        mine = (own >= 0) & (own < width)
        target = jnp.where(mine, selected_logits(h, w, b, jnp.clip(own, 0, width - 1)), 0.0)
        return jax.lax.psum(target, axes) - total

    if devices > 1 and w.shape[1] % devices == 0:
        fn = jax.shard_map(vocab_slice_logprobs, mesh=mesh, in_specs=(whole, PartitionSpec(None, axes), whole)
                           + (split,) * len(bias), out_specs=whole, check_vma=False)
    elif devices > 1 and t.shape[0] % devices == 0:
        fn = jax.shard_map(rows_logprobs, mesh=mesh, in_specs=(split, whole, split) + (whole,) * len(bias),
                           out_specs=split, check_vma=False)
    else:
        fn = rows_logprobs
    return fn(h, w, t, *bias).reshape(targets.shape)


def token_logprobs(hidden: jax.Array, w: jax.Array, b: jax.Array | None, targets: jax.Array,
                   impl: str = "xla", mesh: Mesh | None = None, max_chunk: int = 8192) -> jax.Array:
    """log p(target | hidden) for hidden [..., D], targets [...] → [...], float32. impl: "xla",
    "pallas" or "auto" (see jtoolformer.kernels.dispatch); the kernel splits rows over `mesh`."""
    key = (hidden.shape[-1], hidden.dtype.name)
    if resolve_impl(impl, "token_logprobs", self_check, key, mesh=mesh, auto_pallas_on=AUTO_KERNEL_ON) == "pallas":
        return _kernel_logprobs(hidden, w, b, targets, mesh)
    return selected_logits(hidden, w, b, targets) - logsumexp_over_vocab(hidden, w, b, max_chunk)
