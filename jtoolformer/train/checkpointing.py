"""A run's orbax checkpoints: the latest whole state and the best by held-out perplexity.

Each step directory holds three items: `params`, `optimizer` (moments, step counter, RNG) and `data`
(the batch iterator's position, JSON). Held-out perplexities are also kept in `<directory>.eval_ppl.json` beside
them: orbax 0.12's `CheckpointManager.metrics(step)` returns None for a step saved with metrics, so
the best checkpoint could not be found after a restart. Saves are asynchronous: `save` returns once the arrays are
copied off the devices. Restores place every array straight onto the target shardings, so a run
resumes on any mesh shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from jtoolformer.train.step import TrainState

EVAL_PPL = "eval_ppl"


class Checkpoints:
    def __init__(self, directory: str | Path, async_save: bool = True):
        keep = policies.AnyPreservationPolicy([
            policies.LatestN(1),
            policies.BestN(get_metric_fn=lambda m: m[EVAL_PPL], reverse=True, n=1,
                           keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(preservation_policy=keep, enable_async_checkpointing=async_save)
        self.manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)
        self.metrics_path = Path(directory).absolute().with_suffix(".eval_ppl.json")  # beside, not in, orbax's folder

    def _metrics(self) -> dict[int, float]:
        if not self.metrics_path.exists():
            return {}
        return {int(step): float(ppl) for step, ppl in json.loads(self.metrics_path.read_text()).items()}

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best(self) -> tuple[int, float] | None:
        """(step, held-out perplexity) of the best evaluated checkpoint, if any."""
        metrics = self._metrics()
        scored = [(metrics[step], -step) for step in self.manager.all_steps() if step in metrics]
        if not scored:
            return None
        ppl, step = min(scored)  # on a tie the later step, the one orbax's BestN keeps
        return -step, ppl

    def save(self, state: TrainState, data_state: Any, eval_ppl: float | None) -> None:
        step = int(state.step)
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state.params),
            optimizer=ocp.args.StandardSave({"step": state.step, "opt_state": state.opt_state, "rng": state.rng}),
            data=ocp.args.JsonSave(data_state),
        )
        self.manager.save(step, args=args, metrics=None if eval_ppl is None else {EVAL_PPL: eval_ppl}, force=True)
        if eval_ppl is not None and jax.process_index() == 0:
            metrics = self._metrics() | {step: float(eval_ppl)}
            tmp = self.metrics_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({str(k): v for k, v in sorted(metrics.items())}))
            tmp.replace(self.metrics_path)

    def restore(self, step: int, target: TrainState) -> tuple[TrainState, Any]:
        """The state saved at `step`, laid out like `target` (ShapeDtypeStructs with shardings), and the
        data iterator's state."""
        optimizer = {"step": target.step, "opt_state": target.opt_state, "rng": target.rng}
        restored = self.manager.restore(step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(target.params),
            optimizer=ocp.args.StandardRestore(optimizer),
            data=ocp.args.JsonRestore(),
        ))
        opt = restored.optimizer
        return TrainState(opt["step"], restored.params, opt["opt_state"], opt["rng"]), restored.data

    def restore_params(self, step: int, target: Any) -> Any:
        return self.manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(target))).params

    def reached_preemption(self, step: int) -> bool:
        """Whether the pod's preemption notice has reached every host at this step (multi-host runs)."""
        return self.manager.reached_preemption(step)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
