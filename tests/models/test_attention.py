"""Attention to prefixes kept once per group of rows equals attention to each row's prefix copied
into that row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jtoolformer import load_model
from jtoolformer.models import KVCache, ModelConfig, forward
from jtoolformer.models.layers import attention

B, T, S, P, KV_HEADS, GROUP, D = 6, 2, 5, 4, 2, 3, 8


def _inputs(groups: int):
    keys = jax.random.split(jax.random.key(groups), 5)
    q = jax.random.normal(keys[0], (B, T, KV_HEADS * GROUP, D))
    k = jax.random.normal(keys[1], (B, KV_HEADS, D, S))
    v = jax.random.normal(keys[2], (B, KV_HEADS, S, D))
    prefix_k = jax.random.normal(keys[3], (groups, KV_HEADS, D, P))
    prefix_v = jax.random.normal(keys[4], (groups, KV_HEADS, P, D))
    rng = np.random.default_rng(groups)
    mask = jnp.asarray(rng.random((B, T, P + S)) < 0.6).at[:, :, -S].set(True)
    return q, k, v, prefix_k, prefix_v, mask


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_prefix_per_group_equals_a_copy_per_row(groups):
    q, k, v, prefix_k, prefix_v, mask = _inputs(groups)
    row_group = np.arange(B) // (B // groups)
    kept_once = attention(q, k, v, mask, prefix_k, prefix_v)
    copied = attention(q, jnp.concatenate([prefix_k[row_group], k], axis=3),
                       jnp.concatenate([prefix_v[row_group], v], axis=2), mask)
    np.testing.assert_allclose(kept_once, copied, atol=1e-5, rtol=1e-5)
    assert not np.allclose(kept_once, attention(q, k, v, mask[:, :, P:]), atol=1e-3)  # the prefix matters
    if groups > 1:  # and each group sees its own
        assert not np.allclose(kept_once, attention(q, k, v, mask, prefix_k[::-1], prefix_v[::-1]), atol=1e-3)


@pytest.mark.parametrize("groups", [1, 3])
def test_shared_prefix_before_the_groups_equals_a_copy_per_row(groups):
    """The few-shot head kept once for every row, then each group's own prefix."""
    q, k, v, prefix_k, prefix_v, mask = _inputs(groups)
    shared_k, shared_v = prefix_k[:1, :, :, :3] * 2, prefix_v[:1, :, :3] - 1
    row_group = np.arange(B) // (B // groups)
    full_mask = jnp.pad(mask, ((0, 0), (0, 0), (3, 0)), constant_values=True)
    kept_once = attention(q, k, v, full_mask, prefix_k, prefix_v, shared_k, shared_v)
    copied = attention(q, jnp.concatenate([jnp.broadcast_to(shared_k, (B, *shared_k.shape[1:])), prefix_k[row_group], k], 3),
                       jnp.concatenate([jnp.broadcast_to(shared_v, (B, *shared_v.shape[1:])), prefix_v[row_group], v], 2),
                       full_mask)
    np.testing.assert_allclose(kept_once, copied, atol=1e-5, rtol=1e-5)
    assert not np.allclose(kept_once, attention(q, k, v, mask, prefix_k, prefix_v), atol=1e-3)


def test_a_decoding_loop_gathers_the_groups_prefixes_one_layer_at_a_time():
    """Rows continuing 12 of 16 prefix rows, decoded in a loop: the compiled program's temporaries hold
    about one layer's gathered prefixes, not every layer's (XLA otherwise gathers them all before the
    loop: 270 MB for SmolLM2 at 512 tokens)."""
    cfg = ModelConfig(arch="llama", vocab_size=256, d_model=64, n_layers=8, n_heads=4, d_ff=128,
                      max_positions=1024, scan_layers=False)
    lm = load_model(cfg)
    groups, width = 12, 256
    prefixes = KVCache.zeros(cfg, 16, width)
    head = KVCache.zeros(cfg, 1, 8)
    cache = KVCache.zeros(cfg, groups, 8).replace(prefix_rows=jnp.arange(groups, dtype=jnp.int32)[::-1],
                                                  prefix_valid=jnp.ones((groups, width), bool))

    def decode(params, head, prefixes, cache):
        def step(n, carry):
            cache, token = carry
            logits, cache = forward(cfg, lm.mesh, params, token, jnp.full_like(token, 300) + n,
                                    cache=cache.with_prefixes(head, prefixes))
            return cache.without_prefixes(), jnp.argmax(logits[:, -1:], axis=-1).astype(jnp.int32)

        return jax.lax.fori_loop(0, 4, step, (cache, jnp.zeros((groups, 1), jnp.int32)))

    temp = jax.jit(decode).lower(lm.params, head, prefixes, cache).compile().memory_analysis().temp_size_in_bytes
    one_layer = sum(x.nbytes for x in jax.tree.leaves((prefixes.k[0], prefixes.v[0]))) * groups // 16
    assert temp < 3 * one_layer < cfg.n_layers * one_layer
