"""Attention to a prefix shared by all rows equals attention to that prefix copied into every row."""

import jax
import jax.numpy as jnp
import numpy as np

from jtoolformer.models.layers import attention


def test_shared_prefix_equals_a_copy_per_row():
    b, t, s, p, kv_heads, groups, d = 3, 2, 5, 4, 2, 3, 8
    keys = jax.random.split(jax.random.key(0), 5)
    q = jax.random.normal(keys[0], (b, t, kv_heads * groups, d))
    k = jax.random.normal(keys[1], (b, kv_heads, d, s))
    v = jax.random.normal(keys[2], (b, kv_heads, s, d))
    prefix_k = jax.random.normal(keys[3], (kv_heads, d, p))
    prefix_v = jax.random.normal(keys[4], (kv_heads, p, d))
    mask = jnp.asarray(np.random.default_rng(0).random((b, t, s)) < 0.6).at[:, :, 0].set(True)

    shared = attention(q, k, v, mask, prefix_k, prefix_v)
    copied = attention(q, jnp.concatenate([jnp.broadcast_to(prefix_k, (b, *prefix_k.shape)), k], axis=3),
                       jnp.concatenate([jnp.broadcast_to(prefix_v, (b, *prefix_v.shape)), v], axis=2),
                       jnp.concatenate([jnp.ones((b, t, p), bool), mask], axis=2))
    np.testing.assert_allclose(shared, copied, atol=1e-5, rtol=1e-5)
    assert not np.allclose(shared, attention(q, k, v, mask), atol=1e-3)  # the prefix matters
