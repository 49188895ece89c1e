"""A decoder-only LM assembled from an architecture's block: embeddings, scanned layers, final norm, head.

One forward serves training (segment ids), scoring (hidden states only) and cached decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from jtoolformer.models import gptj, llama
from jtoolformer.models.config import ModelConfig
from jtoolformer.models.layers import dense, rotary_angles
from jtoolformer.sharding import constrain

ARCH_MODULES: dict[str, ModuleType] = {"gptj": gptj, "llama": llama}


@flax.struct.dataclass
class KVCache:
    """Keys [B, K, D, S] and values [B, K, S, D] of every layer: stacked along a leading layer axis when
    the layers are scanned, a tuple of per-layer arrays when they are unrolled (each then updated in
    place). Keys put the slot last so that attention's two products are plain matmuls."""

    k: jax.Array | tuple[jax.Array, ...]
    v: jax.Array | tuple[jax.Array, ...]
    valid: jax.Array  # [B, S] bool: slot holds a real token of that row
    index: jax.Array  # int32 []: the next slot to write (shared by all rows)
    # Optional keys [G, K, D, P] and values [G, K, P, D] per layer (stacked or a tuple, like k and v) of
    # prefixes the rows continue, e.g. a few-shot prompt (G = 1, shared by every row) or one document
    # per group of rows: the B rows form G equal consecutive groups and group g continues prefix g, kept
    # once before its rows' slots. prefix_valid [B, P] says which prefix slots each row sees (None: all).
    # Positions of the rows' tokens continue their prefix's.
    prefix_k: jax.Array | tuple[jax.Array, ...] | None = None
    prefix_v: jax.Array | tuple[jax.Array, ...] | None = None
    prefix_valid: jax.Array | None = None
    # int32 [G]: the row of prefix_k that group g continues (None: row g). Rows are then picked one layer
    # at a time inside attention, so groups can share or skip prefixes without a copy of all layers'.
    prefix_rows: jax.Array | None = None
    # Optional keys [1, K, D, P0] and values [1, K, P0, D] per layer of a prefix before the grouped one,
    # seen whole by every row and kept once (e.g. the few-shot head every group's document continues).
    shared_k: jax.Array | tuple[jax.Array, ...] | None = None
    shared_v: jax.Array | tuple[jax.Array, ...] | None = None

    @staticmethod
    def shapes(cfg: ModelConfig, batch: int, length: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """One layer's key and value shapes."""
        return (batch, cfg.n_kv_heads, cfg.head_dim, length), (batch, cfg.n_kv_heads, length, cfg.head_dim)

    @classmethod
    def zeros(cls, cfg: ModelConfig, batch: int, length: int, dtype=None) -> "KVCache":
        dtype = dtype or cfg.dtype
        if cfg.layers_scanned:
            k, v = (jnp.zeros((cfg.n_layers, *shape), dtype) for shape in cls.shapes(cfg, batch, length))
        else:
            k, v = (tuple(jnp.zeros(shape, dtype) for _ in range(cfg.n_layers))
                    for shape in cls.shapes(cfg, batch, length))
        return cls(k, v, jnp.zeros((batch, length), bool), jnp.zeros((), jnp.int32))

    @property
    def length(self) -> int:
        return self.valid.shape[1]

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix_k is None else self.prefix_k[0].shape[-1]  # [0]: layer 0 in either layout

    @property
    def shared_length(self) -> int:
        return 0 if self.shared_k is None else self.shared_k[0].shape[-1]

    def _map(self, fn_k: Callable[[jax.Array], jax.Array], fn_v: Callable[[jax.Array], jax.Array]) -> "KVCache":
        if isinstance(self.k, tuple):
            return self.replace(k=tuple(map(fn_k, self.k)), v=tuple(map(fn_v, self.v)))
        return self.replace(k=jax.vmap(fn_k)(self.k), v=jax.vmap(fn_v)(self.v))

    def map_rows(self, fn: Callable[[jax.Array], jax.Array]) -> "KVCache":
        """fn applied along the row (batch) axis of each layer's keys and values; valid is left as it is."""
        return self._map(fn, fn)

    @property
    def prefix_groups(self) -> int:
        if self.prefix_rows is not None:
            return self.prefix_rows.shape[0]
        return 0 if self.prefix_k is None else self.prefix_k[0].shape[0]

    def take_rows(self, rows: jax.Array, groups: jax.Array | None = None) -> "KVCache":
        """The cache of rows `rows` (indices [B']) and, with a grouped prefix, of prefix groups `groups`
        ([G'], rows[b] then continuing groups[b // (B' / G')]), named in prefix_rows rather than copied."""
        taken = self.map_rows(lambda x: x[rows]).replace(valid=self.valid[rows])
        if self.prefix_valid is not None:
            taken = taken.replace(prefix_valid=self.prefix_valid[rows])
        if groups is None:
            return taken
        return taken.replace(prefix_rows=groups if self.prefix_rows is None else self.prefix_rows[groups])

    def with_prefixes(self, shared: "KVCache", grouped: "KVCache") -> "KVCache":
        """This cache's rows continuing all of `shared`'s one row, then the rows of `grouped` that
        prefix_rows names (their keys and values, not copied)."""
        return self.replace(shared_k=shared.k, shared_v=shared.v, prefix_k=grouped.k, prefix_v=grouped.v)

    def without_prefixes(self) -> "KVCache":
        return self.replace(shared_k=None, shared_v=None, prefix_k=None, prefix_v=None)

    def take_slots(self, order: jax.Array) -> "KVCache":
        """Each row's slots reordered by order [B, S] (valid and index left as they are)."""
        return self._map(lambda k: jnp.take_along_axis(k, order[:, None, None, :], axis=3),
                         lambda v: jnp.take_along_axis(v, order[:, None, :, None], axis=2))


def attention_mask(
    t: int, segment_ids: jax.Array | None, cache: KVCache | None, token_valid: jax.Array | None
) -> tuple[jax.Array, jax.Array | None]:
    """[B, T, S] boolean mask and the cache's updated `valid` (None without a cache).

    Without a cache: causal, and within one segment when segment_ids (0 = padding) are given.
    With a cache: the T new tokens occupy slots index..index+T-1; a query sees valid slots up to its own,
    after the cache's shared prefix slots (all) and prefix slots (all, or those prefix_valid marks).
    """
    if cache is None:
        causal = jnp.tril(jnp.ones((t, t), bool))[None]
        if segment_ids is None:
            return causal, None
        same = (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, None, :] != 0)
        return causal & same, None
    b, s = cache.valid.shape
    new_valid = jnp.ones((b, t), bool) if token_valid is None else token_valid
    valid = jax.lax.dynamic_update_slice(cache.valid, new_valid, (0, cache.index))
    query_slot = cache.index + jnp.arange(t)
    mask = valid[:, None, :] & (jnp.arange(s)[None, None, :] <= query_slot[None, :, None])
    if cache.prefix_k is not None or cache.shared_k is not None:
        prefix = (jnp.ones((b, cache.prefix_length), bool) if cache.prefix_valid is None
                  else cache.prefix_valid)
        prefix = jnp.concatenate([jnp.ones((b, cache.shared_length), bool), prefix], axis=1)
        mask = jnp.concatenate([jnp.broadcast_to(prefix[:, None], (b, t, prefix.shape[1])), mask], axis=2)
    return mask, valid


