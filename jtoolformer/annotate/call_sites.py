"""Where in a text a call may go (stage 1's candidate positions) and where a token sits in the text.

A position i means "before token x_i". Two rules:
  - "word_boundary" (the default): any position not inside a word or number. The paper has no such
    rule; we add it because SmolLM2 and Llama tokenizers split numbers into single digits, and calls
    then landed inside numbers ("18[Calculator(…)]0").
  - "numbers": only positions right before a number (optionally behind "$", "€", "£" or "("), or
    before the whitespace token that precedes one. For tools whose results are numbers (the
    Calculator): a call can only help predict what follows it when a number follows it. Measured in
    scripts/bench_annotation_quality.py against human-placed calls (README).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

CALL_SITE_RULES = ("word_boundary", "numbers")
_NUMBER_AHEAD = re.compile(r"[ \t]?[$€£(]?[ \t]?[-−]?\.?\d")


def token_starts(tok, text: str, x: Sequence[int]) -> list[int]:
    """Character offset where each token of x begins in text (-1 for all when x is not text's encoding)."""
    encoding = tok.hf.encode(text, add_special_tokens=False)
    if tuple(encoding.ids) != tuple(x):
        return [-1] * len(x)
    return [start for start, _ in encoding.offsets]


def at_word_boundary(text: str, start: int) -> bool:
    """Whether a call may go before the character `start`: not inside a word or a number ("12.5",
    "1,200" included)."""
    if start <= 0 or start >= len(text):
        return start > 0
    if text[start - 1].isalnum() and text[start].isalnum():
        return False
    return not _inside_number(text, start)


def _inside_number(text: str, start: int) -> bool:
    """Between a digit and a decimal point or thousands separator that has a digit on its other side."""
    before, here = text[start - 1], text[start]
    after = text[start + 1] if start + 1 < len(text) else ""
    before2 = text[start - 2] if start >= 2 else ""
    return (before.isdigit() and here in ".," and after.isdigit()) or \
        (before in ".," and before2.isdigit() and here.isdigit())


def before_number(text: str, start: int) -> bool:
    """Whether a number (or its sign, currency or opening parenthesis, after at most one space) begins
    at `start`, and `start` is not inside a number or word."""
    return at_word_boundary(text, start) and _NUMBER_AHEAD.match(text, start) is not None


def allowed_positions(rule: str, text: str, starts: Sequence[int]) -> list[int]:
    """Token positions i ≥ 1 where the rule lets a call go."""
    if rule not in CALL_SITE_RULES:
        raise ValueError(f"call_sites={rule!r}: must be one of {CALL_SITE_RULES}")
    check = at_word_boundary if rule == "word_boundary" else before_number
    return [i for i in range(1, len(starts)) if starts[i] >= 0 and check(text, starts[i])]


def char_position(tok, x: Sequence[int], i: int) -> int | None:
    """Characters of the text before token i, when tokens 0..i−1 decode to exactly that prefix."""
    full = tok.decode(list(x))
    head = tok.decode(list(x[:i]))
    return len(head) if full.startswith(head) and "\ufffd" not in head else None
