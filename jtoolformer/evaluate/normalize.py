"""Answer normalisation and word splitting: the one place where predictions and gold answers
are made comparable."""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = frozenset({"a", "an", "the"})
# A comma between digits that is followed by exactly one group of three digits: "1,000,000".
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W_]+")


def split_words(text: str) -> list[str]:
    """Words as a reader counts them: whitespace-separated chunks."""
    return text.split()


def canonical_number(token: str) -> str:
    """Decimal zeros dropped: "1000.0" -> "1000", "2.50" -> "2.5"; other tokens unchanged."""
    if "." in token and token.replace(".", "", 1).isdigit():
        return token.rstrip("0").rstrip(".")
    return token


def normalize_tokens(text: str) -> list[str]:
    """Lower-case tokens without punctuation or articles; numbers in one canonical form.

    Unicode is NFKC-folded (full-width digits become ASCII); thousands separators and
    ordinal suffixes ("14th") are dropped; decimals keep their point.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _THOUSANDS_SEPARATOR.sub("", text)
    text = _ORDINAL.sub(r"\1", text)
    return [canonical_number(t) for t in _TOKEN.findall(text) if t not in _ARTICLES]


def normalize_answer(text: str) -> str:
    """The normalised tokens of ``text`` joined by single spaces."""
    return " ".join(normalize_tokens(text))