class DecoderLM(nn.Module):
    cfg: ModelConfig

    def setup(self) -> None:
        cfg = self.cfg
        arch = ARCH_MODULES[cfg.arch]
        self.wte = nn.Embed(
            cfg.vocab_size, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
            embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")),
        )
        block = nn.remat(arch.Block, prevent_cse=False) if cfg.remat else arch.Block
        if cfg.layers_scanned:
            self.h = nn.scan(
                block,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, 0, 0, 0, 0, 0, 0, nn.broadcast),
                length=cfg.n_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(cfg)
        else:
            self.h = [block(cfg) for _ in range(cfg.n_layers)]  # params "h_0", "h_1", …
        self.ln_f = arch.final_norm(cfg, "ln_f")
        if not cfg.tie_embeddings:
            self.lm_head = dense(cfg.vocab_size, ("embed", "vocab"), use_bias=arch.HEAD_BIAS,
                                 dtype=cfg.dtype, param_dtype=cfg.param_dtype, name="lm_head")
        self.interleaved = arch.ROTARY_INTERLEAVED

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array,
        *,
        segment_ids: jax.Array | None = None,
        cache: KVCache | None = None,
        token_valid: jax.Array | None = None,
        return_hidden: bool = False,
    ) -> tuple[jax.Array, KVCache | None]:
        """tokens, positions [B, T] → (logits [B, T, V] float32, or final hidden states [B, T, D]; cache)."""
        cfg = self.cfg
        x = constrain(self.wte(tokens), ("batch", "length", "act_embed"))
        sin, cos = rotary_angles(positions, cfg.rotary_dim, cfg.rope_theta)
        mask, valid = attention_mask(tokens.shape[1], segment_ids, cache, token_valid)
        index = jnp.zeros((), jnp.int32) if cache is None else cache.index
        layer_caches = ((None,) * 6 if cache is None
                        else (cache.k, cache.v, cache.prefix_k, cache.prefix_v, cache.shared_k, cache.shared_v))
        prefix_rows = None if cache is None else cache.prefix_rows
        if cfg.layers_scanned:
            x, (k, v) = self.h(x, mask, sin, cos, index, *layer_caches, prefix_rows)
        else:
            k, v = [], []
            for i, block in enumerate(self.h):
                x, (k_i, v_i) = block(x, mask, sin, cos, index, *(c if c is None else c[i] for c in layer_caches),
                                      prefix_rows)
                k.append(k_i)
                v.append(v_i)
            k, v = tuple(k), tuple(v)
        new_cache = None if cache is None else cache.replace(k=k, v=v, valid=valid, index=cache.index + tokens.shape[1])
        x = self.ln_f(x)
        if return_hidden:
            return x, new_cache
        return self.project(x), new_cache

    def project(self, hidden: jax.Array) -> jax.Array:
        """Final hidden states [..., D] → logits [..., V], float32."""
        if self.cfg.tie_embeddings:  # contracted in place: attend() would transpose [V, D] every call
            embedding = self.wte.embedding.astype(hidden.dtype)
            logits = jax.lax.dot_general(hidden, embedding, (((hidden.ndim - 1,), (1,)), ((), ())),
                                         preferred_element_type=jnp.float32)
        else:
            logits = self.lm_head(hidden)
        return logits.astype(jnp.float32)
