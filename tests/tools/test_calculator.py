import ast
import builtins
import re
import time
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tools_fuzz import ATTACKS, FUZZ_SETTINGS, TIME_LIMIT_S, hostile_text

from jtoolformer.tools.base import ToolContext
from jtoolformer.tools.calculator import MAX_EXPRESSION_CHARS, MAX_MAGNITUDE, Calculator, evaluate, format_number

calculator = Calculator()
NO_CONTEXT = ToolContext()
RESULT = re.compile(r"-?\d+(\.\d{1,2})?")


@pytest.mark.parametrize("expression, result", [
    ("400 / 1400", "0.29"),  # the paper's example
    ("27 + 4 * 2", "35"),
    ("18 + 12 * 3", "54"),
    ("(250 - 40) / 250", "0.84"),
    ("12.50 * 4", "50"),
    ("1,500 / 6", "250"),
    ("$1,200 + $300", "1500"),
    ("1,234,567.5 - 0.5", "1234567"),
    ("20% of 150", "30"),
    ("150 * 20%", "30"),
    ("300 / 50%", "600"),
    ("50%", "0.5"),
    ("20% + 30%", "0.5"),
    ("3 x 4", "12"),
    ("6 × 7", "42"),
    ("3x4", "12"),
    ("10 ÷ 4", "2.5"),
    ("5 − 7", "-2"),
    ("-(3 + 2)", "-5"),
    ("2 / 3", "0.67"),
    ("1 / 3", "0.33"),
    ("0.1 + 0.2", "0.3"),
    ("0.005", "0.01"),
    ("-0.005", "-0.01"),
    ("-0.004", "0"),
    ("007 + 1.05", "8.05"),
    ("400 / 1400 =", "0.29"),
    ("  ( 1 + 2 )\n* 3 ", "9"),
    ("1+" * 99 + "1", "100"),
    ("999999999999999 + 1", "1000000000000000"),
])
def test_arithmetic(expression, result):
    assert calculator(expression, NO_CONTEXT) == result


@pytest.mark.parametrize("expression", [
    "", "   ", "abc", "1 +", "1 / 0", "(1 - 1) / (2 - 2)", "2 ** 3", "2 ^ 3", "10 % 3", "7 // 2",
    "150 + 10%", "10% - 5", "1,5 + 1", "1e5", "0x1F", "1_000", "1.2.3", "[1, 2]", "(1, 2)", "P(5)",
    "a + 1", "1 < 2", "not 1", "~1", "9999999999999999", "99999999 * 99999999", "1 / 3 * 10**20",
    "-" * 190 + "1", "1+" * 100 + "1", "(" * 300 + "1" + ")" * 300,
])
def test_invalid_or_unbounded_input_gives_empty_result(expression):
    assert calculator(expression, NO_CONTEXT) == ""


def test_expression_length_is_bounded():
    expression = "1+" * 100 + "1"
    assert len(expression) > MAX_EXPRESSION_CHARS
    assert evaluate(expression) is None
    assert evaluate(expression[:-2]) == 100


def test_format_number_rounds_half_away_from_zero():
    assert format_number(Fraction(2, 7)) == "0.29"
    assert format_number(Fraction(1, 8)) == "0.13"
    assert format_number(Fraction(-1, 8)) == "-0.13"
    assert format_number(Fraction(6, 3)) == "2"
    assert format_number(Fraction(1, 2)) == "0.5"


def test_nothing_is_compiled_to_code_or_executed(monkeypatch, tmp_path):
    compiled_modes = []
    real_compile = builtins.compile

    def recording_compile(source, filename, mode, flags=0, *args, **kwargs):
        compiled_modes.append(flags & ast.PyCF_ONLY_AST)
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must never be called")

    monkeypatch.setattr(builtins, "compile", recording_compile)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    marker = tmp_path / "pwned"
    injections = [f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')",
                  "().__class__.__bases__[0].__subclasses__()", "lambda: 0", "9**9**9**9"]
    assert [calculator(text, NO_CONTEXT) for text in injections] == [""] * len(injections)
    for text in ATTACKS:
        calculator(text, NO_CONTEXT)
    assert calculator("400 / 1400", NO_CONTEXT) == "0.29"
    assert compiled_modes and all(compiled_modes), "only ast.parse may compile, and only to an AST"
    assert not marker.exists()


def _within(value: Fraction | None) -> Fraction | None:
    return None if value is None or abs(value) > MAX_MAGNITUDE else value


