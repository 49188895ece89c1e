"""The one model config shared by every architecture."""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

import jax

from jtoolformer.config import Checked, ConfigError, from_dict, read_yaml, setting

ARCHITECTURES = ("gptj", "llama")
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class ModelConfig(Checked):
    arch: str = setting(MISSING, choices=ARCHITECTURES)
    vocab_size: int = setting(MISSING, ge=1)
    d_model: int = setting(MISSING, ge=1)
    n_layers: int = setting(MISSING, ge=1)
    n_heads: int = setting(MISSING, ge=1)
    n_kv_heads: int = setting(0, ge=0)  # 0: as many as query heads
    head_dim: int = setting(0, ge=0)  # 0: d_model // n_heads
    d_ff: int = setting(0, ge=0)  # 0: 4 * d_model
    rotary_dim: int = setting(0, ge=0)  # 0: the whole head
    rope_theta: float = setting(10000.0, gt=0)
    max_positions: int = setting(2048, ge=1)
    norm_eps: float = setting(1e-5, gt=0)
    tie_embeddings: bool = False
    attention_bias: bool = False  # llama only; GPT-J never has q/k/v/out biases
    mlp_bias: bool = False  # llama only; GPT-J always has fc_in/fc_out biases
    bos_id: int | None = setting(None, ge=0)
    eos_id: int | None = setting(None, ge=0)
    dtype: str = setting("float32", choices=DTYPES)  # activations and matmuls; softmax, norms and losses stay
    #                                                  float32
    param_dtype: str = setting("float32", choices=DTYPES)
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
        super().__post_init__()
        if not self.head_dim and self.d_model % self.n_heads:
            raise ConfigError("n_heads", self.n_heads, f"does not divide d_model={self.d_model} (or give head_dim)")
        fill = {
            "n_kv_heads": self.n_kv_heads or self.n_heads,
            "head_dim": self.head_dim or self.d_model // self.n_heads,
            "d_ff": self.d_ff or 4 * self.d_model,
        }
        fill["rotary_dim"] = self.rotary_dim or fill["head_dim"]
        for name, value in fill.items():
            object.__setattr__(self, name, value)
        if self.n_heads % self.n_kv_heads:
            raise ConfigError("n_heads", self.n_heads, f"is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.rotary_dim > self.head_dim or self.rotary_dim % 2:
            raise ConfigError("rotary_dim", self.rotary_dim, f"must be even and at most head_dim={self.head_dim}")

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
    data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    return from_dict(ModelConfig, {**data, **overrides} if isinstance(data, dict) else data, str(path))
