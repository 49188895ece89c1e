"""Decode attention over group-shared prefixes (both tile variants, interpreted) against the dense
reference, and in use: a tiny model's decode step with attention_impl="pallas" equals the XLA one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tolerances import assert_close

from jtoolformer.kernels.prefix_decode_attention import (prefix_decode_attention, prefix_decode_attention_reference,
                                                         self_check)
from jtoolformer.models import DecoderLM, KVCache, init_params, load_model_config
from jtoolformer.models.layers import attention
from jtoolformer.sharding import activation_mesh, make_mesh

B, KV, PER_KV, D = 6, 2, 3, 16  # 6 query heads share 2 KV heads


def _inputs(groups: int, p: int, s: int, dtype, seed: int = 0):
    keys = jax.random.split(jax.random.key(seed), 5)
    normal = lambda key, shape: jax.random.normal(key, shape, dtype)  # noqa: E731
    q, k, v = normal(keys[0], (B, KV * PER_KV, D)), normal(keys[1], (B, KV, D, s)), normal(keys[2], (B, KV, s, D))
    prefix_k, prefix_v = normal(keys[3], (groups, KV, D, p)), normal(keys[4], (groups, KV, p, D))
    rng = np.random.default_rng(seed)
    mask = jnp.asarray(np.arange(s)[None] < rng.integers(1, s + 1, B)[:, None])  # ragged: row r sees its first n_r slots
    prefix_mask = jnp.asarray(rng.random((B, p)) < 0.7)
    return q, k, v, mask, prefix_k, prefix_v, prefix_mask


SHAPES = [(1, 301, 37), (3, 5, 130), (2, 129, 1)]  # (groups, prefix, suffix): odd, under and over a block


@pytest.mark.parametrize("backend,groups,p,s,dtype", [
    ("tpu", *SHAPES[0], jnp.float32), ("tpu", *SHAPES[1], jnp.bfloat16), ("tpu", *SHAPES[2], jnp.float32),
    ("gpu", *SHAPES[0], jnp.bfloat16), ("gpu", *SHAPES[1], jnp.float32), ("gpu", *SHAPES[2], jnp.bfloat16)])
def test_kernel_matches_reference_forward_and_backward(backend, groups, p, s, dtype):
    q, k, v, mask, pk, pv, pm = _inputs(groups, p, s, dtype)
    cotangent = jax.random.normal(jax.random.key(9), q.shape, dtype)

    def value_and_vjp(fn):
        out, vjp = jax.vjp(lambda q, k, v, pk, pv: fn(q, k, v, mask, pk, pv, pm), q, k, v, pk, pv)
        return out, vjp(cotangent)

    kernel = lambda *a: prefix_decode_attention(*a, backend=backend, interpret=True)  # noqa: E731
    (out, grads), (ref, ref_grads) = value_and_vjp(kernel), value_and_vjp(prefix_decode_attention_reference)
    assert out.dtype == dtype
    assert_close(out, ref, dtype)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, dtype)
    no_prefix = prefix_decode_attention(q, k, v, mask, backend=backend, interpret=True)
    assert_close(no_prefix, prefix_decode_attention_reference(q, k, v, mask), dtype)


@pytest.mark.parametrize("backend,dtype", [("tpu", jnp.float32), ("gpu", jnp.bfloat16)])
def test_kernel_with_a_shared_prefix_matches_reference(backend, dtype):
    """A prefix every row sees whole (the few-shot head), before the groups' own prefixes."""
    q, k, v, mask, pk, pv, pm = _inputs(2, 45, 19, dtype, seed=3)
    skeys = jax.random.split(jax.random.key(4), 2)
    sk, sv = (jax.random.normal(skeys[0], (1, KV, D, 133), dtype), jax.random.normal(skeys[1], (1, KV, 133, D), dtype))
    cotangent = jax.random.normal(jax.random.key(9), q.shape, dtype)

    def value_and_vjp(fn):
        out, vjp = jax.vjp(lambda q, pk, sk, sv: fn(q, k, v, mask, pk, pv, pm, sk, sv), q, pk, sk, sv)
        return out, vjp(cotangent)

    kernel = lambda *a: prefix_decode_attention(*a, backend=backend, interpret=True)  # noqa: E731
    (out, grads), (ref, ref_grads) = value_and_vjp(kernel), value_and_vjp(prefix_decode_attention_reference)
    assert_close(out, ref, dtype)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, dtype)
    assert not np.allclose(np.asarray(out, np.float32),  # the shared prefix matters
                           np.asarray(prefix_decode_attention_reference(q, k, v, mask, pk, pv, pm), np.float32), atol=1e-2)


