"""Where training metrics go: TensorBoard, `metrics.jsonl` in the run directory, and a tqdm bar.

On resumption from step s, records after s (written by the run that was stopped, then redone) are
dropped from both the JSONL file and TensorBoard, so the run's curve reads as if it had never stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tensorboardX import SummaryWriter
from tqdm.auto import tqdm

METRICS_FILE = "metrics.jsonl"


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class MetricsLog:
    """Records metrics per step; inactive (no files, no bar) on every process but the first."""

    def __init__(self, run_dir: str | Path, start_step: int, total_steps: int, active: bool = True):
        self.active = active
        self.records: list[dict[str, float]] = []
        if not active:
            return
        run_dir = Path(run_dir)
        self.path = run_dir / METRICS_FILE
        kept = [r for r in read_metrics(run_dir) if r["step"] <= start_step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1)
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def advance(self) -> None:
        if self.active:
            self.bar.update()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **metrics}
        self.records.append(record)
        if not self.active:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in metrics.items():
            self.tensorboard.add_scalar(name, value, step)
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k in ("loss", "eval_ppl", "mfu")},
                             refresh=False)

    def close(self) -> None:
        if self.active:
            self.tensorboard.close()
            self.bar.close()


class Throughput:
    """Tokens per second and MFU over the steps since the last `restart` (the device must be idle at
    both ends: callers restart after a host sync)."""

    def __init__(self, flops_per_token: float, peak_flops: float):
        self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
        self.restart()

    def restart(self) -> None:
        self.start, self.tokens = time.perf_counter(), 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rates(self) -> dict[str, float]:
        tokens_per_s = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        return {"tokens_per_s": tokens_per_s, "mfu": tokens_per_s * self.flops_per_token / self.peak_flops}
