import pytest

from jtoolformer.evaluate.normalize import canonical_number, normalize_answer, split_words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Beatles!", "beatles"),
        ("An apple a day", "apple day"),
        ("Jean-Paul Sartre's", "jean paul sartre s"),
        ("Padmé Amidala", "padmé amidala"),
        ("１２ apples", "12 apples"),  # full-width digits
        ("1,000", "1000"),
        ("1,000,000 people", "1000000 people"),
        ("1000.0", "1000"),
        ("2.50 and 3.5", "2.5 and 3.5"),
        ("5,6", "5 6"),  # not a thousands group
        ("12,5000", "12 5000"),
        ("the 14th of May", "14 of may"),
        ("1st 2nd 3rd", "1 2 3"),
        ("month fourth", "month fourth"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("100", "100"),
        ("100.0", "100"),
        ("100.00", "100"),
        ("0.50", "0.5"),
        ("0.0", "0"),
        ("abc", "abc"),
    ],
)
def test_canonical_number_drops_only_trailing_decimal_zeros(token: str, expected: str) -> None:
    assert canonical_number(token) == expected


def test_split_words_on_any_whitespace() -> None:
    assert split_words(" one\ttwo\nthree  four ") == ["one", "two", "three", "four"]
