"""Decode attention (one new token per row) over prefixes shared by groups of rows, with grouped KV heads.

The B rows form G equal consecutive groups; group g's rows all continue prefix g (keys [G, K, D, P],
values [G, K, P, D], each row seeing the prefix slots its mask allows), then each row has its own
suffix KV (keys [B, K, D, S], values [B, K, S, D]: the KV cache's layout). An optional shared prefix
(keys [1, K, D, P0]), seen whole by every row, comes before the grouped one. Flash-decoding: the prefix
and the suffix are cut into blocks of slots, each (group or row, KV head, block) one independent grid
program that returns its unnormalised output with its running max and sum; the partial results, prefix
and suffix alike, are merged by log-sum-exp in XLA. A group's R rows × H/K query heads read their
prefix block once, as one [R·H/K, D] × [D, block] matmul.

Grid programs share nothing, so one kernel serves TPU (Mosaic) and GPU (Triton); they differ only in
tile shapes: Triton's matmuls need at least 16 query rows (padded), and its blocks powers of two.
`*_reference` is the dense computation the model's XLA attention does.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

F32 = jnp.float32
BLOCK = 128  # slots per grid program
QUERY_ROWS = {"tpu": 1, "gpu": 16}  # query rows are padded to a multiple of this


def prefix_decode_attention_reference(q, k, v, mask, prefix_k=None, prefix_v=None, prefix_mask=None,
                                      shared_k=None, shared_v=None):
    """q [B, H, D], k [B, K, D, S], v [B, K, S, D], mask [B, S]; prefix_k [G, K, D, P], prefix_v
    [G, K, P, D], prefix_mask [B, P]; shared_k [1, K, D, P0], shared_v [1, K, P0, D] → [B, H, D]: every
    row's prefixes copied in front of its slots."""
    b, h, d = q.shape
    kv = k.shape[1]
    if prefix_k is not None:
        group = jnp.arange(b) // (b // prefix_k.shape[0])
        k = jnp.concatenate([prefix_k[group], k], axis=3)
        v = jnp.concatenate([prefix_v[group], v], axis=2)
        mask = jnp.concatenate([prefix_mask, mask], axis=1)
    if shared_k is not None:
        k = jnp.concatenate([jnp.broadcast_to(shared_k, (b, *shared_k.shape[1:])), k], axis=3)
        v = jnp.concatenate([jnp.broadcast_to(shared_v, (b, *shared_v.shape[1:])), v], axis=2)
        mask = jnp.concatenate([jnp.ones((b, shared_k.shape[-1]), bool), mask], axis=1)
    qg = q.reshape(b, kv, h // kv, d)
    scores = jnp.einsum("bkgd,bkds->bkgs", qg, k, preferred_element_type=F32) / math.sqrt(d)
    probs = jax.nn.softmax(jnp.where(mask[:, None, None], scores, -jnp.inf), axis=-1)
    out = jnp.einsum("bkgs,bksd->bkgd", probs.astype(v.dtype), v, preferred_element_type=F32)
    return out.reshape(b, h, d).astype(v.dtype)


def _partial_kernel(q_ref, k_ref, v_ref, mask_ref, o_ref, m_ref, l_ref, *, length: int, block: int, scale: float):
    """One block of slots for one set of queries: o = Σ exp(s − m) v, m = max s, l = Σ exp(s − m)."""
    start = pl.program_id(2) * block
    in_row = start + jax.lax.broadcasted_iota(jnp.int32, (1, block), 1) < length
    in_col = start + jax.lax.broadcasted_iota(jnp.int32, (block, 1), 0) < length
    seen = in_row & (mask_ref[...] != 0)
    s = jax.lax.dot_general(q_ref[...], k_ref[...], (((1,), (0,)), ((), ())), preferred_element_type=F32) * scale
    s = jnp.where(seen, s, -jnp.inf)
    m = s.max(axis=1, keepdims=True)
    p = jnp.exp(s - jnp.where(m == -jnp.inf, 0.0, m))
    v = jnp.where(in_col, v_ref[...], 0)  # slots past the end may hold anything, even NaN
    o_ref[...] = jax.lax.dot_general(p.astype(v.dtype), v, (((1,), (0,)), ((), ())), preferred_element_type=F32)
    m_ref[...] = m
    l_ref[...] = p.sum(axis=1, keepdims=True)


def _partials(q, k, v, mask, *, scale: float, backend: str, interpret: bool):
    """Query sets q [A, K, M, D] against their keys [A, K, D, L] and values [A, K, L, D], mask
    [A, 1 or M, L] → o [n, A, K, M, D], m and l [n, A, K, M, 1] over n blocks of slots."""
    a, kv, rows, d = q.shape
    length = k.shape[-1]
    block = BLOCK if length >= BLOCK or backend == "gpu" else length
    n = pl.cdiv(length, block)
    kernel = functools.partial(_partial_kernel, length=length, block=block, scale=scale)
    out_spec = lambda width: pl.BlockSpec((None, None, None, rows, width), lambda i, h, j: (j, i, h, 0, 0))  # noqa: E731
    out_shape = lambda width: jax.ShapeDtypeStruct((n, a, kv, rows, width), F32)  # noqa: E731
    return pl.pallas_call(
        kernel, grid=(a, kv, n),
        in_specs=[
            pl.BlockSpec((None, None, rows, d), lambda i, h, j: (i, h, 0, 0)),
            pl.BlockSpec((None, None, d, block), lambda i, h, j: (i, h, 0, j)),
            pl.BlockSpec((None, None, block, d), lambda i, h, j: (i, h, j, 0)),
            pl.BlockSpec((None, mask.shape[1], block), lambda i, h, j: (i, 0, j)),
        ],
        out_specs=[out_spec(d), out_spec(1), out_spec(1)],
        out_shape=[out_shape(d), out_shape(1), out_shape(1)],
        interpret=interpret, name=f"prefix_decode_attention_{backend}",
    )(q, k, v, mask.astype(jnp.int32))


def _pad_rows(x, axis: int, multiple: int):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, -x.shape[axis] % multiple)
    return jnp.pad(x, pad)


