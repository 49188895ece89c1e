"""Pieces every decoder architecture shares: rotary embeddings, attention over a KV cache, dense layers
with logical axis names."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from jtoolformer.kernels.dispatch import kernel_backend, platform, resolve_impl
from jtoolformer.kernels.prefix_decode_attention import prefix_decode_attention, self_check
from jtoolformer.sharding import active_mesh, constrain

F32 = jnp.float32


def _dot_general_f32(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, **kwargs):
    """dot_general returning float32 on the CPU: on CPUs with AMX/AVX512-BF16, XLA's bf16 matmuls are
    several times faster this way than with a bf16 result. TPUs and GPUs accumulate in float32 anyway
    and return the inputs' dtype: a float32 result there would double every layer's activations and
    weight gradients (GPT-J-6B's train step on a v3-8: 0.1 GiB more per core)."""
    if platform(active_mesh()) != "cpu":
        return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type, **kwargs)
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type=F32, **kwargs)


def dense(features: int, axes: tuple[str, str], *, use_bias: bool, dtype, param_dtype, name: str) -> nn.Dense:
    """A Dense whose kernel [in, out] and bias [out] carry logical axis names; low-precision inputs
    accumulate in float32."""
    return nn.Dense(
        features,
        dot_general=_dot_general_f32 if jnp.dtype(dtype) != F32 else jax.lax.dot_general,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[1],)),
        name=name,
    )


