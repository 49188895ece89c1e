"""Which token ids open a call and which close or complete one, read off the tokenizer."""

from __future__ import annotations

import functools

from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.tools.calls import ARROWS, CALL_END, CALL_START


@functools.cache
def _token_texts(tokenizer: Tokenizer) -> tuple[str, ...]:
    return tuple(tokenizer.decode([i]) for i in range(tokenizer.vocab_size))


def api_start_ids(tokenizer: Tokenizer) -> list[int]:
    """Every token that is the API start "[" with optional whitespace before it (" [", "\\n[", …)."""
    ids = [i for i, text in enumerate(_token_texts(tokenizer)) if text.strip() == CALL_START]
    if not ids:
        raise ValueError("the tokenizer has no token for '[', so calls cannot start")
    return ids


def call_stop_ids(tokenizer: Tokenizer) -> list[int]:
    """Tokens after which a sampled call is over: any token containing "]" or an arrow.
    (An arrow split over two tokens is caught on the decoded text.)"""
    marks = (CALL_END, *ARROWS)
    return [i for i, text in enumerate(_token_texts(tokenizer)) if any(m in text for m in marks)]