def prefix_decode_attention(q, k, v, mask, prefix_k=None, prefix_v=None, prefix_mask=None, shared_k=None,
                            shared_v=None, *, backend: str = "tpu", interpret: bool = False):
    """As prefix_decode_attention_reference, by the kernel. backend "tpu" or "gpu" picks the tiles;
    interpret=True runs it on any backend (the CPU's only way). A row that sees no slot at all gets 0.
    Decoding is never differentiated in the recipe; the gradient, for completeness, is the reference's."""
    return _attention(q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v, (backend, interpret))


@functools.partial(jax.custom_vjp, nondiff_argnums=(9,))
def _attention(q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v, setting):
    return _kernel_attention(q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v, *setting)


def _attention_fwd(q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v, setting):
    args = (q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v)
    return _attention(*args, setting), args


def _attention_bwd(setting, args, g):
    q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v = args
    _, vjp = jax.vjp(lambda q, k, v, pk, pv, sk, sv: prefix_decode_attention_reference(
        q, k, v, mask, pk, pv, prefix_mask, sk, sv), q, k, v, prefix_k, prefix_v, shared_k, shared_v)
    dq, dk, dv, dpk, dpv, dsk, dsv = vjp(g)
    return dq, dk, dv, None, dpk, dpv, None, dsk, dsv


_attention.defvjp(_attention_fwd, _attention_bwd)


def _kernel_attention(q, k, v, mask, prefix_k, prefix_v, prefix_mask, shared_k, shared_v, backend: str,
                      interpret: bool):
    b, h, d = q.shape
    kv = k.shape[1]
    per_kv = h // kv
    multiple = QUERY_ROWS[backend]
    call = functools.partial(_partials, scale=1 / math.sqrt(d), backend=backend, interpret=interpret)
    o, m, l = call(_pad_rows(q.reshape(b, kv, per_kv, d), 2, multiple), k, v, mask[:, None, :])
    parts = [tuple(x[:, :, :, :per_kv] for x in (o, m, l))]  # each [n, B, K, per_kv, ·]
    levels = [(prefix_k, prefix_v, prefix_mask)]
    if shared_k is not None:
        levels.append((shared_k, shared_v, jnp.ones((b, shared_k.shape[-1]), bool)))
    for pk, pv, pm in levels:
        if pk is None:
            continue
        g = pk.shape[0]
        r = b // g
        # group g's queries, row-major then head: [G, K, R·per_kv, D], each with its row's prefix mask
        qp = q.reshape(g, r, kv, per_kv, d).transpose(0, 2, 1, 3, 4).reshape(g, kv, r * per_kv, d)
        mp = jnp.repeat(pm.reshape(g, r, -1), per_kv, axis=1)

        def rows_first(x, g=g, r=r):  # [n, G, K, R·per_kv (+pad), w] → [n, B, K, per_kv, w]
            x = x[:, :, :, : r * per_kv].reshape(x.shape[0], g, kv, r, per_kv, x.shape[-1])
            return x.transpose(0, 1, 3, 2, 4, 5).reshape(x.shape[0], b, kv, per_kv, x.shape[-1])

        parts.append(tuple(map(rows_first, call(_pad_rows(qp, 2, multiple), pk, pv, _pad_rows(mp, 1, multiple)))))
    o, m, l = (jnp.concatenate(x, axis=0) for x in zip(*parts))
    top = m.max(axis=0)
    weight = jnp.exp(m - jnp.where(top == -jnp.inf, 0.0, top))
    total = (weight * l).sum(axis=0)
    out = (weight * o).sum(axis=0) / jnp.where(total > 0, total, 1.0)
    return out.reshape(b, h, d).astype(v.dtype)


def self_check(backend: str, head_dim: int = 64, dtype: str = "float32", per_kv: int = 2,
               interpret: bool = False) -> None:
    """Raises unless a small instance (a shared prefix, two groups, an odd prefix, ragged suffixes) at the caller's head
    size, dtype and query heads per KV head matches the reference on this backend within bf16 accuracy."""
    keys = jax.random.split(jax.random.key(0), 7)
    normal = lambda key, shape: jax.random.normal(key, shape, dtype)  # noqa: E731
    q, k, v = (normal(keys[0], (4, 2 * per_kv, head_dim)), normal(keys[1], (4, 2, head_dim, 24)),
               normal(keys[2], (4, 2, 24, head_dim)))
    pk, pv = normal(keys[3], (2, 2, head_dim, 200)), normal(keys[4], (2, 2, 200, head_dim))
    sk, sv = normal(keys[5], (1, 2, head_dim, 37)), normal(keys[6], (1, 2, 37, head_dim))
    mask = jnp.arange(24)[None] < jnp.array([[3], [24], [10], [1]])
    pm = jnp.arange(200)[None] < jnp.array([[200], [150], [7], [199]])
    got = jax.jit(functools.partial(prefix_decode_attention, backend=backend, interpret=interpret))(
        q, k, v, mask, pk, pv, pm, sk, sv)
    ref = prefix_decode_attention_reference(q, k, v, mask, pk, pv, pm, sk, sv).astype(F32)
    error = float(jnp.abs(got.astype(F32) - ref).max())
    if not error <= 2e-2 * max(1.0, float(jnp.abs(ref).max())):
        raise AssertionError(f"prefix_decode_attention is off its reference by {error:.3g}")