def rotary_angles(positions: jax.Array, rotary_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """sin and cos of position × frequency, [B, T, 1, rotary_dim // 2], float32."""
    inv_freq = 1.0 / theta ** (jnp.arange(0, rotary_dim, 2, dtype=F32) / rotary_dim)
    angles = positions.astype(F32)[..., None] * inv_freq
    return jnp.sin(angles)[:, :, None, :], jnp.cos(angles)[:, :, None, :]


def apply_rotary(x: jax.Array, sin: jax.Array, cos: jax.Array, *, interleaved: bool) -> jax.Array:
    """Rotates the first 2·sin.shape[-1] features of each head of x [B, T, H, D].

    interleaved=True pairs features (0, 1), (2, 3), … (GPT-J's rotate_every_two);
    interleaved=False pairs (i, i + r/2) (NeoX/Llama's rotate_half).
    """
    rot = 2 * sin.shape[-1]
    xr = x[..., :rot].astype(F32)
    if interleaved:
        a, b = xr[..., 0::2], xr[..., 1::2]
    else:
        a, b = xr[..., : rot // 2], xr[..., rot // 2 :]
    ra, rb = a * cos - b * sin, b * cos + a * sin
    if interleaved:
        rotated = jnp.stack([ra, rb], axis=-1).reshape(xr.shape)
    else:
        rotated = jnp.concatenate([ra, rb], axis=-1)
    return jnp.concatenate([rotated.astype(x.dtype), x[..., rot:]], axis=-1)


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array,
              prefix_k: jax.Array | None = None, prefix_v: jax.Array | None = None,
              shared_k: jax.Array | None = None, shared_v: jax.Array | None = None) -> jax.Array:
    """Softmax attention with grouped KV heads. q [B,T,H,D], k [B,K,D,S], v [B,K,S,D] → [B,T,H·D].

    k and v are laid out as the KV cache stores them: both products then contract the right operand's
    major dimension, a plain matmul per (row, head) that XLA:CPU runs several times faster than the
    transposed forms. An optional prefix (keys [G,K,D,P], values [G,K,P,D]) comes before every row's
    slots: the B rows form G equal consecutive groups and each group's queries attend to its own prefix
    in one matmul, so a prefix is read once per group instead of once per row (G = 1: one prefix shared
    by all rows). An optional shared prefix (keys [1,K,D,P0], values [1,K,P0,D]), seen whole by every
    row, comes before that: e.g. a few-shot head that every group's document continues, kept once.
    mask is [B,T,S], or [B,T,P0+P+S] with prefixes. Scores and softmax are float32 whatever the
    compute dtype.
    """
    b, t, h, d = q.shape
    kv_heads, s = k.shape[1], k.shape[3]
    g = h // kv_heads
    q = q.reshape(b, t, kv_heads, g, d).transpose(0, 2, 3, 1, 4)  # [B, K, G, T, D]
    per_row = ((0, 1), (0, 1))
    levels = [(pk, pv) for pk, pv in ((shared_k, shared_v), (prefix_k, prefix_v)) if pk is not None]

    def groups_first(x: jax.Array, n: int) -> jax.Array:  # [B, K, G, T, m] → [n, K, (B/n)·G·T, m]
        x = x.reshape(n, b // n, kv_heads, g, t, x.shape[-1]).transpose(0, 2, 1, 3, 4, 5)
        return x.reshape(n, kv_heads, (b // n) * g * t, x.shape[-1])

    def rows_first(x: jax.Array, n: int) -> jax.Array:  # [n, K, (B/n)·G·T, m] → [B, K, G, T, m]
        x = x.reshape(n, kv_heads, b // n, g, t, x.shape[-1]).transpose(0, 2, 1, 3, 4, 5)
        return x.reshape(b, kv_heads, g, t, x.shape[-1])

    scores = [rows_first(jax.lax.dot_general(groups_first(q, pk.shape[0]), pk, (((3,), (2,)), per_row),
                                             preferred_element_type=F32), pk.shape[0]) for pk, _ in levels]
    scores.append(jax.lax.dot_general(q.reshape(b, kv_heads, g * t, d), k, (((3,), (2,)), per_row),
                                      preferred_element_type=F32).reshape(b, kv_heads, g, t, s))
    scores = jnp.where(mask[:, None, None], jnp.concatenate(scores, axis=-1) / math.sqrt(d), jnp.finfo(F32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jax.lax.dot_general(probs[..., -s:].reshape(b, kv_heads, g * t, s), v, (((3,), (2,)), per_row),
                              preferred_element_type=F32).reshape(b, kv_heads, g, t, d)
    at = 0
    for pk, pv in levels:
        n, length = pk.shape[0], pk.shape[-1]
        out = out + rows_first(jax.lax.dot_general(groups_first(probs[..., at : at + length], n), pv,
                                                   (((3,), (2,)), per_row), preferred_element_type=F32), n)
        at += length
    return out.astype(v.dtype).transpose(0, 3, 1, 2, 4).reshape(b, t, h * d)


def _decode_specs(mesh: Mesh, rows: int, kv_heads: int, groups: int | None,
                  shared: bool) -> tuple[PartitionSpec, ...] | None:
    """shard_map specs of decode_attention's arguments: rows (and prefix groups with them) over the
    batch axes, KV heads over the tensor axis, each where it divides (a shared prefix on every
    device that takes rows); None when nothing is split."""
    batch = tuple(a for a in ("data", "fsdp") if mesh.shape[a] > 1)
    split_rows = batch and rows % math.prod(mesh.shape[a] for a in batch) == 0
    if groups is not None and groups > 1 and split_rows:
        split_rows = groups % math.prod(mesh.shape[a] for a in batch) == 0
    r = batch if split_rows else None
    h = "tensor" if mesh.shape["tensor"] > 1 and kv_heads % mesh.shape["tensor"] == 0 else None
    if r is None and h is None:
        return None
    g = r if groups is not None and groups > 1 else None
    specs = (PartitionSpec(r, h), PartitionSpec(r, h), PartitionSpec(r, h), PartitionSpec(r))
    if groups is not None:
        specs += (PartitionSpec(g, h), PartitionSpec(g, h), PartitionSpec(r))
    return specs + ((PartitionSpec(None, h), PartitionSpec(None, h)) if shared else ())


def decode_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array,
                     prefix_k: jax.Array | None = None, prefix_v: jax.Array | None = None,
                     shared_k: jax.Array | None = None, shared_v: jax.Array | None = None) -> jax.Array:
    """attention() for one new token per row (T = 1, mask [B, 1, P0 + P + S]) by the Pallas kernel of
    jtoolformer.kernels.prefix_decode_attention; under a mesh each device takes its rows and KV heads."""
    b, _, h, d = q.shape
    p0 = 0 if shared_k is None else shared_k.shape[-1]
    p = p0 + (0 if prefix_k is None else prefix_k.shape[-1])
    backend, interpret = kernel_backend(platform(active_mesh()))
    args = (q[:, 0], k, v, mask[:, 0, p:])
    if prefix_k is not None:
        args += (prefix_k, prefix_v, mask[:, 0, p0:p])
    if shared_k is not None:
        args += (shared_k, shared_v)

    def fn(q, k, v, mask, *prefixes):
        grouped = prefixes[:3] if prefix_k is not None else (None, None, None)
        shared = prefixes[-2:] if shared_k is not None else (None, None)
        return prefix_decode_attention(q, k, v, mask, *grouped, *shared, backend=backend, interpret=interpret)

    mesh = active_mesh()
    specs = None if mesh is None else _decode_specs(mesh, b, k.shape[1], None if prefix_k is None else prefix_k.shape[0],
                                                    shared_k is not None)
    if specs is not None:
        fn = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=specs[0], check_vma=False)
    return fn(*args).reshape(b, 1, h * d)


def write_cache(cache: jax.Array | None, new: jax.Array, index: jax.Array, slot_axis: int) -> jax.Array:
    """new written into cache at slot `index` along slot_axis; without a cache, new itself."""
    if cache is None:
        return new
    start = [0] * cache.ndim
    start[slot_axis] = index
    return jax.lax.dynamic_update_slice(cache, new.astype(cache.dtype), start)


def project_qkv(
    x: jax.Array, cfg, *, use_bias: bool, sin: jax.Array, cos: jax.Array, interleaved: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """q [B,T,H,D], k [B,K,D,T] and v [B,K,T,D] (laid out as the cache holds them) from x, rotary
    applied to q and k."""
    b, t, _ = x.shape
    hd = cfg.head_dim
    common = dict(use_bias=use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
    q = dense(cfg.n_heads * hd, ("embed", "heads"), name="q_proj", **common)(x)
    k = dense(cfg.n_kv_heads * hd, ("embed", "kv_heads"), name="k_proj", **common)(x)
    v = dense(cfg.n_kv_heads * hd, ("embed", "kv_heads"), name="v_proj", **common)(x)
    q = q.reshape(b, t, cfg.n_heads, hd)
    k = k.reshape(b, t, cfg.n_kv_heads, hd)
    v = v.reshape(b, t, cfg.n_kv_heads, hd)
    q = apply_rotary(q, sin, cos, interleaved=interleaved)
    k = apply_rotary(k, sin, cos, interleaved=interleaved)
    return constrain(q, ("batch", "length", "act_heads", None)), k.transpose(0, 2, 3, 1), v.transpose(0, 2, 1, 3)


def _depending_on(x: jax.Array, indices: jax.Array) -> jax.Array:
    """`indices`, unchanged, but computed from x: what is gathered with them waits for x. Without it XLA
    gathers every layer's prefix rows up front (hoisted out of a decoding loop, or scheduled first),
    holding a copy of all of them at once: 270 MB for 12 groups of SmolLM2 at 512 tokens. (An
    optimization_barrier would say this, but XLA:CPU drops barriers before it schedules.)"""
    nan = jnp.isnan(x.reshape(-1)[0]).astype(indices.dtype)  # 0 or 1, unknown to the compiler
    return jnp.minimum(indices, jnp.iinfo(indices.dtype).max - nan)


def self_attention(
    x: jax.Array, cfg, *, use_bias: bool, interleaved: bool, out_name: str,
    mask: jax.Array, sin: jax.Array, cos: jax.Array, cache_index: jax.Array,
    k_cache: jax.Array | None, v_cache: jax.Array | None,
    prefix_k: jax.Array | None = None, prefix_v: jax.Array | None = None,
    shared_k: jax.Array | None = None, shared_v: jax.Array | None = None, prefix_rows: jax.Array | None = None,
) -> tuple[jax.Array, tuple[jax.Array | None, jax.Array | None]]:
    """The attention half of a block: projections, rotary, cache write, attention, output projection.
    prefix_rows [G] picks the prefix rows the groups continue, this layer's only."""
    if prefix_rows is not None:
        rows = _depending_on(x, prefix_rows)
        prefix_k, prefix_v = prefix_k[rows], prefix_v[rows]
    q, k, v = project_qkv(x, cfg, use_bias=use_bias, sin=sin, cos=cos, interleaved=interleaved)
    k_all = write_cache(k_cache, k, cache_index, slot_axis=3)
    v_all = write_cache(v_cache, v, cache_index, slot_axis=2)
    key = (cfg.head_dim, v_all.dtype.name, cfg.n_heads // cfg.n_kv_heads)
    decode_step = k_cache is not None and q.shape[1] == 1
    if decode_step and resolve_impl(cfg.attention_impl, "decode attention", self_check, key,
                                    mesh=active_mesh()) == "pallas":
        out = decode_attention(q, k_all, v_all, mask, prefix_k, prefix_v, shared_k, shared_v)
    else:
        out = attention(q, k_all, v_all, mask, prefix_k, prefix_v, shared_k, shared_v)
    out = dense(cfg.d_model, ("heads", "embed"), use_bias=use_bias, dtype=cfg.dtype,
                param_dtype=cfg.param_dtype, name=out_name)(out)
    if k_cache is None:
        return out, (None, None)
    return out, (k_all, v_all)
