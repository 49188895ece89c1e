"""Prefill and cached decode steps, jitted; the host loop around them.

Prompts are left-padded into one batch, so every row's next token goes into the same cache slot and a
decode step is one static-shape call; per-row positions and the cache's `valid` mask make each row
see exactly what it would see alone. Decoding runs in jitted chunks of steps; between chunks the host
checks stop strings and may end rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from functools import partial

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jtoolformer.generate.sampling import Sampling, sample
from jtoolformer.models import KVCache, ModelConfig, forward, project
from jtoolformer.shapes import bucket, left_padded, on_mesh, padded_rows
from jtoolformer.sharding import batch_sharding, named_sharding

NO_TOKEN = -1


@flax.struct.dataclass
class DecodeState:
    cache: KVCache
    logits: jax.Array  # [B, V] float32: the distribution of each row's next token
    positions: jax.Array  # [B] int32: the position that token will take
    done: jax.Array  # [B] bool
    key: jax.Array


class Decoder:
    """Jitted prefill/decode for one model on one mesh."""

    def __init__(self, cfg: ModelConfig, mesh: Mesh):
        self.cfg, self.mesh = cfg, mesh
        self._prefill = jax.jit(self._prefill_impl, donate_argnames="cache")
        self._chunk = jax.jit(self._chunk_impl, static_argnames=("n_steps", "sampling"), donate_argnames="state")
        self._step = jax.jit(self.advance, donate_argnames="state")
        self._compact = jax.jit(self._compact_impl, donate_argnames="state")
        self._grow = jax.jit(self._grow_impl, donate_argnames="cache")

    def new_cache(self, batch: int, length: int) -> KVCache:
        cfg, mesh = self.cfg, self.mesh
        k_shape, v_shape = KVCache.shapes(cfg, batch, length)
        k_names, v_names = ("batch", "kv_heads", None, "length"), ("batch", "kv_heads", "length", None)
        if cfg.layers_scanned:
            k = named_sharding(("layers", *k_names), (cfg.n_layers, *k_shape), mesh)
            v = named_sharding(("layers", *v_names), (cfg.n_layers, *v_shape), mesh)
        else:
            k = (named_sharding(k_names, k_shape, mesh),) * cfg.n_layers
            v = (named_sharding(v_names, v_shape, mesh),) * cfg.n_layers
        shardings = KVCache(k, v, batch_sharding(mesh, (batch, length)), named_sharding((), (), mesh))
        return jax.jit(partial(KVCache.zeros, cfg, batch, length), out_shardings=shardings)()

    def _prefill_impl(self, params, tokens, valid, cache: KVCache):
        positions = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0)
        hidden, cache = forward(self.cfg, self.mesh, params, tokens, positions, cache=cache, token_valid=valid,
                                return_hidden=True)
        logits = project(self.cfg, self.mesh, params, hidden[:, -1])
        return logits, cache, positions[:, -1] + 1

    def advance(self, params, state: DecodeState, tokens: jax.Array, fed: jax.Array | None = None) -> DecodeState:
        """Feeds tokens [B] (one per row) and returns the state with the next distribution. Traceable.

        Rows where `fed` [B] is False take nothing: their slot of this step stays invalid, and their
        position and next-token distribution stay as they were, so they can resume later unchanged.
        """
        logits, cache = forward(self.cfg, self.mesh, params, tokens[:, None], state.positions[:, None],
                                cache=state.cache, token_valid=None if fed is None else fed[:, None])
        if fed is None:
            return state.replace(cache=cache, logits=logits[:, -1], positions=state.positions + 1)
        return state.replace(cache=cache, logits=jnp.where(fed[:, None], logits[:, -1], state.logits),
                             positions=state.positions + fed)

    def _compact_impl(self, state: DecodeState) -> DecodeState:
        cache = state.cache
        order = jnp.argsort(~cache.valid, axis=1, stable=True)  # each row's valid slots first, in order
        counts = jnp.sum(cache.valid, axis=1)

        valid = jnp.arange(cache.length)[None] < counts[:, None]
        cache = cache.take_slots(order).replace(valid=valid, index=jnp.max(counts).astype(jnp.int32))
        return state.replace(cache=cache)

    def _grow_impl(self, state: DecodeState, cache: KVCache) -> DecodeState:
        old = state.cache

        def into(new: jax.Array, x: jax.Array) -> jax.Array:
            return jax.lax.dynamic_update_slice(new, x, (0,) * x.ndim)

        grown = old.replace(k=jax.tree.map(into, cache.k, old.k), v=jax.tree.map(into, cache.v, old.v),
                            valid=into(cache.valid, old.valid))
        return state.replace(cache=grown)

    def make_room(self, state: DecodeState, slots: int) -> DecodeState:
        """A state whose cache has at least `slots` free slots after its next one to write: rows whose
        steps left slots invalid (paused or finished rows) are compacted, and the cache grows if that
        is not enough. Attention only sees valid slots in order, so no row's output changes."""
        if int(state.cache.index) + slots <= state.cache.length:
            return state
        state = self._compact(state)
        needed = int(state.cache.index) + slots
        if needed > state.cache.length:
            state = self._grow(state, self.new_cache(state.done.shape[0], bucket(needed + state.cache.length // 2)))
        return state

    def _chunk_impl(self, params, state: DecodeState, stop_ids: jax.Array, *, n_steps: int, sampling: Sampling):
        def body(state: DecodeState, _):
            key, sub = jax.random.split(state.key)
            token = jnp.where(state.done, NO_TOKEN, sample(state.logits, sub, sampling))
            done = state.done | jnp.any(token[:, None] == stop_ids, axis=1)
            state = self.advance(params, state.replace(key=key), jnp.maximum(token, 0))
            return state.replace(done=done), token

        state, tokens = jax.lax.scan(body, state, None, length=n_steps)
        return state, tokens.T

    def start(self, params, prompts: Sequence[Sequence[int]], max_new_tokens: int, seed: int = 0,
              pad_id: int = 0, extra_slots: int = 0) -> tuple[DecodeState, int]:
        """Prefills left-padded prompts; returns the state and the number of real rows.

        `extra_slots` enlarges the cache beyond max_new_tokens (e.g. for tool results fed in later)."""
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token (add a BOS token to empty prompts)")
        n = len(prompts)
        rows = padded_rows(n, self.mesh)
        width = bucket(max(len(p) for p in prompts))
        length = width + bucket(max_new_tokens)
        if length > self.cfg.max_positions + 32:
            raise ValueError(f"prompt ({width} tokens, padded) plus {max_new_tokens} new tokens exceeds the "
                             f"model's {self.cfg.max_positions} positions")
        fill = [prompts[0][:1]] * (rows - n)  # rows that only fill the batch: one valid token each
        tokens, valid = left_padded([*prompts, *fill], rows, width, pad_id)
        logits, cache, positions = self._prefill(params, *on_mesh(self.mesh, tokens, valid),
                                                 self.new_cache(rows, width + bucket(max_new_tokens + extra_slots)))
        done = jnp.arange(rows) >= n
        return DecodeState(cache, logits, positions, done, jax.random.key(seed)), n

    def generate(
        self,
        params,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        sampling: Sampling = Sampling(),
        stop_token_ids: Sequence[Sequence[int]] | None = None,
        is_finished: Callable[[int, list[int]], bool] | None = None,
        seed: int = 0,
        pad_id: int = 0,
        chunk: int = 32,
    ) -> list[list[int]]:
        """New token ids per prompt, up to and including the first stop token, at most max_new_tokens.

        `is_finished(row, ids)` is asked after every chunk (e.g. to look for stop strings); rows it
        ends get no more tokens.
        """
        state, n = self.start(params, prompts, max_new_tokens, seed, pad_id)
        rows = state.done.shape[0]
        stops = [list(s) for s in (stop_token_ids or [[]] * n)] + [[]] * (rows - n)
        width = max(1, max(len(s) for s in stops))
        stop_ids = np.full((rows, width), NO_TOKEN, np.int32)
        for r, s in enumerate(stops):
            stop_ids[r, : len(s)] = s
        [stop_ids] = on_mesh(self.mesh, stop_ids)
        n_steps = min(chunk, 1 << math.ceil(math.log2(max(max_new_tokens, 1))))
        out: list[list[int]] = [[] for _ in range(n)]
        finished = np.zeros(rows, bool)
        finished[n:] = True
        while not finished.all():
            state, tokens = self._chunk(params, state, stop_ids, n_steps=n_steps, sampling=sampling)
            tokens = np.asarray(tokens)
            for r in np.flatnonzero(~finished):
                for t in tokens[r]:
                    if t == NO_TOKEN or len(out[r]) >= max_new_tokens:
                        finished[r] = True
                        break
                    out[r].append(int(t))
                    if t in stops[r]:
                        finished[r] = True
                        break
                if len(out[r]) >= max_new_tokens or (is_finished and is_finished(int(r), out[r])):
                    finished[r] = True
            if finished.any():
                state = state.replace(done=jax.device_put(finished, state.done.sharding) | state.done)
        return out


@functools.cache
def shared_decoder(cfg: ModelConfig, mesh: Mesh) -> Decoder:
    """The Decoder of every LM with this config on this mesh: what it compiles, it compiles once (params
    are arguments, never held)."""
    return Decoder(cfg, mesh)
