"""Calculator: + − × / and parentheses on decimals, never `eval`; results rounded to 2 decimals.

The expression is normalised (Unicode operators, "3 x 4", thousands separators, "20%", "20% of"),
checked against a character whitelist, parsed with `ast` and evaluated by walking a whitelist of
nodes with exact fractions: each number is read from its digits as written, never through a float,
so results are exact at any length and rounded exactly. Work is bounded by the expression length,
the nesting depth and the magnitude of every number; powers are not part of the language.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction

from jtoolformer.tools.base import RARE_CALL_SAMPLING, PromptedTool, ToolContext
from jtoolformer.tools.calculator_prefilter import find_numbers, has_arithmetic_triple, has_result_cue

MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 100
MAX_MAGNITUDE = Fraction(10**15)

_PERCENT = "P"  # stands for "n%" once normalised: P(n)
_OPERATOR_SPELLINGS = str.maketrans({"×": "*", "·": "*", "⋅": "*", "∗": "*", "÷": "/", "−": "-", "–": "-",
                                     "—": "-", "$": None, "€": None, "£": None})
_TIMES_LETTER = re.compile(r"(?<=[\d)%])\s*[xX]\s*(?=[\d(.])")
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])")
_PERCENT_OF = re.compile(r"%\s*of\b")
_PERCENT_NUMBER = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*%")
_LEADING_ZEROS = re.compile(r"(?<![\d.])0+(?=\d)")
_ALLOWED = re.compile(r"[0-9.+\-*/()%\s]*")
_BINARY = {ast.Add, ast.Sub, ast.Mult, ast.Div}


@dataclass(frozen=True)
class _Value:
    number: Fraction
    is_percent: bool = False


class _Invalid(Exception):
    """The expression is outside the calculator's language or its bounds."""


def evaluate(expression: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None when it is invalid or out of bounds."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        normalised = _normalise(expression)
        tree = ast.parse(normalised, mode="eval")
        return _evaluate(tree.body, normalised, depth=0).number
    except (_Invalid, SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None


def format_number(value: Fraction) -> str:
    """Rounded half away from zero to 2 decimals, without trailing zeros: 2/7 → "0.29", 6/3 → "2"."""
    cents = int(abs(value) * 100 + Fraction(1, 2))
    whole, fraction = divmod(cents, 100)
    sign = "-" if value < 0 and cents else ""
    return f"{sign}{whole}" if fraction == 0 else f"{sign}{whole}.{fraction:02d}".rstrip("0")


def _normalise(expression: str) -> str:
    text = " ".join(expression.translate(_OPERATOR_SPELLINGS).split()).removesuffix("=")
    text = _TIMES_LETTER.sub("*", text)
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _PERCENT_OF.sub("%*", text)
    if not _ALLOWED.fullmatch(text) or "**" in text or "//" in text:
        raise _Invalid
    text = _PERCENT_NUMBER.sub(rf"{_PERCENT}(\1)", text)
    if "%" in text:
        raise _Invalid
    return _LEADING_ZEROS.sub("", text)


def _evaluate(node: ast.AST, source: str, depth: int) -> _Value:
    """The value of `node`, a node of the tree parsed from `source`."""
    if depth > MAX_DEPTH:
        raise _Invalid
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _Value(_bounded(Fraction(ast.get_source_segment(source, node) or "")))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == _PERCENT \
            and len(node.args) == 1 and not node.keywords:
        return _Value(_evaluate(node.args[0], source, depth + 1).number / 100, is_percent=True)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate(node.operand, source, depth + 1)
        sign = -1 if isinstance(node.op, ast.USub) else 1
        return _Value(sign * operand.number, operand.is_percent)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node.op, _evaluate(node.left, source, depth + 1), _evaluate(node.right, source, depth + 1))
    raise _Invalid


def _binary(op: ast.operator, left: _Value, right: _Value) -> _Value:
    if isinstance(op, (ast.Add, ast.Sub)):
        if left.is_percent != right.is_percent:
            raise _Invalid  # "150 + 10%": 160 or 165? Ambiguous, so no answer.
        total = left.number + right.number if isinstance(op, ast.Add) else left.number - right.number
        return _Value(_bounded(total), left.is_percent)
    product = left.number * right.number if isinstance(op, ast.Mult) else left.number / right.number
    return _Value(_bounded(product))


def _bounded(number: Fraction) -> Fraction:
    if abs(number) > MAX_MAGNITUDE:
        raise _Invalid
    return number


class Calculator(PromptedTool):
    name = "Calculator"
    prompt_name = "calculator"
    sampling = RARE_CALL_SAMPLING

    def __init__(self, dense_number_keep_rate: float = 0.01):
        self.dense_number_keep_rate = dense_number_keep_rate

    def __call__(self, input: str, context: ToolContext) -> str:
        value = evaluate(input)
        return "" if value is None else format_number(value)

    def prefilter(self, text: str, context: ToolContext) -> bool:
        """Arithmetic in view: a triple a ∘ b = c within 100 tokens, or a result cue ("=", "equals",
        "total of", ...) before a number; else ≥ 3 numbers, kept for a stable 1% of such documents."""
        if has_result_cue(text):
            return True
        numbers = find_numbers(text)
        if len(numbers) < 3:
            return False
        return has_arithmetic_triple(numbers) or self._in_subsample(text, context)

    def _in_subsample(self, text: str, context: ToolContext) -> bool:
        key = (context.doc_id or text).encode("utf-8", "replace")
        bucket = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64
        return bucket < self.dense_number_keep_rate
