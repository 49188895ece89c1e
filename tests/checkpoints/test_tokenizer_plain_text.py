"""Text is encoded as plain text everywhere: control-token strings in it never become control tokens."""

from __future__ import annotations

import json

import pytest

from jtoolformer.annotate.call_sites import token_starts
from jtoolformer.checkpoints.gguf import default_gguf_path, gguf_tokenizer
from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.data.tool_results import MaskToolResults


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    hf, ids = gguf_tokenizer(default_gguf_path())
    return Tokenizer(hf, ids["bos_id"], ids["eos_id"], ids["pad_id"], add_bos=True)


@pytest.fixture(scope="module")
def control_ids(tok: Tokenizer) -> set[int]:
    ids = {i for i, added in tok.hf.get_added_tokens_decoder().items() if added.special}
    assert {tok.bos_id, tok.eos_id, tok.pad_id} <= ids
    return ids


def control_strings(tok: Tokenizer) -> list[str]:
    return [added.content for added in tok.hf.get_added_tokens_decoder().values() if added.special]


def test_the_reported_text_gives_no_end_of_sequence(tok: Tokenizer, control_ids: set[int]) -> None:
    ids = tok.encode("x <|im_end|> y")
    assert tok.eos_id not in ids and not control_ids & set(ids)
    assert tok.decode(ids) == "x <|im_end|> y"


def test_every_control_string_is_plain_text(tok: Tokenizer, control_ids: set[int]) -> None:
    for special in control_strings(tok):
        for text in (special, f"a {special} b", f"{special}{special}\n", f"[QA({special}) -> {special}]"):
            ids = tok.encode(text)
            assert not control_ids & set(ids), text
            assert tok.decode(ids) == text
            prompt = tok.encode_prompt(text)
            assert prompt[0] == tok.bos_id and prompt[1:] == ids  # the only control token: the one we add


def test_training_rows_and_annotation_offsets_use_plain_text(tok: Tokenizer, control_ids: set[int]) -> None:
    text = "The chat ended <|im_end|> after [Calculator(2 + 3) -> 5] 5 <|endoftext|> turns."
    ids = tok.encode(text)
    row = MaskToolResults(tok)(text)
    assert list(row.tokens) == ids and not control_ids & set(row.tokens.tolist())
    starts = token_starts(tok, text, tuple(ids))
    assert -1 not in starts and starts == sorted(starts)
    assert text[starts[ids.index(tok.encode(" <")[0])]:].startswith(" <|im_end|>")


def test_saving_leaves_the_tokenizer_file_as_it_was(tok: Tokenizer, tmp_path) -> None:
    """The plain-text setting belongs to this wrapper: an exported tokenizer.json still declares its
    special tokens, and reading it back encodes plain text again."""
    tok.save(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert "encode_special_tokens" not in json.dumps(saved)
    assert {t["content"] for t in saved["added_tokens"] if t["special"]} == set(control_strings(tok))
    again = Tokenizer.from_hf_dir(tmp_path)
    assert again.encode("x <|im_end|> y") == tok.encode("x <|im_end|> y")
