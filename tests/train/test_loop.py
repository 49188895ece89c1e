"""`train` end to end: learning, exports, and resumption after a crash or a signal, on the same mesh
or another one."""

import dataclasses
import os
import signal

import jax
import numpy as np
import pytest

from conftest import make_batches, pipeline
from jtoolformer.lm import load_model
from jtoolformer.models import load_model_config, param_shardings
from jtoolformer.train import load_train_config, read_metrics, train
from jtoolformer.train.config import MeshConfig

CURVE = ("loss", "grad_norm", "learning_rate", "loss_tokens", "eval_ppl")


def config(*overrides):
    return load_train_config("configs/train_tiny.yaml", ["peak_tflops_per_device=1", *overrides])


def curve(run_dir):
    return [{k: r[k] for k in ("step", *CURVE) if k in r} for r in read_metrics(run_dir)]


class Stopping:
    """A resumable iterator's batches, until this run asks for its batch number `at` (1-based): then it
    raises `crash`, or delivers SIGINT to this process (as Ctrl-C or a preemption's SIGTERM would) and
    goes on."""

    def __init__(self, batches, at, crash=None):
        self.batches, self.at, self.crash, self.taken = batches, at, crash, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.taken += 1
        if self.taken == self.at:
            if self.crash:
                raise self.crash
            os.kill(os.getpid(), signal.SIGINT)
        return next(self.batches)

    def get_state(self):
        return self.batches.get_state()

    def set_state(self, state):
        self.batches.set_state(state)


def test_loss_goes_down_and_the_best_and_final_params_are_exported(tmp_path):
    cfg = config("steps=30", "checkpoint.eval_every=10", "checkpoint.save_every=10")
    lm = load_model(cfg.model)  # on one device; trained on the config's 8
    result = train(cfg, lm, iter(pipeline(300, seed=1)), pipeline(40, seed=2, epochs=1), tmp_path)

    records = read_metrics(tmp_path)
    losses = [r["loss"] for r in records if "loss" in r]
    ppls = [(r["eval_ppl"], r["step"]) for r in records if "eval_ppl" in r]
    assert [step for _, step in ppls] == [10, 20, 30]
    assert losses[-1] < 0.6 * losses[0] and ppls[-1][0] < 0.5 * ppls[0][0]
    assert result.best == (min(ppls)[1], min(ppls)[0]) and not result.stopped
    assert all(r["mfu"] > 0 and r["tokens_per_s"] > 0 for r in records[1:] if "loss" in r)
    # Only the latest and the best checkpoints are kept.
    assert sorted(os.listdir(tmp_path / "checkpoints")) == sorted({str(result.best[0]), "30"})

    # The LM given now holds the trained params, as does the exported HF directory.
    final = load_model(tmp_path / "hf" / "final")
    ids = make_batches(8, seed=3)[0]["inputs"][:2]
    np.testing.assert_allclose(final.logits(ids), lm.logits(ids), atol=1e-5)
    for got, want in zip(jax.tree.leaves(jax.device_get(lm.params)), jax.tree.leaves(jax.device_get(result.params))):
        np.testing.assert_array_equal(got, want)
    assert (tmp_path / "hf" / "best" / "config.json").exists()


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    """12 steps on (8, 1, 1) at the paper's learning rate, checkpoints every 4, evaluation every 6."""
    cfg = config("steps=12", "log_every=1", "checkpoint.save_every=4", "checkpoint.eval_every=6",
                 "optim.learning_rate=1e-5")
    out = tmp_path_factory.mktemp("unbroken")
    batches = iter(pipeline(300, seed=4))  # 19 batches an epoch: no step sees the same texts twice
    result = train(cfg, None, batches, HELD_OUT, out)
    return cfg, batches.get_state(), out, result


HELD_OUT = pipeline(30, seed=5, epochs=1)


def test_crash_and_sigint_then_resume_is_bitwise_the_unbroken_run(tmp_path, unbroken):
    cfg, final_data_state, out, result = unbroken
    with pytest.raises(RuntimeError, match="disk on fire"):  # at step 8; the last checkpoint is step 6's
        train(cfg, None, Stopping(iter(pipeline(300, seed=4)), at=8, crash=RuntimeError("disk on fire")),
              HELD_OUT, tmp_path)
    assert os.listdir(tmp_path / "checkpoints") == ["6"]

    # Resumed at step 6's data position: steps 7–10, then SIGINT.
    stopped = train(cfg, None, Stopping(iter(pipeline(300, seed=4)), at=4), HELD_OUT, tmp_path)
    assert stopped.stopped and stopped.step == 10

    resumed_batches = iter(pipeline(300, seed=4))
    resumed = train(cfg, None, resumed_batches, HELD_OUT, tmp_path)
    assert resumed.step == 12 and [r["step"] for r in resumed.history] == [11, 12]
    assert resumed_batches.get_state() == final_data_state  # the data iterator went on where it stopped
    assert curve(tmp_path) == curve(out)
    for got, want in zip(jax.tree.leaves(jax.device_get(resumed.params)),
                         jax.tree.leaves(jax.device_get(result.params))):
        np.testing.assert_array_equal(got, want)


def test_resume_on_another_mesh_shape(tmp_path, unbroken):
    cfg, _, out, result = unbroken
    assert train(cfg, None, Stopping(iter(pipeline(300, seed=4)), at=5), HELD_OUT, tmp_path).step == 5

    moved = dataclasses.replace(cfg, mesh=MeshConfig(2, 2, 2))  # the same run, now on a (2, 2, 2) mesh
    resumed = train(moved, None, iter(pipeline(300, seed=4)), HELD_OUT, tmp_path)
    layer = "h" if "h" in resumed.params else "h_1"  # scanned layers stack along a leading axis
    q = resumed.params[layer]["q_proj"]["kernel"]  # [(layers,) embed → fsdp, heads → tensor]
    model_cfg = load_model_config(tmp_path / "model.yaml")
    assert q.sharding == param_shardings(model_cfg, q.sharding.mesh)[layer]["q_proj"]["kernel"]
    assert q.addressable_shards[0].data.shape == ((2,) if layer == "h" else ()) + (32, 32)
    for got, want in zip(jax.tree.leaves(jax.device_get(resumed.params)),
                         jax.tree.leaves(jax.device_get(result.params))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    got, want = curve(tmp_path), curve(out)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for g, w in zip(got, want):
        for key in g:
            assert g[key] == pytest.approx(w[key], rel=1e-5), (g["step"], key)


def test_bad_inputs_are_named(tmp_path):
    cfg = config("steps=2")
    with pytest.raises(TypeError, match="must be an iterator with get_state"):
        train(cfg, None, iter(make_batches(40, seed=6)), None, tmp_path / "a")
    short = iter(pipeline(40, seed=6, seq_len=32))
    with pytest.raises(ValueError, match=r"train batch 1: batch\['inputs'\] has shape \(8, 32\), expected \(8, 64\)"):
        train(cfg, None, short, None, tmp_path / "b")
