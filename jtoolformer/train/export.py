"""Fine-tuned params out of a run directory as Hugging Face checkpoint directories.

A run directory holds `model.yaml` (the model config it trained), `tokenizer/` (when the model had
one) and `checkpoints/`; `export_checkpoint` needs nothing else, so it also serves a pod run whose
hosts could not write HF files themselves: run it afterwards on one host.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

import jax
from jax.sharding import Mesh

from jtoolformer.checkpoints.hf import save_hf
from jtoolformer.models import ModelConfig, abstract_params, load_model_config, param_shardings
from jtoolformer.sharding import make_mesh
from jtoolformer.train.checkpointing import Checkpoints

MODEL_FILE = "model.yaml"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"
HF_DIR = "hf"

Which = Literal["best", "latest"]


def export_params(params: Any, cfg: ModelConfig, run_dir: str | Path, dest: str | Path) -> Path:
    """`params` as a HF directory at `dest`, with the run's tokenizer files when it has them."""
    dest = Path(dest)
    save_hf(params, cfg, dest)
    tokenizer = Path(run_dir) / TOKENIZER_DIR
    if tokenizer.is_dir():
        for file in tokenizer.iterdir():
            shutil.copy2(file, dest / file.name)
    return dest


def checkpoint_step(checkpoints: Checkpoints, which: Which, run_dir: Path) -> int:
    if which == "best":
        best = checkpoints.best()
        if best is None:
            raise ValueError(f"{run_dir}: no evaluated checkpoint; train with held-out batches, "
                             "or export the latest")
        return best[0]
    step = checkpoints.latest_step()
    if step is None:
        raise FileNotFoundError(f"{run_dir / CHECKPOINT_DIR}: no checkpoints")
    return step


def target_params(cfg: ModelConfig, mesh: Mesh) -> Any:
    """The params as ShapeDtypeStructs with their shardings on `mesh` (a restore target)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        abstract_params(cfg), param_shardings(cfg, mesh))


def export_checkpoint(run_dir: str | Path, which: Which = "best", dest: str | Path | None = None,
                      mesh: Mesh | None = None) -> Path:
    """The run's best (lowest held-out perplexity) or latest params → `dest` (default run_dir/hf/<which>).
    The params are restored onto `mesh` (default: a data-parallel mesh over this host's devices)."""
    run_dir = Path(run_dir)
    model_file = run_dir / MODEL_FILE
    if not model_file.exists():
        raise FileNotFoundError(f"{run_dir} is not a training run directory: no {MODEL_FILE}")
    cfg = load_model_config(model_file)
    mesh = mesh or make_mesh(devices=jax.local_devices())
    checkpoints = Checkpoints(run_dir / CHECKPOINT_DIR)
    try:
        step = checkpoint_step(checkpoints, which, run_dir)
        params = checkpoints.restore_params(step, target_params(cfg, mesh))
    finally:
        checkpoints.close()
    return export_params(params, cfg, run_dir, dest or run_dir / HF_DIR / which)