@pytest.mark.parametrize("backend,key", [("tpu", (64, "float32", 2)), ("gpu", (32, "bfloat16", 1))])
def test_self_check_passes_where_the_kernel_runs(backend, key):
    self_check(backend, *key, interpret=True)


def test_reference_is_the_models_attention():
    """The reference is what layers.attention computes for one query per row."""
    q, k, v, mask, pk, pv, pm = _inputs(3, 7, 9, jnp.float32)
    full_mask = jnp.concatenate([pm, mask], axis=1)[:, None]
    ours = attention(q[:, None], k, v, full_mask, pk, pv).reshape(q.shape)
    assert_close(prefix_decode_attention_reference(q, k, v, mask, pk, pv, pm), ours, jnp.float32)
    sk, sv = pk[:1, :, :, :5], pv[:1, :, :5]
    with_shared = attention(q[:, None], k, v, jnp.pad(full_mask, ((0, 0), (0, 0), (5, 0)), constant_values=True),
                            pk, pv, sk, sv).reshape(q.shape)
    assert_close(prefix_decode_attention_reference(q, k, v, mask, pk, pv, pm, sk, sv), with_shared, jnp.float32)


@pytest.mark.slow
@pytest.mark.parametrize("config,mesh_shape", [("llama_tiny", (2, 2, 2)), ("gptj_tiny", (4, 1, 2))])
def test_decode_step_with_the_kernel_equals_xla(config, mesh_shape):
    """A decode step of rows grouped over per-group prefixes (picked from more) after a shared one, on a mesh: the kernel split over rows
    (data × fsdp) and KV heads (tensor) by shard_map; GQA (llama) and one KV head per query head."""
    cfg = load_model_config(f"configs/{config}.yaml", scan_layers=True)
    devices = jax.devices()[: int(np.prod(mesh_shape))]
    mesh = make_mesh(*mesh_shape, devices=devices)
    params = init_params(cfg, jax.random.key(0), mesh)
    rows, groups, length, p, p0 = 8, 4, 12, 9, 6
    rng = np.random.default_rng(1)
    keys = jax.random.split(jax.random.key(1), 6)
    k_shape, v_shape = KVCache.shapes(cfg, rows, length)
    cache = KVCache(
        k=jax.random.normal(keys[0], (cfg.n_layers, *k_shape)), v=jax.random.normal(keys[1], (cfg.n_layers, *v_shape)),
        valid=jnp.asarray(np.arange(length)[None] < rng.integers(1, length - 1, rows)[:, None]),
        index=jnp.asarray(length - 1, jnp.int32),
        prefix_k=jax.random.normal(keys[2], (cfg.n_layers, groups + 1, *k_shape[1:3], p)),
        prefix_v=jax.random.normal(keys[3], (cfg.n_layers, groups + 1, v_shape[1], p, v_shape[3])),
        prefix_rows=jnp.asarray([3, 0, 4, 1], jnp.int32),  # the groups' prefixes, picked layer by layer
        prefix_valid=jnp.asarray(rng.random((rows, p)) < 0.8),
        shared_k=jax.random.normal(keys[4], (cfg.n_layers, 1, *k_shape[1:3], p0)),
        shared_v=jax.random.normal(keys[5], (cfg.n_layers, 1, v_shape[1], p0, v_shape[3])))
    tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, (rows, 1)), jnp.int32)
    positions = jnp.asarray(rng.integers(p, p + length, (rows, 1)), jnp.int32)

    def step(impl):
        model = DecoderLM(cfg.replace(attention_impl=impl))

        @jax.jit
        def run(params, cache):
            with activation_mesh(mesh):
                return model.apply({"params": params}, tokens, positions, cache=cache)

        logits, new_cache = run(params, cache)
        return logits, new_cache.k

    (logits, k), (ref_logits, ref_k) = step("pallas"), step("xla")
    assert_close(logits, ref_logits, jnp.float32)
    assert_close(k, ref_k, jnp.float32)  # layer 1's keys follow layer 0's attention
