"""A GGUF file as a TensorSource, so it loads through the same sharded path as HF checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jax.sharding import Mesh

from jtoolformer.checkpoints.gguf import GGUFCheckpoint, default_gguf_path, gguf_tokenizer, read_gguf
from jtoolformer.checkpoints.hf import config_from_hf, load_params
from jtoolformer.checkpoints.sources import Index
from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.models import ModelConfig


class GGUFSource:
    """Dequantises a whole tensor on first use and keeps only the latest one, so the shards of one
    tensor (read one after another) dequantise it once."""

    def __init__(self, checkpoint: GGUFCheckpoint):
        self.checkpoint = checkpoint
        self._last: tuple[str, np.ndarray] | None = None

    def names(self) -> set[str]:
        return set(self.checkpoint.tensor_names())

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.checkpoint.tensor_shape(name))

    def read(self, name: str, index: Index) -> np.ndarray:
        if self._last is None or self._last[0] != name:
            self._last = (name, self.checkpoint.read_tensor(name))
        return self._last[1][index]

    def where(self, name: str) -> str:
        return str(self.checkpoint.path)

    def floating(self, name: str) -> bool:
        return True  # read_gguf accepts only float and quantised float types


def load_gguf(path: Path | None, mesh: Mesh, **overrides) -> tuple[ModelConfig, object, Tokenizer]:
    """(config, params, tokenizer) from a GGUF file; None means the embedded default (SmolLM2-135M)."""
    checkpoint = read_gguf(path or default_gguf_path())
    cfg = config_from_hf(checkpoint.hf_config, checkpoint.path).replace(**overrides)
    params = load_params(GGUFSource(checkpoint), cfg, mesh)
    hf_tokenizer, ids = gguf_tokenizer(checkpoint.reader)
    tokenizer = Tokenizer(hf_tokenizer, ids["bos_id"], ids["eos_id"], ids["pad_id"], ids["add_bos"])
    return cfg, params, tokenizer
