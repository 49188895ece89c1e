"""Attention to prefixes kept once per group of rows equals attention to each row's prefix copied
into that row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