def _expressions(leaves, depth: int = 3):
    """(expression text, exact value or None where the calculator must refuse: a division by zero,
    a number or intermediate result beyond MAX_MAGNITUDE, or a text over MAX_EXPRESSION_CHARS), built
    without Python evaluation."""
    if depth == 0:
        return leaves

    def combine(parts):
        (left, a), op, (right, b) = parts
        text = f"({left} {op} {right})"
        if a is None or b is None or (op == "/" and b == 0) or len(text) > MAX_EXPRESSION_CHARS:
            return text, None
        value = {"+": a + b, "-": a - b, "*": a * b}[op] if op != "/" else a / b
        return text, _within(value)

    sub = _expressions(leaves, depth - 1)
    return st.one_of(leaves, st.tuples(sub, st.sampled_from("+-*/"), sub).map(combine))


_NUMBERS = st.one_of(st.integers(0, 10**6), st.decimals(0, 10**4, places=2)).map(lambda n: (str(n), Fraction(str(n))))


@given(_expressions(_NUMBERS))
def test_agrees_with_exact_arithmetic(expression_and_value):
    expression, value = expression_and_value
    expected = "" if value is None else format_number(value)
    assert calculator(expression, NO_CONTEXT) == expected


@pytest.mark.parametrize("expression, result", [
    ("0.004999999999999999999", "0"),  # read through a float: "0.01"
    ("999999999999999.99", "999999999999999.99"),  # "1000000000000000"
    ("85524113810864.1761030", "85524113810864.18"),  # "85524113810864.17"
    ("0.1 + 0.2 - 0.3", "0"),
    ("10.004999999999999999 * 1", "10"),  # 10.005 as a float: "10.01"
    ("1000000000000000 - 0.006", "999999999999999.99"),
])
def test_numbers_are_read_exactly(expression, result):
    assert calculator(expression, NO_CONTEXT) == result


def _rounded_reference(value: Fraction) -> str:
    """Half away from zero to cents, by integer division and `decimal` (not `format_number`)."""
    cents, remainder = divmod(abs(value.numerator) * 100, value.denominator)
    cents += 2 * remainder >= value.denominator
    text = f"{Decimal(cents).scaleb(-2):f}".rstrip("0").rstrip(".")
    return "-" + text if value < 0 and cents else text


_LONG_DECIMAL = st.tuples(st.integers(0, 10**15), st.text("0123456789", max_size=30)).map(
    lambda parts: f"{parts[0]}.{parts[1]}" if parts[1] else str(parts[0]))


@settings(max_examples=2000, deadline=None)
@given(_expressions(_LONG_DECIMAL.map(lambda text: (text, _within(Fraction(text))))))
def test_agrees_with_fractions_on_long_decimals(expression_and_value):
    expression, value = expression_and_value
    expected = "" if value is None else _rounded_reference(value)
    assert calculator(expression, NO_CONTEXT) == expected


@pytest.mark.parametrize("text", [
    "We had 12 apples and bought 30 more, so 42 in all.",
    "Out of 1,400 participants, 400 (or 0.29 of them) passed.",
    "The bill came to a total of 45 dollars.",
    "Speed times time = 120 km.",
    "Their average of 7.5 goals leads the league.",
])
def test_prefilter_keeps_arithmetic_documents(text):
    assert Calculator(dense_number_keep_rate=0.0).prefilter(text, NO_CONTEXT)


@pytest.mark.parametrize("text", [
    "It was 1999.",
    "No numbers at all here.",
    "Room 7 on floor 19 of building 123.",
    "One 5 and another 5 and a 1.",  # 5 x 1 = 5 is an identity, not arithmetic
    "12 " + "word " * 150 + "30 and 42",  # 30 + 12 = 42, but 12 is 150 tokens away
])
def test_prefilter_drops_documents_without_arithmetic(text):
    assert not Calculator(dense_number_keep_rate=0.0).prefilter(text, NO_CONTEXT)


def test_prefilter_keeps_a_stable_one_percent_of_number_heavy_documents():
    text = "Room 7 on floor 19 of building 123."
    kept = [Calculator().prefilter(text, ToolContext(doc_id=str(i))) for i in range(5000)]
    assert 0.005 < sum(kept) / len(kept) < 0.02
    assert kept == [Calculator().prefilter(text, ToolContext(doc_id=str(i))) for i in range(5000)]


@FUZZ_SETTINGS
@given(text=hostile_text)
def test_fuzz_calculator(text):
    started = time.perf_counter()
    result = calculator(text, NO_CONTEXT)
    keep = calculator.prefilter(text, NO_CONTEXT)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert result == "" or RESULT.fullmatch(result)
    assert isinstance(keep, bool)
