"""Fine-tuning settings: one frozen dataclass tree, loaded from YAML with `key.sub=value` overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jtoolformer import config
from jtoolformer.config import Checked, ConfigError, setting

DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class MeshConfig(Checked):
    data: int = setting(-1, ge=-1)  # -1 (on one axis at most): the devices the other axes leave
    fsdp: int = setting(1, ge=-1)
    tensor: int = setting(1, ge=-1)

    def __post_init__(self) -> None:
        super().__post_init__()
        rest = 0
        for size_field in dataclasses.fields(self):
            size = getattr(self, size_field.name)
            if size == 0:
                raise ConfigError(size_field.name, 0, "must be a number of devices, or -1 for the rest")
            rest += size == -1
            if rest > 1:
                raise ConfigError(size_field.name, -1, "but another size is -1 already; only one may be")


@dataclass(frozen=True)
class OptimConfig(Checked):
    learning_rate: float = setting(1e-5, gt=0)
    warmup_fraction: float = setting(0.1, ge=0, le=1)  # linear warm-up over this share of the steps, then
    #                                                    linear decay
    end_learning_rate: float = setting(0.0, ge=0)
    b1: float = setting(0.9, ge=0, lt=1)
    b2: float = setting(0.999, ge=0, lt=1)
    eps: float = setting(1e-8, gt=0)
    weight_decay: float = setting(0.0, ge=0)  # decoupled (AdamW); never applied to norms or biases
    clip_norm: float = setting(1.0, ge=0)  # global gradient-norm clipping; 0 turns it off
    mu_dtype: str = setting("float32", choices=DTYPES)  # Adam's first moment; bfloat16 saves a quarter of the
    #                                                     optimizer memory


@dataclass(frozen=True)
class CheckpointConfig(Checked):
    save_every: int = setting(500, ge=1)  # steps between saves of the whole state (the latest is kept)
    eval_every: int = setting(500, ge=1)  # steps between held-out perplexity evaluations (the best is kept)
    async_save: bool = True


@dataclass(frozen=True)
class DataConfig(Checked):
    mask_tool_results: bool = False  # no loss on what follows each call's arrow: the result and "]"
    max_examples_per_tool: int = setting(25_000, ge=0)  # C* texts kept per tool (counted by their calls'
    #                                                     tools); 0: all
    held_out: float = setting(0.05, ge=0)  # without eval data: this fraction (< 1) or number (>= 1) of the
    #                                        texts; 0: none
    tfds_dir: str | None = None  # TFDS data dir of corpus specs, and where local corpora are built
    #                              (None: OUT/corpus_tfds)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.held_out >= 1 and self.held_out != int(self.held_out):
            raise ConfigError("held_out", self.held_out, "must be a fraction in [0, 1) or a whole number of texts")


@dataclass(frozen=True)
class TrainConfig(Checked):
    model: str = "smollm2-135m"  # HF checkpoint directory, .gguf, model YAML, or smollm2-135m
    steps: int = setting(2000, ge=1)
    global_batch: int = setting(128, ge=1)  # sequences per optimizer step, over all hosts
    micro_batches: int = setting(1, ge=1)  # gradient accumulation: the global batch is split into this many
    seq_len: int = setting(1024, ge=2)  # a row of one token predicts nothing
    dtype: str = setting("bfloat16", choices=DTYPES)  # compute dtype; params, optimizer and losses stay float32
    remat: bool = False  # recompute each layer's activations in the backward pass
    seed: int = setting(0, ge=0, lt=2**32)
    log_every: int = setting(10, ge=1)
    peak_tflops_per_device: float | None = setting(None, gt=0)  # for MFU; None: measured by a matmul at start-up
    distributed: bool = False  # jax.distributed start-up (multi-host pods)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.global_batch % self.micro_batches:
            raise ConfigError("global_batch", self.global_batch,
                              f"is not a multiple of micro_batches={self.micro_batches}")


def load_train_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    return config.load(TrainConfig, path, overrides)
