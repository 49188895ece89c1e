"""Language identification with langid (its model ships with the package) and language names."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
from langid.langid import LanguageIdentifier, model

from jtoolformer.tools.text import package_text

ENGLISH = "en"
UNDETERMINED = "und"  # ISO 639-2 for "language not identified"
MAX_IDENTIFY_CHARS = 2000


@dataclass(frozen=True)
class LanguageGuess:
    code: str  # ISO 639-1, one of langid's 97 languages
    confidence: float  # normalised probability


class _SparseIdentifier(LanguageIdentifier):
    """langid's classifier, with the Naive Bayes product taken over the text's non-zero features only.
    The dense (7480 features × 97 languages) product costs ~10× more and, handed to a multi-threaded
    BLAS on a small machine, another ~10× in thread hand-offs."""

    def nb_classprobs(self, fv: np.ndarray) -> np.ndarray:
        present = np.flatnonzero(fv)
        return fv[present] @ self.nb_ptc[present] + self.nb_pc


@functools.cache
def _identifier() -> LanguageIdentifier:
    return _SparseIdentifier.from_modelstring(model, norm_probs=True)


@functools.cache
def _languages() -> dict[str, dict[str, str | None]]:
    return json.loads(package_text("data", "languages.json"))


def identify_language(text: str) -> LanguageGuess:
    """langid's guess for (the start of) a text."""
    code, confidence = _identifier().classify(text[:MAX_IDENTIFY_CHARS])
    return LanguageGuess(code, float(confidence))


def has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


def language_name(code: str) -> str:
    """The English name of a language code ("fr" → "French"); the code itself when unknown."""
    entry = _languages().get(code)
    return str(entry["name"]) if entry else code


def flores_code(code: str) -> str | None:
    """The FLORES-200 code NLLB models use ("fr" → "fra_Latn"), None when NLLB lacks the language."""
    entry = _languages().get(code)
    return entry["flores200"] if entry else None


def has_foreign_chunk(text: str, *, chunk_words: int = 10, min_confidence: float = 0.8,
                      max_chunks: int = 200) -> bool:
    """An English document with a chunk of about `chunk_words` words in another language (langid
    confidence > `min_confidence`); chunks without letters do not count (docs/method.md §2.0, MT).
    Chunks overlap by half, so a foreign phrase is not lost by falling across a chunk boundary."""
    if identify_language(text).code != ENGLISH:
        return False
    stride = max(1, chunk_words // 2)
    limit = stride * max_chunks + chunk_words
    words = text.split(maxsplit=limit)[:limit]
    for start in range(0, max(1, len(words) - stride), stride):
        chunk = " ".join(words[start: start + chunk_words])
        if not has_letters(chunk):
            continue
        guess = identify_language(chunk)
        if guess.code != ENGLISH and guess.confidence > min_confidence:
            return True
    return False
