"""The one model config shared by every architecture."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import yaml

ARCHITECTURES = ("gptj", "llama")


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int = 0  # 0: as many as query heads
    head_dim: int = 0  # 0: d_model // n_heads
    d_ff: int = 0  # 0: 4 * d_model
    rotary_dim: int = 0  # 0: the whole head
    rope_theta: float = 10000.0
    max_positions: int = 2048
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    attention_bias: bool = False  # llama only; GPT-J never has q/k/v/out biases
    mlp_bias: bool = False  # llama only; GPT-J always has fc_in/fc_out biases
    bos_id: int | None = None
    eos_id: int | None = None
    dtype: str = "float32"  # activations and matmuls; softmax, norms and losses stay float32
    param_dtype: str = "float32"
    remat: bool = False  # rematerialise each layer in the backward pass
    # Layers as one scanned block with stacked params (quick to compile; what TPUs and GPUs run well), or
    # unrolled with one param tree per layer ("h_0", "h_1", …), which XLA:CPU runs about twice as fast:
    # it copies a scanned layer's weights and KV cache out of the stack on every step. None: unrolled
    # when JAX's default backend is the CPU.
    scan_layers: bool | None = None
    # Implementations of decode attention and of the vocabulary log-probs: "xla", "pallas" (the kernels
    # in jtoolformer.kernels) or "auto" (Pallas on TPU and GPU, XLA on the CPU).
    attention_impl: str = "auto"
    logprob_impl: str = "auto"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; expected one of {ARCHITECTURES}")
        fill = {
            "n_kv_heads": self.n_kv_heads or self.n_heads,
            "head_dim": self.head_dim or self.d_model // self.n_heads,
            "d_ff": self.d_ff or 4 * self.d_model,
        }
        fill["rotary_dim"] = self.rotary_dim or fill["head_dim"]
        for name, value in fill.items():
            object.__setattr__(self, name, value)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.rotary_dim > self.head_dim or self.rotary_dim % 2:
            raise ValueError(f"rotary_dim={self.rotary_dim} must be even and at most head_dim={self.head_dim}")

    @property
    def layers_scanned(self) -> bool:
        if self.scan_layers is None:
            return jax.default_backend() != "cpu"
        return self.scan_layers

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @property
    def n_params(self) -> int:
        d, hd = self.d_model, self.head_dim
        attn = d * hd * (2 * self.n_heads + 2 * self.n_kv_heads)
        mlp = (3 if self.arch == "llama" else 2) * d * self.d_ff
        head = 0 if self.tie_embeddings else d * self.vocab_size
        return self.vocab_size * d + self.n_layers * (attn + mlp) + head


def load_model_config(path: str | Path, **overrides: Any) -> ModelConfig:
    """A ModelConfig from a YAML file (the `model:` section if there is one)."""
    data = yaml.safe_load(Path(path).read_text())
    data = data.get("model", data)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(data) - fields
    if unknown:
        raise ValueError(f"{path}: unknown model config keys {sorted(unknown)}; known: {sorted(fields)}")
    return ModelConfig(**{**data, **overrides})
