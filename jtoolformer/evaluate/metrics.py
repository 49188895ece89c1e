"""The paper's zero-shot metrics (Schick et al. 2023, §4.2-4.3; docs/method.md §5).

Every metric reads the generation as a reader would: inline API calls are removed first.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from fractions import Fraction

from jtoolformer.evaluate.api_text import strip_api_calls
from jtoolformer.evaluate.normalize import normalize_tokens, split_words

LAMA_WORDS = 5  # LAMA, TempLAMA and DATESET: the gold word among the first five words
QA_WORDS = 20
MLQA_WORDS = 10
# (ours) Two numbers are equal when they agree to the calculator's two decimals.
MATH_TOLERANCE = Fraction(5, 1000)

# A number may not continue a word, a number or a hyphenated token ("A4", "COVID-19"), but may be
# followed by letters ("5km", "3rd", "50%": fifty); "1,000" is one number, and so is the fraction
# "3/4" (not "3/4/2020": that reads as 3).
_NUMBER = re.compile(
    r"(?<![\w.,-])-?(?:\d+/[1-9]\d*(?![\d/])|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d))"
)


def answer_in_first_words(text: str, answers: Sequence[str], max_words: int) -> bool:
    """Whether any answer's normalised tokens occur, contiguously, within the first
    ``max_words`` words of the generation."""
    head = " ".join(split_words(strip_api_calls(text))[:max_words])
    words = normalize_tokens(head)
    for answer in answers:
        target = normalize_tokens(answer)
        if target and any(
            words[i : i + len(target)] == target for i in range(len(words) - len(target) + 1)
        ):
            return True
    return False


def lama_correct(text: str, answers: Sequence[str]) -> bool:
    return answer_in_first_words(text, answers, LAMA_WORDS)


def qa_correct(text: str, answers: Sequence[str]) -> bool:
    return answer_in_first_words(text, answers, QA_WORDS)


def mlqa_correct(text: str, answers: Sequence[str]) -> bool:
    return answer_in_first_words(text, answers, MLQA_WORDS)


def parse_number(text: str) -> Fraction:
    """A number as written ("1,000", "-2.5", "3/4"), exactly: "3/4" and "0.75" are equal."""
    return Fraction(text.replace(",", ""))


def predicted_number(text: str) -> Fraction | None:
    """The first number generated or, when the generation contains "=", the first number after
    the first "=" (the paper's footnote 7). None when there is none."""
    text = unicodedata.normalize("NFKC", strip_api_calls(text)).replace("\u2212", "-")
    start = text.find("=") + 1  # 0 when there is no "="
    match = _NUMBER.search(text, start)
    return parse_number(match.group()) if match else None


def math_correct(text: str, answers: Sequence[str]) -> bool:
    prediction = predicted_number(text)
    return prediction is not None and any(
        abs(prediction - parse_number(answer)) < MATH_TOLERANCE for answer in answers
    )


def perplexity(scores: Sequence[tuple[float, int]]) -> float:
    """exp(total NLL / total tokens) over (sum NLL, token count) pairs."""
    tokens = sum(n for _, n in scores)
    if tokens == 0:
        raise ValueError("perplexity of zero tokens: the scorer scored no token")
    return math.exp(sum(nll for nll, _ in scores) / tokens)
