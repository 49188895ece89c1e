"""The train step: the same update on any mesh, with any number of micro-batches, against a plain loss."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import make_batches, pattern_texts, token_ids
from jtoolformer.models import DecoderLM, init_params
from jtoolformer.sharding import make_mesh
from jtoolformer.train.batches import to_global
from jtoolformer.train.config import OptimConfig
from jtoolformer.train.step import Trainer, train_step_program

# The paper's rate: Adam's first update is lr·g/(|g|+eps), so for the rare gradients near eps rounding
# noise moves the update by a fraction of lr, which must stay below 1e-5 of the params.
OPTIM = OptimConfig(learning_rate=1e-5, warmup_fraction=0.0, weight_decay=0.1, clip_norm=1.0)


def one_device():
    return make_mesh(1, 1, 1, devices=jax.devices()[:1])


def run(cfg, mesh, batch, micro_batches=1):
    """One step from the same initial params."""
    trainer = Trainer(cfg, mesh, OPTIM, 10, micro_batches)
    state = trainer.init_state(initial_params(cfg), seed=0)
    state, metrics = trainer.step(state, to_global(batch, mesh))
    return trainer, state, jax.device_get(metrics)


def plain_loss(cfg, params, batch):
    """Mean next-token cross-entropy over the masked tokens, written out directly."""
    logits, _ = DecoderLM(cfg).apply({"params": params}, batch["inputs"], batch["positions"],
                                     segment_ids=batch["segment_ids"])
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, batch["targets"][..., None], axis=-1)[..., 0]
    return jnp.sum(nll * batch["loss_mask"]) / jnp.sum(batch["loss_mask"])


@functools.cache
def initial_params(cfg):
    return jax.device_get(init_params(cfg, jax.random.key(0), one_device()))


@pytest.fixture(scope="module")
def batch():
    return make_batches(48, seed=0)[0]


@pytest.fixture(scope="module")
def reference(tiny_cfg, batch):
    _, state, metrics = run(tiny_cfg, one_device(), batch)
    return jax.device_get(state.params), metrics


@pytest.fixture(scope="module")
def plain_grads(tiny_cfg, batch):
    return jax.jit(jax.value_and_grad(lambda p: plain_loss(tiny_cfg, p, batch)))(initial_params(tiny_cfg))


def assert_plain_grads(trainer, batch, plain_grads):
    """The trainer's (accumulated, sharded) loss and gradients against plain_loss's on one device."""
    want_loss, want_grads = plain_grads
    params = jax.device_put(initial_params(trainer.model_cfg), trainer.state_shardings.params)
    loss, grads = jax.jit(trainer.loss_and_grads)(params, to_global(batch, trainer.mesh), jax.random.key(0))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(jax.device_get(grads)),
                                 jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max(),
                                   err_msg=jax.tree_util.keystr(path))


def assert_same_step(state, metrics, reference, rtol=1e-5):
    ref_params, ref_metrics = reference
    for key in ref_metrics:
        np.testing.assert_allclose(metrics[key], ref_metrics[key], rtol=rtol, err_msg=key)
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(jax.device_get(state.params)),
                                 jax.tree.leaves(ref_params)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 8, 1), (2, 2, 2)])
def test_mesh_step_equals_one_device(tiny_cfg, batch, reference, plain_grads, shape):
    trainer, state, metrics = run(tiny_cfg, make_mesh(*shape), batch)
    assert_same_step(state, metrics, reference)
    if shape == (2, 2, 2):  # every axis at once (the gradients' compile costs seconds on a CPU)
        assert_plain_grads(trainer, batch, plain_grads)
    # Adam's moments live exactly where their params do.
    for name in ("mu", "nu"):
        moments = optax.tree_utils.tree_get(state.opt_state, name)
        same = jax.tree.map(lambda m, p: m.sharding == p.sharding, moments, state.params)
        assert all(jax.tree.leaves(same)), name
    fc_in = state.params["h"]["fc_in"]["kernel"]  # [layers, embed, mlp]: embed on fsdp, mlp on tensor
    assert fc_in.addressable_shards[0].data.shape == (2, 64 // shape[1], 256 // shape[2])


def test_micro_batches_equal_one_big_batch(tiny_cfg, batch, reference, plain_grads):
    mesh = make_mesh(2, 1, 4)  # 4 micro-batches of 2 rows, each split over the data axis
    trainer, state, metrics = run(tiny_cfg, mesh, batch, micro_batches=4)
    assert_same_step(state, metrics, reference)
    assert_plain_grads(trainer, batch, plain_grads)


def test_remat_changes_nothing_and_bf16_keeps_float32_masters(tiny_cfg, batch, reference):
    _, state, metrics = run(tiny_cfg.replace(remat=True), one_device(), batch)
    assert_same_step(state, metrics, reference, rtol=1e-6)

    _, state, metrics = run(tiny_cfg.replace(dtype="bfloat16"), one_device(), batch)
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype("float32")}
    assert {x.dtype for x in jax.tree.leaves(optax.tree_utils.tree_get(state.opt_state, "nu"))} == {
        jnp.dtype("float32")}
    np.testing.assert_allclose(metrics["loss"], reference[1]["loss"], rtol=1e-2)


def test_packed_and_padded_rows_give_the_same_loss(tiny_cfg):
    packed, padded = make_batches(24, seed=3, mode="pack"), make_batches(24, seed=3, mode="pad")
    assert len(packed) < len(padded)
    mesh = make_mesh(2, 2, 2)
    trainer = Trainer(tiny_cfg, mesh, OPTIM, 10, 1)
    params = jax.device_put(init_params(tiny_cfg, jax.random.key(1), mesh), trainer.state_shardings.params)

    def totals(batches):
        sums = [trainer.eval_sums(params, to_global(b, mesh)) for b in batches]
        return sum(float(s) for s, _ in sums), sum(float(n) for _, n in sums)

    (packed_loss, packed_tokens), (padded_loss, padded_tokens) = totals(packed), totals(padded)
    assert packed_tokens == padded_tokens == sum(len(token_ids(t)) - 1 for t in pattern_texts(24, seed=3))
    np.testing.assert_allclose(packed_loss, padded_loss, rtol=1e-5)


def test_equal_trainers_share_their_compiled_step(tiny_cfg, batch):
    """A new Trainer of the same settings (a notebook's next run) runs the step the first one compiled."""
    run(tiny_cfg, one_device(), batch)
    compiled = train_step_program._cache_size()
    _, _, metrics = run(tiny_cfg, one_device(), batch)
    assert train_step_program._cache_size() == compiled and np.isfinite(metrics["loss"])
