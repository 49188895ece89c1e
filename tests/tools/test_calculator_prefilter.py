"""The Calculator's pre-filter: the same documents as the quadratic search it replaced, in linear time."""

from __future__ import annotations

import random
import re
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.calculator import Calculator
from jtoolformer.tools.calculator_prefilter import find_numbers, has_arithmetic_triple, has_result_cue, results

# --- the previous search (every pair, exact fractions), kept as the reference; it shares `results` ---
_NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3}){1,5}|\d{1,18})(?:\.\d{1,12})?(?!\d|[.,]\d)")


def reference_numbers(text: str) -> list[tuple[Fraction, int, int]]:
    token_starts = [m.start() for m in re.finditer(r"\S+", text)]
    numbers, token = [], 0
    for match in _NUMBER.finditer(text):
        while token + 1 < len(token_starts) and token_starts[token + 1] <= match.start():
            token += 1
        written = match.group(0).replace(",", "")
        numbers.append((Fraction(written), len(written.partition(".")[2]), token))
    return numbers


def reference_has_triple(text: str) -> bool:
    numbers = reference_numbers(text)
    written: dict[tuple[Fraction, int], list[int]] = {}
    for k, (value, decimals, _) in enumerate(numbers):
        written.setdefault((value, decimals), []).append(k)
    decimals = {places for _, places, _ in numbers}
    for i, (a, _, token_a) in enumerate(numbers):
        for j in range(i + 1, len(numbers)):
            b, _, token_b = numbers[j]
            if token_b - token_a > 100:
                break
            for result in results(a, b):  # the same five operations
                for places in decimals:
                    for k in written.get((round(result, places), places), ()):
                        span = (token_a, token_b, numbers[k][2])
                        if k not in (i, j) and max(span) - min(span) <= 100:
                            return True
    return False


# Numbers that often combine (and nearly combine: 0.29 is 400 / 1400 rounded, 0.3 is not), words
# between them so that the 100-token window matters, and each number its own word.
_NUMBERS = st.one_of(st.integers(0, 40).map(str), st.sampled_from(
    ["0.5", "1.5", "2.5", "0.25", "0.33", "0.67", "0.29", "0.3", "3.0", "10.00", "1,400", "400", "1400", "12.50",
     "0.125", "0.13", "0.12", "7.5", "1,000,000", "999999999999999999", "0.000000000001", "2.000000000001"]))
_WORD = st.sampled_from(["the", "of", "and", "w", "price:", "x", "(total)", "$"])
_DOCUMENT = st.lists(st.one_of(_NUMBERS, _NUMBERS.map(lambda n: f"${n},"), _WORD, st.just("w " * 40)),
                     max_size=120).map(" ".join)


@settings(max_examples=1500, deadline=None)
@given(_DOCUMENT)
def test_finds_exactly_the_triples_the_pairwise_search_finds(text):
    assert has_arithmetic_triple(find_numbers(text)) == reference_has_triple(text)


def test_random_documents_of_both_kinds_agree():
    rng = random.Random(0)
    outcomes = set()
    for _ in range(300):
        tokens = [rng.choice([str(rng.randrange(1, 60)), f"{rng.randrange(1, 30)}.{rng.randrange(10)}",
                              f"{rng.randrange(100)}.{rng.randrange(100):02d}", "word", "w " * 30])
                  for _ in range(rng.randrange(3, 60))]
        text = " ".join(tokens)
        expected = reference_has_triple(text)
        assert has_arithmetic_triple(find_numbers(text)) == expected, text
        outcomes.add(expected)
    assert outcomes == {True, False}


@pytest.mark.parametrize("text, kept", [
    ("Out of 1,400 participants, 400 (or 0.29 of them) passed.", True),
    ("Out of 1,400 participants, 400 (or 0.3 of them) passed.", True),  # 0.2857… to one decimal
    ("Out of 1,400 participants, 400 (or 0.28 of them) passed.", False),  # to two: 0.29
    ("Out of 1400 runners, 400 (0.286 of them) finished.", True),
    ("2 and 3 make 5.0 in all.", True),  # written with one decimal, and 5 rounded to one decimal is 5.0
    ("5 5 1 and 0 0 0", False),  # 5 x 1, 5 / 5, 5 - 5 and 0 + 0 are trivial
    ("5 5 1 and 0 0 0 and 7", True),  # 7 / 5 rounds to 1
    ("3*4=12", True),  # several numbers in one word
    ("12 " + "w " * 99 + "30 42", False),  # 102 tokens apart
    ("12 " + "w " * 97 + "30 42", True),  # 100 tokens apart
])
def test_hand_checked_documents(text, kept):
    assert has_arithmetic_triple(find_numbers(text)) is kept
    assert reference_has_triple(text) is kept


def test_every_number_counts_not_just_the_first_500():
    text = " ".join(str(10**6 + 7 * k) for k in range(600)) + " 11 w 20 w 31"
    assert has_arithmetic_triple(find_numbers(text))


def test_several_numbers_in_one_word_count_as_several_tokens():
    """Otherwise a document without spaces would put every number in one window."""
    numbers = find_numbers("1/2/3 4")
    assert numbers.positions.tolist() == [0, 1, 2, 3]
    assert not has_arithmetic_triple(find_numbers("2+" + "7+" * 150 + "5"))  # 2 and 5 far apart: no 2 + 5 = 7


def _number_dense(size: int, seed: int) -> str:
    """Numbers and nothing else: the issue's 5 KB of 500 numbers took 12 s before."""
    rng = random.Random(seed)
    return " ".join(f"{rng.randrange(10**6, 10**7)}.{rng.randrange(100):02d}" for _ in range(size // 11))


@pytest.mark.parametrize("size", [5_000, 64_000])
def test_number_dense_documents_take_milliseconds(size):
    text = _number_dense(size, seed=size)
    assert not has_result_cue(text)
    started = time.perf_counter()
    kept = Calculator(dense_number_keep_rate=0.0).prefilter(text, ToolContext())
    elapsed = time.perf_counter() - started
    assert not kept  # the whole document was searched
    assert elapsed < size / 1000 * 0.03  # 30 ms per KB: ~10 times what it takes on a 2-core machine


def test_result_cues_are_found_in_linear_time():
    text = ("= " + " " * 20_000 + "x ") * 20
    started = time.perf_counter()
    assert not has_result_cue(text)
    assert has_result_cue(text + "total of $ 5")
    assert time.perf_counter() - started < 1.0
