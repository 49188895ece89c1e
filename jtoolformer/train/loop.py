"""`train`: fine-tune a decoder LM on packed batches, resumably, into a run directory; `train_on`: the
same on a data spec (C*, a corpus; see train/data.py) read through the grain pipeline.

The run directory gets the resolved `train_config.yaml`, `model.yaml`, `tokenizer/`, `checkpoints/`
(orbax: the latest state and the best by held-out perplexity), `metrics.jsonl`, `tensorboard/` and,
at the end, `hf/final` and `hf/best` (Hugging Face checkpoint directories). Calling `train` again on a
run directory that has checkpoints resumes from the latest one, data iterator position included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import yaml
from jax.sharding import Mesh

from jtoolformer import config
from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.errors import UsageError
from jtoolformer.lm import LM, load_model
from jtoolformer.models import ModelConfig, load_model_config, param_shardings
from jtoolformer.sharding import make_mesh
from jtoolformer.train.batches import Batch, ResumableIterator, check_batch, to_global
from jtoolformer.train.checkpointing import Checkpoints
from jtoolformer.train.config import TrainConfig
from jtoolformer.train.data import open_source, open_train_data
from jtoolformer.train.export import (CHECKPOINT_DIR, HF_DIR, MODEL_FILE, TOKENIZER_DIR, export_params,
                                      target_params)
from jtoolformer.train.flops import measure_peak_flops, train_flops_per_token
from jtoolformer.train.interrupts import StopRequests
from jtoolformer.train.metrics import MetricsLog, Throughput
from jtoolformer.train.step import Trainer, TrainState

CONFIG_FILE = "train_config.yaml"

ModelSpec = LM | ModelConfig | str | Path


@dataclass
class TrainResult:
    params: Any  # the params after the last step run (sharded over the run's mesh)
    step: int
    history: list[dict[str, float]]  # the records this call logged (metrics.jsonl has the whole run)
    best: tuple[int, float] | None  # (step, held-out perplexity) of the best checkpoint
    stopped: bool  # stopped early on a signal or preemption; call `train` again to resume


def train_mesh(cfg: TrainConfig) -> Mesh:
    return make_mesh(cfg.mesh.data, cfg.mesh.fsdp, cfg.mesh.tensor)


def evaluate(trainer: Trainer, params: Any, batches: Iterable[Batch]) -> float:
    """Perplexity over all masked tokens of `batches` (summed in float64 on the host)."""
    total = count = 0.0
    for i, batch in enumerate(batches):
        check_batch(batch, f"held-out batch {i}")
        loss_sum, tokens = trainer.eval_sums(params, to_global(batch, trainer.mesh))
        total += float(loss_sum)
        count += float(tokens)
    if count == 0:
        raise ValueError("the held-out batches have no token with loss_mask set")
    return math.exp(total / count)


def _save_model_files(run_dir: Path, cfg: ModelConfig, tokenizer: Tokenizer | None) -> None:
    (run_dir / MODEL_FILE).write_text(yaml.safe_dump({"model": dataclasses.asdict(cfg)}, sort_keys=False))
    if tokenizer is not None:
        (run_dir / TOKENIZER_DIR).mkdir(exist_ok=True)
        tokenizer.save(run_dir / TOKENIZER_DIR)


def _initial_state(cfg: TrainConfig, model: ModelSpec, run_dir: Path, mesh: Mesh,
                   checkpoints: Checkpoints) -> tuple[Trainer, TrainState, Any]:
    """The trainer and the state to start from (restored when the run has a checkpoint), plus the data
    iterator state to restore (None on a fresh start)."""
    latest = checkpoints.latest_step()
    compute = dict(dtype=cfg.dtype, remat=cfg.remat)
    if latest is not None:
        model_cfg = load_model_config(run_dir / MODEL_FILE, **compute)
        trainer = Trainer(model_cfg, mesh, cfg.optim, cfg.steps, cfg.micro_batches)
        state, data_state = checkpoints.restore(latest, trainer.abstract_state())
        return trainer, state, data_state
    lm = model if isinstance(model, LM) else load_model(model, mesh=mesh)
    model_cfg = lm.config.replace(**compute)
    if jax.process_index() == 0:
        _save_model_files(run_dir, model_cfg, lm.tokenizer)
    trainer = Trainer(model_cfg, mesh, cfg.optim, cfg.steps, cfg.micro_batches)
    return trainer, trainer.init_state(lm.params, cfg.seed), None


def _export(run_dir: Path, trainer: Trainer, state: TrainState, checkpoints: Checkpoints,
            best: tuple[int, float] | None) -> None:
    if jax.process_count() > 1:
        print(f"multi-host run: export the params on one host with `jtoolformer train --export best "
              f"--out {run_dir}` (or --export latest)")
        return
    export_params(state.params, trainer.model_cfg, run_dir, run_dir / HF_DIR / "final")
    if best is not None:
        step = best[0]
        params = state.params if step == int(state.step) else checkpoints.restore_params(
            step, target_params(trainer.model_cfg, trainer.mesh))
        export_params(params, trainer.model_cfg, run_dir, run_dir / HF_DIR / "best")


def train(cfg: TrainConfig, model: ModelSpec | None, train_batches: ResumableIterator,
          eval_batches: Iterable[Batch] | None, out_dir: str | Path) -> TrainResult:
    """Fine-tune `model` (an LM, or anything `load_model` takes; None: `cfg.model`) for `cfg.steps`
    optimizer steps on `train_batches`, evaluating held-out perplexity on `eval_batches` (iterated
    afresh each time) every `cfg.checkpoint.eval_every` steps and at the end. Resumes when `out_dir`
    already has checkpoints (the model's weights are then not used).

    An LM's params are donated to the training state (no second copy on the devices); on return the
    LM holds the trained params, placed on its own mesh."""
    if not isinstance(train_batches, ResumableIterator):
        raise TypeError(f"train_batches ({type(train_batches).__name__}) must be an iterator with "
                        "get_state() and set_state(state), such as the grain pipeline's (train/data.py)")
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        config.save(cfg, run_dir / CONFIG_FILE)
    mesh = train_mesh(cfg)
    checkpoints = Checkpoints(run_dir / CHECKPOINT_DIR, cfg.checkpoint.async_save)
    try:
        trainer, state, data_state = _initial_state(cfg, cfg.model if model is None else model, run_dir, mesh,
                                                    checkpoints)
        if data_state is not None:
            train_batches.set_state(data_state)
        result = _loop(cfg, trainer, state, train_batches, eval_batches, run_dir, checkpoints)
        if isinstance(model, LM):
            model.params = jax.device_put(result.params, param_shardings(model.config, model.mesh))
        return result
    finally:
        checkpoints.wait()
        checkpoints.close()


def train_on(cfg: TrainConfig, lm: LM | None, data_spec: str | Path, out_dir: str | Path,
             eval_spec: str | Path | None = None) -> TrainResult:
    """`train` on a data spec: an annotation run directory (its C*), a .jsonl of texts, a folder of .txt
    files or a TFDS spec; held-out perplexity on `eval_spec`'s texts, or, without it, on `data.held_out`
    of the training documents (train/data.py). `lm` None: `cfg.model`, loaded on the run's mesh; its
    tokenizer reads the texts."""
    # The output folder and the data are checked before the model loads.
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    corpus_dir = cfg.data.tfds_dir or Path(out_dir) / "corpus_tfds"
    for spec in filter(None, (data_spec, eval_spec)):
        open_source(spec, corpus_dir)
    if lm is None:
        lm = load_model(cfg.model, mesh=train_mesh(cfg))
    if lm.tokenizer is None:
        raise UsageError(f"model {cfg.model!r} has no tokenizer to read {data_spec} with; use a checkpoint "
                         "directory with tokenizer.json, a .gguf, or smollm2-135m")
    data = open_train_data(cfg, lm.tokenizer, data_spec, corpus_dir, eval_spec)
    if jax.process_index() == 0:
        held_out = "no" if data.texts.held_out is None else len(data.texts.held_out)
        print(f"training on {len(data.texts.train)} texts ({data.texts.over_cap} over "
              f"data.max_examples_per_tool left out); {held_out} held-out texts")
    return train(cfg, lm, data.batches, data.held_out, out_dir)


@dataclass
class _Progress:
    """Where a run's loop stands."""

    state: TrainState
    step: int
    data_state: Any  # the train iterator's state after the batch of `step`
    best: tuple[int, float] | None
    saved: bool = True  # the current state is in a checkpoint (or is the start)
    stopped: bool = False


def _loop(cfg: TrainConfig, trainer: Trainer, state: TrainState, train_batches: ResumableIterator,
          eval_batches: Iterable[Batch] | None, run_dir: Path, checkpoints: Checkpoints) -> TrainResult:
    start = int(state.step)
    throughput = Throughput(train_flops_per_token(trainer.model_cfg), _peak_flops(cfg, trainer))
    log = MetricsLog(run_dir, start, cfg.steps, active=jax.process_index() == 0)
    run = _Progress(state, start, train_batches.get_state(), checkpoints.best())
    try:
        with StopRequests() as signals:
            while run.step < cfg.steps and not run.stopped:
                batch = _next_batch(cfg, train_batches, run, checkpoints)
                run.data_state = train_batches.get_state()
                run.state, metrics = trainer.step(run.state, to_global(batch, trainer.mesh))
                run.step += 1
                log.advance()
                if run.step == start + 1:  # the first step compiled; time from its end
                    jax.block_until_ready(metrics)
                    throughput.restart()
                else:
                    throughput.add(cfg.global_batch * cfg.seq_len)
                _after_step(cfg, trainer, run, metrics, eval_batches, checkpoints, signals, log, throughput)
        if run.stopped:
            print(f"stopped at step {run.step} of {cfg.steps}; run again on {run_dir} to resume")
        checkpoints.wait()
        if not run.stopped:
            _export(run_dir, trainer, run.state, checkpoints, run.best)
    finally:
        log.close()
    return TrainResult(run.state.params, run.step, log.records, run.best, run.stopped)


def _peak_flops(cfg: TrainConfig, trainer: Trainer) -> float:
    if cfg.peak_tflops_per_device is not None:
        return cfg.peak_tflops_per_device * 1e12 * trainer.mesh.devices.size
    return measure_peak_flops(trainer.mesh, trainer.model_cfg.dtype)


def _next_batch(cfg: TrainConfig, train_batches: ResumableIterator, run: _Progress, checkpoints: Checkpoints) -> Batch:
    """The next train batch, checked; a run out of batches saves where it is and fails."""
    try:
        batch = next(train_batches)
    except StopIteration:
        if not run.saved:
            checkpoints.save(run.state, run.data_state, None)
        raise ValueError(f"the train batches ran out after {run.step} of {cfg.steps} steps; give an "
                         "iterator that repeats, or fewer steps") from None
    check_batch(batch, f"train batch {run.step + 1}", (cfg.global_batch // jax.process_count(), cfg.seq_len))
    return batch


def _after_step(cfg: TrainConfig, trainer: Trainer, run: _Progress, metrics: dict, eval_batches: Iterable[Batch] | None,
                checkpoints: Checkpoints, signals: StopRequests, log: MetricsLog, throughput: Throughput) -> None:
    """Logs, evaluates, checkpoints and notes a stop request, as far as each is due at this step."""
    step, record = run.step, {}
    if step % cfg.log_every == 0 or step == cfg.steps:
        record = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if throughput.tokens:
            record.update(throughput.rates())
    eval_ppl = None
    if eval_batches is not None and (step % cfg.checkpoint.eval_every == 0 or step == cfg.steps):
        eval_ppl = record["eval_ppl"] = evaluate(trainer, run.state.params, eval_batches)
        if run.best is None or eval_ppl <= run.best[1]:  # a tie: the later step, as orbax keeps
            run.best = (step, eval_ppl)
    run.stopped = signals.requested if jax.process_count() == 1 else checkpoints.reached_preemption(step)
    run.saved = step % cfg.checkpoint.save_every == 0 or eval_ppl is not None or step == cfg.steps or run.stopped
    if run.saved:
        checkpoints.save(run.state, run.data_state, eval_ppl)
    if record:
        log.write(step, record)
    if record or run.saved:
        throughput.restart()
