"""The fused output-projection log-probs (both kernel variants, interpreted) and the chunked XLA
version against the full-logits reference, forward and backward, at vocabularies that no tile divides."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tolerances import assert_close

from jtoolformer.annotate import weighted_losses
from jtoolformer.kernels import dispatch
from jtoolformer.kernels.vocab_logprobs import self_check, vocab_logprobs, vocab_logprobs_reference
from jtoolformer.lm import LM
from jtoolformer.losses import logsumexp_over_vocab, token_logprobs, vocab_tiles
from jtoolformer.models import init_params, load_model_config
from jtoolformer.sharding import make_mesh
from jtoolformer.train.config import OptimConfig
from jtoolformer.train.step import Trainer

N, D = 40, 32  # 40 rows: not a multiple of the 16-row padding nor of any row tile


def _inputs(v: int, dtype, bias: bool = True, seed: int = 0):
    keys = jax.random.split(jax.random.key(seed), 5)
    h = jax.random.normal(keys[0], (N, D), dtype)
    w = (jax.random.normal(keys[1], (D, v)) * 0.5).astype(dtype)
    b = jax.random.normal(keys[2], (v,), dtype) if bias else None
    targets = jax.random.randint(keys[3], (N,), 0, v)
    cotangent = jax.random.normal(keys[4], (N,))
    return h, w, b, targets, cotangent


def _value_and_vjp(fn, h, w, b, targets, cotangent):
    args = (h, w) if b is None else (h, w, b)
    out, vjp = jax.vjp(lambda *a: fn(a[0], a[1], a[2] if len(a) > 2 else None, targets), *args)
    return out, vjp(cotangent)


@pytest.mark.parametrize("backend", ["tpu", "gpu"])
@pytest.mark.parametrize("v", [50400, 49152, 32001])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_kernel_matches_reference_forward_and_backward(backend, v, dtype):
    inputs = _inputs(v, dtype, bias=v != 49152)  # 49152: a tied head has no bias
    kernel = lambda h, w, b, t: vocab_logprobs(h, w, b, t, backend=backend, interpret=True)  # noqa: E731
    out, grads = _value_and_vjp(kernel, *inputs)
    ref_out, ref_grads = _value_and_vjp(vocab_logprobs_reference, *inputs)
    assert_close(out, ref_out, dtype)
    assert len(grads) == len(ref_grads)
    for g, r in zip(grads, ref_grads):
        assert g.dtype == r.dtype
        assert_close(g, r, dtype)


@pytest.mark.parametrize("backend", ["tpu", "gpu"])
def test_small_tiles_cover_rows_and_columns_past_the_edges(backend):
    """Tiles smaller than the arrays in both directions, neither dividing them (D = 48: three chunks of
    16 features in the GPU variant)."""
    keys = jax.random.split(jax.random.key(1), 4)
    h, w = jax.random.normal(keys[0], (72, 48)), jax.random.normal(keys[1], (48, 1000)) * 0.3
    b, t = jax.random.normal(keys[2], (1000,)), jax.random.randint(keys[3], (72,), 0, 1000)
    kernel = lambda h, w, b, t: vocab_logprobs(h, w, b, t, backend=backend, interpret=True, blocks=(32, 128))  # noqa: E731
    out, grads = _value_and_vjp(kernel, h, w, b, t, jnp.ones(72))
    ref_out, ref_grads = _value_and_vjp(vocab_logprobs_reference, h, w, b, t, jnp.ones(72))
    for a, r in zip((out, *grads), (ref_out, *ref_grads)):
        assert_close(a, r, jnp.float32)


def test_vocab_chunks_cover_the_vocabulary_without_small_divisors():
    assert vocab_tiles(32001) == (8192, 4)  # was a chunk of 3 columns: 10,667 scan steps
    assert vocab_tiles(50400) == (8192, 7) and vocab_tiles(49152) == (8192, 6) and vocab_tiles(512) == (512, 1)


@pytest.mark.parametrize("v", [50400, 32001])
def test_chunked_xla_logsumexp_counts_every_column_once(v):
    h, w, b, _, _ = _inputs(v, jnp.float32)
    expected = jax.nn.logsumexp(h @ w + b, axis=-1)
    assert_close(logsumexp_over_vocab(h, w, b), expected, jnp.float32)
    # a small last chunk overlapping its neighbour: the overlap must not be counted twice
    assert_close(logsumexp_over_vocab(h, w, b, max_chunk=5000), expected, jnp.float32)


@pytest.mark.parametrize("v", [1000, 1001])
def test_dispatch_pallas_equals_xla_on_a_mesh(v):
    """[B, T, D] hidden states on 8 devices: V = 1000 split among them (log-sum-exps and target
    logits combined across devices), V = 1001 not, so the rows are split instead."""
    keys = jax.random.split(jax.random.key(2), 4)
    h = jax.random.normal(keys[0], (8, 6, D))
    w, b = jax.random.normal(keys[1], (D, v)) * 0.3, jax.random.normal(keys[2], (v,))
    t = jax.random.randint(keys[3], (8, 6), 0, v)
    mesh = make_mesh(data=2, fsdp=2, tensor=2)

    def loss(impl):
        return jax.jit(jax.value_and_grad(lambda h, w, b: token_logprobs(h, w, b, t, impl=impl, mesh=mesh).sum(),
                                          argnums=(0, 1, 2)))(h, w, b)

    (value, grads), (ref_value, ref_grads) = loss("pallas"), loss("xla")
    assert_close(value, ref_value, jnp.float32)
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, jnp.float32)
    with pytest.raises(ValueError, match="expected one of"):
        dispatch.resolve_impl("triton", "token_logprobs")


def test_auto_takes_a_kernel_only_where_it_passes_its_check(caplog):
    """On the CPU auto is XLA; on a TPU or GPU it is the kernel once its self-check passes there, and
    XLA if the check fails (here: the kernel run for real on a CPU, which cannot be). Each fallback
    is logged once."""
    def interpreted(backend, *key):  # the check as it would pass on a TPU or GPU
        self_check(backend, *key, interpret=True)

    dispatch._log_fallback.cache_clear()
    dispatch._passes.cache_clear()

    @jax.jit
    def traced(x):  # the train step asks while jit traces it
        assert dispatch.resolve_impl("auto", "token_logprobs", interpreted, backend="gpu") == "pallas"
        return x

    traced(jnp.ones(1))
    with caplog.at_level(logging.INFO, logger=dispatch.__name__):
        for _ in range(2):
            assert dispatch.resolve_impl("auto", "token_logprobs", self_check) == "xla"
            assert dispatch.resolve_impl("auto", "token_logprobs", self_check, backend="gpu") == "xla"
            assert dispatch.resolve_impl("auto", "token_logprobs", interpreted, (48, "bfloat16"), "tpu") == "pallas"
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "the cpu backend" in m]) == 1
    assert len([m for m in messages if "failed its check on gpu" in m]) == 1
    assert dispatch.resolve_impl("pallas", "token_logprobs", self_check) == "pallas"  # asked for, not checked


@pytest.mark.slow
def test_training_loss_and_filter_scores_with_the_kernel_equal_xla():
    """Both callers: the train step's loss and gradients on a (2, 2, 2) mesh and the filter's L_i(z)."""
    cfg = load_model_config("configs/gptj_tiny.yaml", scan_layers=True)
    mesh = make_mesh(data=2, fsdp=2, tensor=2)
    params = init_params(cfg, jax.random.key(0), mesh)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg.vocab_size, (8, 17)).astype(np.int32)
    batch = {"inputs": ids[:, :-1], "targets": ids[:, 1:], "positions": np.tile(np.arange(16, dtype=np.int32), (8, 1)),
             "segment_ids": np.ones((8, 16), np.int32), "loss_mask": (rng.random((8, 16)) < 0.8).astype(np.float32)}

    def train_and_score(impl):
        impl_cfg = cfg.replace(logprob_impl=impl)
        trainer = Trainer(impl_cfg, mesh, OptimConfig(), steps=10, micro_batches=2)
        loss, grads = jax.jit(trainer.loss_and_grads)(params, batch, jax.random.key(1))
        scores = weighted_losses(LM(impl_cfg, params, None, mesh), ids[0], 5, [[], ids[1, :9].tolist()])
        return loss, grads, scores

    (loss, grads, scores), (ref_loss, ref_grads, ref_scores) = train_and_score("pallas"), train_and_score("xla")
    assert_close(loss, ref_loss, jnp.float32)
    assert_close(scores, ref_scores, jnp.float32)
    for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)):
        assert_close(g, r, jnp.float32)


def test_the_xla_loss_keeps_no_full_logits_for_its_backward_pass():
    """The train step's XLA loss (losses.token_logprobs, impl "xla") recomputes each vocabulary chunk's
    logits in the backward pass: its compiled gradient's temporaries stay well under one [N, V] float32
    array, the logits optax's cross-entropy would keep (and its gradients match that reference)."""
    n, d, v = 512, 64, 32 * 1024  # 32 chunks: XLA unrolls a loop of a few, and then keeps every chunk
    keys = jax.random.split(jax.random.key(3), 3)
    h, w = jax.random.normal(keys[0], (n, d)), jax.random.normal(keys[1], (d, v)) * 0.1
    t = jax.random.randint(keys[2], (n,), 0, v)
    chunked = jax.grad(lambda h, w: token_logprobs(h, w, None, t, impl="xla", max_chunk=1024).sum(), argnums=(0, 1))
    full = jax.grad(lambda h, w: vocab_logprobs_reference(h, w, None, t).sum(), argnums=(0, 1))
    logits_bytes = n * v * 4
    temp = jax.jit(chunked).lower(h, w).compile().memory_analysis().temp_size_in_bytes
    assert temp < 0.2 * logits_bytes
    assert jax.jit(full).lower(h, w).compile().memory_analysis().temp_size_in_bytes >= logits_bytes
    for got, ref in zip(jax.jit(chunked)(h, w), jax.jit(full)(h, w)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=2e-4, rtol=2e-4)
