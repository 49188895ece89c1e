import math

import pytest

from jtoolformer.evaluate.api_text import strip_api_calls
from jtoolformer.evaluate.metrics import (
    lama_correct,
    math_correct,
    mlqa_correct,
    perplexity,
    predicted_number,
    qa_correct,
)


def _words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_lama_counts_five_words() -> None:
    assert lama_correct("one two three four Paris", ["Paris"])
    assert not lama_correct("one two three four five Paris", ["Paris"])


def test_qa_answer_in_word_20_hits_and_word_21_misses() -> None:
    assert qa_correct(_words(19) + " Normandy", ["Normandy"])
    assert not qa_correct(_words(20) + " Normandy", ["Normandy"])


def test_multi_word_answer_must_fit_inside_the_window() -> None:
    assert qa_correct(_words(17) + " Francis Scott Key", ["Francis Scott Key"])
    assert not qa_correct(_words(18) + " Francis Scott Key", ["Francis Scott Key"])
    assert not qa_correct("Francis Key Scott", ["Francis Scott Key"])  # contiguous and in order


def test_mlqa_counts_ten_words() -> None:
    assert mlqa_correct(_words(9) + " 1642", ["1642"])
    assert not mlqa_correct(_words(10) + " 1642", ["1642"])


def test_any_alias_counts() -> None:
    assert qa_correct("It is called Sunset Blvd in the US.", ["Sunset Boulevard", "Sunset Blvd"])
    assert not qa_correct("It is called Sunset Strip.", ["Sunset Boulevard", "Sunset Blvd"])


def test_matching_is_normalised() -> None:
    assert lama_correct("THE BEATLES, of course.", ["Beatles"])
    assert lama_correct("about 1,000 people", ["1000"])
    assert lama_correct("on the 14th.", ["14"])
    assert not lama_correct(
        "the answer", ["The"]
    )  # an answer that normalises to nothing never matches
    assert not lama_correct("Parisian food", ["Paris"])  # whole words only


def test_api_calls_are_not_read_as_answer_text() -> None:
    assert lama_correct("[WikiSearch(one two three four five six) -> a b c d e] Paris", ["Paris"])
    assert not lama_correct(" [QA(Where was she born?) -> Paris] I think London", ["Paris"])
    assert strip_api_calls("born in [QA(Where?) → Lyon]Lyon") == "born in  Lyon"
    assert strip_api_calls("cut off [Calculator(3 * 4") == "cut off  "
    assert strip_api_calls("see [1] and [note]") == "see [1] and [note]"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The answer is 42 apples.", 42),
        ("The correct answer is 5+3=8", 8),  # the paper's footnote 7
        ("5 + 3 = 8 and 8 * 2 = 16", 8),
        ("x = -3, so", -3),
        ("x = \u22123", -3),  # unicode minus
        ("COVID19 cases rose to 7", 7),  # a number inside a word is not a number
        ("A4 paper costs 3 dollars", 3),
        ("COVID-19 cases: 12", 12),
        ("It costs $1,000.50 in total", 1000.5),
        ("5km away", 5),
        ("It is 3. Then 4.", 3),
        ("[Calculator(400 / 1400) -> 0.29] 0.29 of them", 0.29),
        ("The answer is 3/4 of the cake.", 0.75),
        ("The answer is -5/2.", -2.5),
        ("On 3/4/2020 it was 7", 3),  # a date, not a fraction
        ("It grew by 50%", 50),
    ],
)
def test_predicted_number(text: str, number: float) -> None:
    assert predicted_number(text) == pytest.approx(number)


@pytest.mark.parametrize("text", ["no number here", "it is = something", "It is 5 = x"])
def test_no_predicted_number(text: str) -> None:
    assert predicted_number(text) is None


def test_math_correct() -> None:
    assert math_correct(" 51 dollars", ["51.0"])
    assert math_correct("about 0.67", ["0.6666667"])  # the calculator's two decimals
    assert not math_correct("about 0.66", ["0.6666667"])
    assert not math_correct("The answer is 9 or 10 = 10", ["9"])
    assert not math_correct("I do not know", ["9"])


def test_math_answers_are_compared_exactly_in_any_notation() -> None:
    assert math_correct("The answer is 3/4", ["0.75"]) and math_correct("The answer is 0.75", ["3/4"])
    assert math_correct("The answer is 1,000 pencils", ["1000.0"])
    assert math_correct("It is 2/3 of them", ["0.67"])  # within the calculator's two decimals
    # 0.015 is 0.005 from 0.01, not closer; in floats the difference is 0.004999999999999999
    assert not math_correct("about 0.015", ["0.01"])
    assert not math_correct("The answer is 3/4/2020", ["0.75"])


def test_perplexity_pools_tokens() -> None:
    assert perplexity([(2.0, 1), (4.0, 2)]) == pytest.approx(math.exp(2.0))
    with pytest.raises(ValueError, match="zero tokens"):
        perplexity([(0.0, 0)])
