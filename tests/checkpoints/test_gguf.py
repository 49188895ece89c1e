"""The SmolLM2 GGUF read by jtoolformer against the same file loaded by transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jtoolformer.checkpoints.gguf import GGUFCheckpoint, default_gguf_path, gguf_tokenizer, read_gguf

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "The result is [Calculator(2 + 3) -> 5] five.",
    "x [ y[z] )] ->-> a -> b",
    "def f(x):\n    return x ** 2  # square\n\n\tprint(f(12345), 3.14159, -0.5e-3)",
    "Größe naïve 東京 🙂 café\r\n",
    "  two  spaces,   three,\n\n\nnewlines   \n  ",
    "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n",
    "",
]


@pytest.fixture(scope="module")
def path() -> Path:
    return default_gguf_path()


@pytest.fixture(scope="module")
def checkpoint(path: Path) -> GGUFCheckpoint:
    return read_gguf(path)


@pytest.fixture(scope="module")
def hf_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.fixture(scope="module")
def hf_state(path: Path) -> dict[str, np.ndarray]:
    """transformers' own dequantised, un-permuted float32 weights of the same file."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    return {name: tensor.numpy() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_match_transformers(checkpoint: GGUFCheckpoint, hf_tokenizer, text: str) -> None:
    tokenizer, _ = gguf_tokenizer(checkpoint.reader)
    ids = tokenizer.encode(text).ids
    assert ids == hf_tokenizer.encode(text)
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_known_tokens(path: Path) -> None:
    tokenizer, special = gguf_tokenizer(path)
    assert special == {"bos_id": 1, "eos_id": 2, "pad_id": 2, "add_bos": False}
    encode = lambda text: tokenizer.encode(text).ids  # noqa: E731
    assert encode(" [") == [933] and encode("[") == [75]
    assert encode("->") == [22690] and encode(" ->") == [4722]
    assert len(encode(")]")) == 1
    assert encode("<|im_start|>") == [1] and encode("<|endoftext|>") == [0]
    assert encode("2024") == [encode(d)[0] for d in "2024"]  # every digit its own token


def test_config_matches_transformers(path: Path, checkpoint: GGUFCheckpoint) -> None:
    from transformers import AutoConfig

    reference = AutoConfig.from_pretrained(path.parent, gguf_file=path.name).to_dict()
    config = checkpoint.hf_config
    assert np.float32(config["rms_norm_eps"]) == np.float32(reference["rms_norm_eps"])
    assert config["rope_theta"] == reference["rope_parameters"]["rope_theta"]
    exact = set(config) - {"rms_norm_eps", "rope_theta"}
    assert {key: config[key] for key in exact} == {key: reference[key] for key in exact}
    assert config["tie_word_embeddings"] is True


def test_names_and_shapes_match_transformers(
    checkpoint: GGUFCheckpoint, hf_state: dict[str, np.ndarray]
) -> None:
    # Tied embeddings: transformers lists lm_head.weight as the embedding itself; the file has none.
    expected = {name: array.shape for name, array in hf_state.items() if name != "lm_head.weight"}
    assert {name: checkpoint.tensor_shape(name) for name in checkpoint.tensor_names()} == expected


@pytest.mark.parametrize(
    "name",
    [
        "model.embed_tokens.weight",  # Q8_0
        "model.layers.0.self_attn.q_proj.weight",  # Q4_1, rows un-permuted over 9 heads
        "model.layers.0.self_attn.k_proj.weight",  # Q4_1, rows un-permuted over 3 KV heads
        "model.layers.29.self_attn.q_proj.weight",
        "model.layers.29.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.7.self_attn.o_proj.weight",
        "model.layers.3.mlp.gate_proj.weight",
        "model.layers.3.mlp.up_proj.weight",
        "model.layers.3.mlp.down_proj.weight",
        "model.layers.5.input_layernorm.weight",  # F32
        "model.layers.5.post_attention_layernorm.weight",
        "model.norm.weight",
    ],
)
def test_tensor_matches_transformers(
    checkpoint: GGUFCheckpoint, hf_state: dict[str, np.ndarray], name: str
) -> None:
    got = checkpoint.read_tensor(name)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, hf_state[name], rtol=0, atol=1e-6)


def test_bench_script_reads_everything_in_little_memory(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = REPO / "scripts" / "bench_gguf_load.py"
    subprocess.run([sys.executable, str(script), "--out", str(out)], check=True, env=env, capture_output=True)
    result = json.loads(out.read_text())
    assert result["tensors"] == 272
    assert result["parameters"] == 134_515_008  # SmolLM2-135M, tied embeddings counted once
    assert result["peak_rss_mib"] < 1024
