"""log p(target) through the output projection, fused: hidden [N, D] · W [D, V] (+ bias) → log-softmax →
the target's entry, a vocabulary tile at a time with an online log-sum-exp, so [N, V] never exists in
memory, forward or backward.

    log p(t | h) = h·W[:, t] + b[t] − lse(h),   lse(h) = log Σ_v exp(h·W[:, v] + b[v])

The target's logit is a gather (N columns of W); the kernels compute lse and its VJP:
    ∂lse/∂h = P Wᵀ,  ∂lse/∂W = hᵀ P,  ∂lse/∂b = Σ_n P[n],  P = softmax(h W + b)
each recomputing P tile by tile from the saved lse. Two variants of every kernel:
- "tpu" (Mosaic): the reduction runs along the last grid axis, which TPUs execute in order; the
  partial sums live in the output block across those steps. A block holds whole rows of h (D
  features): VMEM takes them.
- "gpu" (Triton): grid programs run concurrently, so each one loops over its reduction inside the
  kernel, and over D in chunks (a row of D = 4096 features does not fit in registers).
Tiles past the end of V (or N) are masked, so no size needs to divide the tiles. `*_reference` is the
plain XLA computation with the full logits, for tests.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

F32 = jnp.float32
ROW_MULTIPLE = 16  # rows are padded to this (Triton's smallest matmul tile)
# (rows, vocabulary columns) per tile. TPU: at D = 4096 in bf16 the largest kernel (dW: blocks of h and
# W, a float32 block of dW, each double-buffered) takes 8 MiB of VMEM, half of a v3 core's or v5e's.
BLOCKS = {"tpu": (128, 128), "gpu": (64, 128)}


def vocab_logprobs_reference(hidden: jax.Array, w: jax.Array, b: jax.Array | None, targets: jax.Array) -> jax.Array:
    """hidden [N, D], W [D, V], b [V] or None, targets [N] → log p(target) [N], float32."""
    logits = jnp.dot(hidden, w.astype(hidden.dtype), preferred_element_type=F32)
    if b is not None:
        logits = logits + b.astype(F32)
    return jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), targets[:, None], axis=1)[:, 0]


# -- the math of one tile, shared by both variants ---------------------------------------------------
def _dot(a, b, contract: tuple[int, int]):
    return jax.lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((), ())), preferred_element_type=F32)


def _col_mask(start, width: int, low, high):
    """[1, width]: columns start + c that lie in [low, high)."""
    cols = start + jax.lax.broadcasted_iota(jnp.int32, (1, width), 1)
    return (cols >= low) & (cols < high)


def _row_mask(start, height: int, low, high):
    rows = start + jax.lax.broadcasted_iota(jnp.int32, (height, 1), 0)
    return (rows >= low) & (rows < high)


def _masked_logits(s, bias, cols):
    return jnp.where(cols, s + bias.astype(F32), -jnp.inf)


def _online_lse(m, l, s):
    """Running (max, Σ exp(· − max)) of each row, [n, 1] each, after logits s [n, v]."""
    m_new = jnp.maximum(m, s.max(axis=1, keepdims=True))
    return m_new, l * jnp.exp(m - m_new) + jnp.exp(s - m_new).sum(axis=1, keepdims=True)


def _probs_times_g(s, lse, g):
    """The lse cotangent g [n, 1] spread over the tile: g · softmax, [n, v]."""
    return jnp.exp(s - lse) * g


# -- TPU (Mosaic): reduction over the last grid axis ---------------------------------------------
def _tpu_forward_kernel(h_ref, w_ref, b_ref, m_ref, l_ref, *, v_total: int, block_v: int):
    j = pl.program_id(1)

    @pl.when(j == 0)
    def _():
        m_ref[...] = jnp.full(m_ref.shape, -jnp.inf, F32)
        l_ref[...] = jnp.zeros(l_ref.shape, F32)

    cols = _col_mask(j * block_v, block_v, 0, v_total)
    s = _masked_logits(_dot(h_ref[...], jnp.where(cols, w_ref[...], 0), (1, 0)), b_ref[...], cols)
    m_ref[...], l_ref[...] = _online_lse(m_ref[...], l_ref[...], s)


def _tpu_dh_kernel(h_ref, w_ref, b_ref, lse_ref, g_ref, dh_ref, *, v_total: int, block_v: int):
    j = pl.program_id(1)

    @pl.when(j == 0)
    def _():
        dh_ref[...] = jnp.zeros(dh_ref.shape, F32)

    cols = _col_mask(j * block_v, block_v, 0, v_total)
    w = jnp.where(cols, w_ref[...], 0)
    s = _masked_logits(_dot(h_ref[...], w, (1, 0)), b_ref[...], cols)
    p = _probs_times_g(s, lse_ref[...], g_ref[...])
    dh_ref[...] += _dot(p.astype(w.dtype), w, (1, 1))


def _tpu_dw_kernel(h_ref, w_ref, b_ref, lse_ref, g_ref, dw_ref, db_ref, *, v_total: int, n_total: int,
                   block_v: int, block_n: int):
    j, i = pl.program_id(0), pl.program_id(1)

    @pl.when(i == 0)
    def _():
        dw_ref[...] = jnp.zeros(dw_ref.shape, F32)
        db_ref[...] = jnp.zeros(db_ref.shape, F32)

    cols = _col_mask(j * block_v, block_v, 0, v_total)
    rows = _row_mask(i * block_n, block_n, 0, n_total)
    h = jnp.where(rows, h_ref[...], 0)
    s = _masked_logits(_dot(h, jnp.where(cols, w_ref[...], 0), (1, 0)), b_ref[...], cols)
    p = jnp.where(rows, _probs_times_g(s, lse_ref[...], g_ref[...]), 0)
    dw_ref[...] += _dot(h, p.astype(h.dtype), (0, 0))
    db_ref[...] += p.sum(axis=0, keepdims=True)


def _tpu_calls(n: int, d: int, v: int, block_n: int, block_v: int, interpret: bool):
    from jax.experimental.pallas import tpu as pltpu

    grid_nv = (pl.cdiv(n, block_n), pl.cdiv(v, block_v))
    rows = pl.BlockSpec((block_n, d), lambda i, j: (i, 0))
    row_vec = pl.BlockSpec((block_n, 1), lambda i, j: (i, 0))
    w_tile = pl.BlockSpec((d, block_v), lambda i, j: (0, j))
    b_tile = pl.BlockSpec((1, block_v), lambda i, j: (0, j))
    params = pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary"))
    vec = jax.ShapeDtypeStruct((n, 1), F32)
    lse_parts = pl.pallas_call(
        functools.partial(_tpu_forward_kernel, v_total=v, block_v=block_v), grid=grid_nv,
        in_specs=[rows, w_tile, b_tile], out_specs=[row_vec, row_vec], out_shape=[vec, vec],
        compiler_params=params, interpret=interpret, name="vocab_lse_tpu")

    def forward(h, w, b):
        m, l = lse_parts(h, w, b)
        return m + jnp.log(l)

    dh = pl.pallas_call(
        functools.partial(_tpu_dh_kernel, v_total=v, block_v=block_v), grid=grid_nv,
        in_specs=[rows, w_tile, b_tile, row_vec, row_vec], out_specs=rows,
        out_shape=jax.ShapeDtypeStruct((n, d), F32), compiler_params=params, interpret=interpret,
        name="vocab_lse_dh_tpu")
    swap = lambda spec: pl.BlockSpec(spec.block_shape, lambda j, i: spec.index_map(i, j))  # noqa: E731
    dw = pl.pallas_call(
        functools.partial(_tpu_dw_kernel, v_total=v, n_total=n, block_v=block_v, block_n=block_n),
        grid=grid_nv[::-1], in_specs=[swap(rows), swap(w_tile), swap(b_tile), swap(row_vec), swap(row_vec)],
        out_specs=[swap(w_tile), swap(b_tile)],
        out_shape=[jax.ShapeDtypeStruct((d, v), F32), jax.ShapeDtypeStruct((1, v), F32)],
        compiler_params=params, interpret=interpret, name="vocab_lse_dw_tpu")
    return forward, dh, dw


# -- GPU (Triton): each program loops over its reduction and over D ------------------------------
def _clamped(k, block: int, total: int):
    """Start of tile k of `block` along `total` >= block, moved back to end inside; the part a
    previous tile covered is masked by its caller (no padded copy of the operand)."""
    return jnp.minimum(k * block, total - block)


def _gpu_logits(h_ref, w_ref, col0, block_v: int, block_d: int):
    """h_ref · w_ref[:, col0:col0+block_v], summed over D in chunks."""
    def body(c, acc):
        dd = pl.ds(c * block_d, block_d)
        return acc + _dot(h_ref[:, dd], w_ref[dd, pl.ds(col0, block_v)], (1, 0))

    return jax.lax.fori_loop(0, h_ref.shape[1] // block_d, body, jnp.zeros((h_ref.shape[0], block_v), F32))


def _gpu_forward_kernel(h_ref, w_ref, b_ref, lse_ref, *, v_total: int, block_v: int, block_d: int):
    def body(k, carry):
        start = _clamped(k, block_v, v_total)
        cols = _col_mask(start, block_v, k * block_v, v_total)
        s = _masked_logits(_gpu_logits(h_ref, w_ref, start, block_v, block_d),
                           b_ref[:, pl.ds(start, block_v)], cols)
        return _online_lse(*carry, s)

    init = (jnp.full((h_ref.shape[0], 1), -jnp.inf, F32), jnp.zeros((h_ref.shape[0], 1), F32))
    m, l = jax.lax.fori_loop(0, pl.cdiv(v_total, block_v), body, init)
    lse_ref[...] = m + jnp.log(l)


def _gpu_dh_kernel(h_ref, w_ref, b_ref, lse_ref, g_ref, dh_ref, *, v_total: int, block_v: int, block_d: int):
    d = h_ref.shape[1]
    dh_ref[...] = jnp.zeros(dh_ref.shape, F32)

    def body(k, _):
        start = _clamped(k, block_v, v_total)
        cols = _col_mask(start, block_v, k * block_v, v_total)
        s = _masked_logits(_gpu_logits(h_ref, w_ref, start, block_v, block_d),
                           b_ref[:, pl.ds(start, block_v)], cols)
        p = _probs_times_g(s, lse_ref[...], g_ref[...])

        def chunk(c, _):
            dd = pl.ds(c * block_d, block_d)
            w = w_ref[dd, pl.ds(start, block_v)]
            dh_ref[:, dd] += _dot(p.astype(w.dtype), w, (1, 1))

        jax.lax.fori_loop(0, d // block_d, chunk, None)

    jax.lax.fori_loop(0, pl.cdiv(v_total, block_v), body, None)


def _gpu_dw_kernel(h_ref, w_ref, b_ref, lse_ref, g_ref, dw_ref, db_ref, *, v_total: int, n_total: int,
                   block_v: int, block_n: int, block_d: int):
    d = h_ref.shape[1]
    j = pl.program_id(0)
    dw_ref[...] = jnp.zeros(dw_ref.shape, F32)
    db_ref[...] = jnp.zeros(db_ref.shape, F32)
    cols = _col_mask(j * block_v, block_v, 0, v_total)

    def body(k, _):
        start = _clamped(k, block_n, n_total)
        rows = _row_mask(start, block_n, k * block_n, n_total)
        n_slice = pl.ds(start, block_n)

        def logits_chunk(c, acc):
            dd = pl.ds(c * block_d, block_d)
            return acc + _dot(h_ref[n_slice, dd], jnp.where(cols, w_ref[dd, :], 0), (1, 0))

        s = jax.lax.fori_loop(0, d // block_d, logits_chunk, jnp.zeros((block_n, block_v), F32))
        s = _masked_logits(s, b_ref[...], cols)
        p = jnp.where(rows, _probs_times_g(s, lse_ref[n_slice, :], g_ref[n_slice, :]), 0)
        db_ref[...] += p.sum(axis=0, keepdims=True)

        def grad_chunk(c, _):
            dd = pl.ds(c * block_d, block_d)
            h = h_ref[n_slice, dd]
            dw_ref[dd, :] += _dot(h, p.astype(h.dtype), (0, 0))

        jax.lax.fori_loop(0, d // block_d, grad_chunk, None)

    jax.lax.fori_loop(0, pl.cdiv(n_total, block_n), body, None)


def _gpu_calls(n: int, d: int, v: int, block_n: int, block_v: int, interpret: bool):
    from jax.experimental.pallas import triton as plgpu

    block_d = min(128, d & -d)  # the largest power of two dividing D, at most 128
    block_v = min(block_v, 1 << (v.bit_length() - 1))
    block_n_dw = min(block_n, 1 << (n.bit_length() - 1))
    params = plgpu.CompilerParams(num_warps=4, num_stages=2)
    whole = lambda shape: pl.BlockSpec(shape, lambda *_: (0,) * len(shape))  # noqa: E731
    rows = pl.BlockSpec((block_n, d), lambda i: (i, 0))
    row_vec = pl.BlockSpec((block_n, 1), lambda i: (i, 0))
    vec = jax.ShapeDtypeStruct((n, 1), F32)
    grid_n = (pl.cdiv(n, block_n),)
    tiles = dict(v_total=v, block_v=block_v, block_d=block_d)
    forward = pl.pallas_call(
        functools.partial(_gpu_forward_kernel, **tiles), grid=grid_n,
        in_specs=[rows, whole((d, v)), whole((1, v))], out_specs=row_vec, out_shape=vec,
        compiler_params=params, interpret=interpret, name="vocab_lse_gpu")
    dh = pl.pallas_call(
        functools.partial(_gpu_dh_kernel, **tiles), grid=grid_n,
        in_specs=[rows, whole((d, v)), whole((1, v)), row_vec, row_vec], out_specs=rows,
        out_shape=jax.ShapeDtypeStruct((n, d), F32), compiler_params=params, interpret=interpret,
        name="vocab_lse_dh_gpu")
    w_tile = pl.BlockSpec((d, block_v), lambda j: (0, j))
    b_tile = pl.BlockSpec((1, block_v), lambda j: (0, j))
    dw = pl.pallas_call(
        functools.partial(_gpu_dw_kernel, **tiles, n_total=n, block_n=block_n_dw), grid=(pl.cdiv(v, block_v),),
        in_specs=[whole((n, d)), w_tile, b_tile, whole((n, 1)), whole((n, 1))], out_specs=[w_tile, b_tile],
        out_shape=[jax.ShapeDtypeStruct((d, v), F32), jax.ShapeDtypeStruct((1, v), F32)],
        compiler_params=params, interpret=interpret, name="vocab_lse_dw_gpu")
    return forward, dh, dw


# -- the differentiable op ----------------------------------------------------------------------
def _calls(setting: tuple, n: int, d: int, v: int):
    """(forward → lse [n, 1], dh, (dW, db)) pallas calls for `setting` = (backend, interpret, blocks)."""
    backend, interpret, blocks = setting
    block_n, block_v = blocks or BLOCKS[backend]
    if backend == "tpu":
        return _tpu_calls(n, d, v, min(block_n, n), min(block_v, v), interpret)
    if backend == "gpu":
        return _gpu_calls(n, d, v, block_n, block_v, interpret)
    raise ValueError(f"no vocab_logprobs kernel for backend {backend!r}")


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _lse(h, w, b, setting):
    forward, _, _ = _calls(setting, *h.shape, w.shape[1])
    return forward(h, w, b)[:, 0]


def _lse_fwd(h, w, b, setting):
    lse = _lse(h, w, b, setting)
    return lse, (h, w, b, lse)


def _lse_bwd(setting, residuals, g):
    h, w, b, lse = residuals
    _, dh_call, dw_call = _calls(setting, *h.shape, w.shape[1])
    lse, g = lse[:, None], g.astype(F32)[:, None]
    dh = dh_call(h, w, b, lse, g)
    dw, db = dw_call(h, w, b, lse, g)
    return dh.astype(h.dtype), dw.astype(w.dtype), db.astype(b.dtype)


_lse.defvjp(_lse_fwd, _lse_bwd)


def selected_logits(hidden: jax.Array, w: jax.Array, b: jax.Array | None, ids: jax.Array) -> jax.Array:
    """hidden [..., D] and ids [...] (one token per vector) → logit of that token [...], float32."""
    cols = jnp.take(w, ids, axis=1)  # [D, ...]
    logits = jnp.einsum("...d,d...->...", hidden.astype(F32), cols.astype(F32))
    return logits + (b[ids].astype(F32) if b is not None else 0.0)


def vocab_logsumexp(hidden: jax.Array, w: jax.Array, b: jax.Array | None, *, backend: str = "tpu",
                    interpret: bool = False, blocks: tuple[int, int] | None = None) -> jax.Array:
    """log Σ_v exp(hidden·W[:, v] + b[v]): hidden [N, D], W [D, V], b [V] or None → [N], float32;
    differentiable in hidden, W and b. backend "tpu" or "gpu" picks the kernel variant; interpret=True
    runs it on any backend (the CPU's only way); blocks = (rows, vocabulary columns) per tile."""
    n = hidden.shape[0]
    h = jnp.pad(hidden, ((0, -n % ROW_MULTIPLE), (0, 0)))
    bias = jnp.zeros((1, w.shape[1]), w.dtype) if b is None else b.reshape(1, -1)
    return _lse(h, w, bias, (backend, interpret, blocks))[:n]


def vocab_logprobs(hidden: jax.Array, w: jax.Array, b: jax.Array | None, targets: jax.Array, *,
                   backend: str = "tpu", interpret: bool = False,
                   blocks: tuple[int, int] | None = None) -> jax.Array:
    """hidden [N, D], W [D, V], b [V] or None, targets [N] → log p(target) [N], float32 (arguments as
    vocab_logsumexp's)."""
    lse = vocab_logsumexp(hidden, w, b, backend=backend, interpret=interpret, blocks=blocks)
    return selected_logits(hidden, w, b, targets) - lse


def self_check(backend: str, d_model: int = 128, dtype: str = "float32", interpret: bool = False) -> None:
    """Raises unless a small instance at the caller's D and dtype (rows and vocabulary that no tile
    divides) matches the reference on this backend, forward and backward, within bf16 accuracy (TPUs
    multiply float32 in bf16 passes by default). A D too wide for the chip's memory fails here."""
    keys = jax.random.split(jax.random.key(0), 4)
    h = jax.random.normal(keys[0], (40, d_model), dtype)
    w = (jax.random.normal(keys[1], (d_model, 1000)) / math.sqrt(d_model)).astype(dtype)
    b, t = jax.random.normal(keys[2], (1000,), dtype), jax.random.randint(keys[3], (40,), 0, 1000)

    def run(fn):
        return jax.jit(jax.value_and_grad(lambda h, w, b: fn(h, w, b, t).sum(), argnums=(0, 1, 2)))(h, w, b)

    got = run(functools.partial(vocab_logprobs, backend=backend, interpret=interpret))
    for a, r in zip(jax.tree.leaves(got), jax.tree.leaves(run(vocab_logprobs_reference))):
        a, r = a.astype(F32), r.astype(F32)
        error, scale = float(jnp.abs(a - r).max()), max(1.0, float(jnp.abs(r).max()))
        if not error <= 2e-2 * scale:
            raise AssertionError(f"vocab_logprobs is off its reference by {error:.3g} (scale {scale:.3g})")
