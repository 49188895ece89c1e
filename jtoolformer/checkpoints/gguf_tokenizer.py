"""Rebuild the byte-level BPE tokenizer stored in a GGUF file's `tokenizer.ggml.*` metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import gguf
from gguf import TokenType
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

from jtoolformer.checkpoints.gguf_metadata import metadata, open_gguf, reader_path
from jtoolformer.errors import UsageError


def _gpt2(add_prefix_space: bool) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=True)


def _smollm(add_prefix_space: bool) -> pre_tokenizers.PreTokenizer:
    # llama.cpp's "smollm" splits every digit off before the GPT-2 pattern, as HF's Digits does.
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), _gpt2(add_prefix_space)]
    )


# `tokenizer.ggml.pre` names how llama.cpp splits text before BPE; only splits reproduced exactly here.
_PRE_TOKENIZERS: dict[str, Callable[[bool], pre_tokenizers.PreTokenizer]] = {
    "gpt-2": _gpt2,
    "smollm": _smollm,
}


def gguf_tokenizer(
    path_or_reader: str | os.PathLike | gguf.GGUFReader,
) -> tuple[Tokenizer, dict[str, Any]]:
    """The file's tokenizer, and its special ids: `bos_id`, `eos_id`, `pad_id` (eos when the file
    names none) and `add_bos` (whether the model expects BOS in front of every text; the returned
    tokenizer already adds it, and EOS where the file asks for that too)."""
    if isinstance(path_or_reader, gguf.GGUFReader):
        reader = path_or_reader
        path = reader_path(reader)
    else:
        path = Path(path_or_reader)
        reader = open_gguf(path)

    model = metadata(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise UsageError(
            f"{path}: tokenizer model {model!r} is not supported; only byte-level BPE ('gpt2') is"
        )
    pre = metadata(reader, "tokenizer.ggml.pre")
    if pre not in _PRE_TOKENIZERS:
        raise UsageError(
            f"{path}: pre-tokenizer {pre!r} is not supported; supported: {sorted(_PRE_TOKENIZERS)}"
        )

    tokens: list[str] = metadata(reader, "tokenizer.ggml.tokens")
    merges = [tuple(merge.split(" ")) for merge in metadata(reader, "tokenizer.ggml.merges")]
    kinds: list[int] = metadata(reader, "tokenizer.ggml.token_type", [TokenType.NORMAL] * len(tokens))
    add_space_prefix = bool(metadata(reader, "tokenizer.ggml.add_space_prefix", False))

    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tokenizer.pre_tokenizer = _PRE_TOKENIZERS[pre](add_space_prefix)
    tokenizer.decoder = decoders.ByteLevel()
    # llama.cpp matches control and user-defined tokens whole before splitting the text.
    control = [t for t, kind in zip(tokens, kinds) if kind == TokenType.CONTROL]
    user_defined = [t for t, kind in zip(tokens, kinds) if kind == TokenType.USER_DEFINED]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])

    bos_id = metadata(reader, "tokenizer.ggml.bos_token_id")
    eos_id = metadata(reader, "tokenizer.ggml.eos_token_id")
    add_bos = bool(metadata(reader, "tokenizer.ggml.add_bos_token", False))
    add_eos = bool(metadata(reader, "tokenizer.ggml.add_eos_token", False))
    for flag, token_id, what in ((add_bos, bos_id, "BOS"), (add_eos, eos_id, "EOS")):
        if flag and token_id is None:
            raise UsageError(f"{path}: the tokenizer adds {what} to every text but names no {what} token")
    if add_bos or add_eos:
        tokenizer.post_processor = _bos_eos_template(
            tokens, bos_id if add_bos else None, eos_id if add_eos else None
        )

    pad_id = metadata(reader, "tokenizer.ggml.padding_token_id", eos_id)
    return tokenizer, {"bos_id": bos_id, "eos_id": eos_id, "pad_id": pad_id, "add_bos": add_bos}


def _bos_eos_template(
    tokens: list[str], bos_id: int | None, eos_id: int | None
) -> processors.TemplateProcessing:
    before = [tokens[bos_id]] if bos_id is not None else []
    after = [tokens[eos_id]] if eos_id is not None else []
    single = [*before, "$A", *after]
    pair = [*single, *(f"{t}:1" for t in before), "$B:1", *(f"{t}:1" for t in after)]
    special = {tokens[i]: i for i in (bos_id, eos_id) if i is not None}
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=list(special.items()))
