"""Fine-tuning settings: one frozen dataclass tree, loaded from YAML with `key.sub=value` overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jtoolformer import yaml_config

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class MeshConfig:
    data: int = -1
    fsdp: int = 1
    tensor: int = 1


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-5
    warmup_fraction: float = 0.1  # linear warm-up over this share of the steps, then linear decay
    end_learning_rate: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled (AdamW); never applied to norms or biases
    clip_norm: float = 1.0  # global gradient-norm clipping; 0 turns it off
    mu_dtype: str = "float32"  # Adam's first moment; bfloat16 saves a quarter of the optimizer memory

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_fraction <= 1:
            raise ValueError(f"optim.warmup_fraction={self.warmup_fraction} must lie in [0, 1]")
        if self.mu_dtype not in DTYPES:
            raise ValueError(f"optim.mu_dtype={self.mu_dtype!r}; expected one of {DTYPES}")


@dataclass(frozen=True)
class CheckpointConfig:
    save_every: int = 500  # steps between saves of the whole state (the latest is kept)
    eval_every: int = 500  # steps between held-out perplexity evaluations (the best is kept)
    async_save: bool = True


@dataclass(frozen=True)
class DataConfig:
    mask_tool_results: bool = False  # no loss on what follows each call's arrow: the result and "]"
    max_examples_per_tool: int = 25_000  # C* texts kept per tool (counted by their calls' tools); 0: all
    held_out: float = 0.05  # without eval data: this fraction (< 1) or number (>= 1) of the texts; 0: none
    tfds_dir: str | None = None  # TFDS data dir of corpus specs, and where local corpora are built
    #                              (None: OUT/corpus_tfds)

    def __post_init__(self) -> None:
        if self.max_examples_per_tool < 0:
            raise ValueError(f"data.max_examples_per_tool={self.max_examples_per_tool} must be >= 0 (0: no limit)")
        if self.held_out < 0 or (self.held_out >= 1 and self.held_out != int(self.held_out)):
            raise ValueError(f"data.held_out={self.held_out} must be a fraction in [0, 1) or a whole number of texts")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "smollm2-135m"  # HF checkpoint directory, .gguf, model YAML, or smollm2-135m
    steps: int = 2000
    global_batch: int = 128  # sequences per optimizer step, over all hosts
    micro_batches: int = 1  # gradient accumulation: the global batch is split into this many
    seq_len: int = 1024
    dtype: str = "bfloat16"  # compute dtype; params, optimizer and losses stay float32
    remat: bool = False  # recompute each layer's activations in the backward pass
    seed: int = 0
    log_every: int = 10
    peak_tflops_per_device: float | None = None  # for MFU; None: measured by a matmul at start-up
    distributed: bool = False  # jax.distributed start-up (multi-host pods)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "global_batch", "micro_batches", "seq_len", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.global_batch % self.micro_batches:
            raise ValueError(f"global_batch={self.global_batch} is not a multiple of "
                             f"micro_batches={self.micro_batches}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; expected one of {DTYPES}")


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    return yaml_config.load(TrainConfig, path, overrides)
