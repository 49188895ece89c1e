"""Small text helpers shared by the tools: templates, whitespace, length bounds, first sentence."""

from __future__ import annotations

import functools
import re
from importlib import resources

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_WHITESPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’»)]*\s")  # the end mark, closing quotes, then a space
# C0/C1 controls (NUL included) and lone surrogates: they cannot be encoded or shown.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


@functools.cache
def package_text(*parts: str) -> str:
    """A text file shipped inside `jtoolformer/tools` (prompts, templates, data)."""
    return resources.files("jtoolformer.tools").joinpath(*parts).read_text(encoding="utf-8")


def fill_template(template: str, **values: str) -> str:
    """Replaces each `{name}` in one pass, so a value that itself contains `{name}` stays as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def clean_text(text: str) -> str:
    """Drops unprintable characters and lone surrogates, folds whitespace runs into one space."""
    return _WHITESPACE.sub(" ", _UNPRINTABLE.sub("", text)).strip()


def shorten(text: str, max_chars: int) -> str:
    """At most `max_chars`: whole sentences when at least half fits, else whole words."""
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    sentence_ends = [m.end() - 1 for m in _SENTENCE_END.finditer(head)]
    if sentence_ends and sentence_ends[-1] >= max_chars // 2:
        return head[: sentence_ends[-1]]
    cut = head.rfind(" ")
    return head[:cut].rstrip() if cut > 0 else text[:max_chars]


def clean_and_shorten(text: str, max_chars: int) -> str:
    """`shorten(clean_text(text))`, reading no more of the text than the result can need."""
    return shorten(clean_text(text[: 4 * max_chars]), max_chars)


def first_line(text: str) -> str:
    """The first line that is not blank, stripped."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def first_sentence(text: str) -> str:
    """The first non-blank line, up to its first sentence end."""
    return _SENTENCE_END.split(first_line(text), maxsplit=1)[0]
