"""API calls as text: e(c) = "[Tool(input)]", e(c, r) = "[Tool(input) -> r]" (docs/method.md §1).

Parsing is tolerant of what a model writes: spaces anywhere between the parts, "→" for "->", the
tool name in any letter case, one pair of quotes around the input, parentheses inside the input.
A call never contains "[" or "]" besides its own brackets, and its input never contains an arrow,
which keeps parsing linear in the length of the text.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from jtoolformer.tools.text import clean_text

CALL_START = "["
CALL_END = "]"
ARROW = "->"
ARROWS = ("->", "→")
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»"}

_BRACKETED = re.compile(r"\[([^\[\]]*)\]")
_HEAD = re.compile(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*\(")
_TOOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ToolCall:
    """c = (a_c, i_c): a tool's API name and its text input."""

    tool: str
    input: str


@dataclass(frozen=True)
class FoundCall:
    """A call found in annotated text: `text[start:end]` is the whole "[...]"."""

    call: ToolCall
    result: str | None  # None: no arrow, e(c); "": an arrow and nothing after it, e(c, ε)
    start: int
    end: int
    # Where what follows the arrow begins: text[result_start:end] is the result and "]", the part
    # decoding appends rather than samples. None without an arrow.
    result_start: int | None = None


def format_call(call: ToolCall, result: str | None = None, *, quoted: bool = False) -> str:
    """e(c) when `result` is None, else e(c, result). `quoted` writes the input as "input".

    Input and result are stripped; raises ValueError where they would not parse back (brackets,
    an arrow in the input, a tool name that is not an identifier).
    """
    if not _TOOL_NAME.fullmatch(call.tool):
        raise ValueError(f"tool name {call.tool!r} is not an identifier")
    text = call.input.strip()
    if _has_bracket(text) or any(arrow in text for arrow in ARROWS):
        raise ValueError(f"a call input cannot contain '[', ']' or an arrow: {text!r}")
    if quoted or _unquote(text) != text:
        text = f'"{text}"'
    head = f"{CALL_START}{call.tool}({text})"
    return head + CALL_END if result is None else head + " " + ARROW + result_suffix(result)


def result_suffix(result: str) -> str:
    """What follows the arrow: " r]", or "]" for no result. Decoding appends exactly this after "->"."""
    result = result.strip()
    if _has_bracket(result):
        raise ValueError(f"a call result cannot contain '[' or ']' (clean it with clean_result): {result!r}")
    return f" {result}{CALL_END}" if result else CALL_END


def clean_result(result: str) -> str:
    """A tool's output made safe to put inside a call: one line, printable, brackets made round."""
    return clean_text(result).replace("[", "(").replace("]", ")")


def find_calls(text: str, tool_names: Collection[str] | None = None) -> list[FoundCall]:
    """Every well-formed call in `text`, left to right. With `tool_names`, only calls to those tools
    (matched in any case, reported with the spelling given); without, any identifier is a tool name."""
    names = _canonical_names(tool_names)
    found = []
    for match in _BRACKETED.finditer(text):
        parsed = _parse_body(match.group(1), names)
        if parsed is not None:
            call, result, after_arrow = parsed
            body_start = match.start(1)
            result_start = None if after_arrow is None else body_start + after_arrow
            found.append(FoundCall(call, result, match.start(), match.end(), result_start))
    return found


def parse_partial_call(text: str, tool_names: Collection[str]) -> ToolCall | None:
    """The call a model has written so far: the text after the API-start "[" up to "->" or "]"
    (either may still be attached, as may the "[" itself). None when malformed or not a known tool."""
    body = text.strip()
    body = body.removeprefix(CALL_START).removesuffix(CALL_END)
    if _has_bracket(body):
        return None
    parsed = _parse_body(body, _canonical_names(tool_names))
    return parsed[0] if parsed is not None else None


def _parse_body(body: str, names: dict[str, str] | None) -> tuple[ToolCall, str | None, int | None] | None:
    """Parses what lies between "[" and "]": `Tool(input)`, optionally followed by an arrow and a result.
    Returns the call, the result and the offset in `body` just after the arrow (None without one)."""
    head, result, after_arrow = body, None, None
    arrow_at = min(((body.find(a), a) for a in ARROWS if a in body), default=None)
    if arrow_at is not None:
        at, arrow = arrow_at
        after_arrow = at + len(arrow)
        head, result = body[:at], body[after_arrow:].strip()
    head = head.rstrip()
    match = _HEAD.match(head)
    if match is None or not head.endswith(")") or len(head) <= match.end():
        return None
    name = match.group(1) if names is None else names.get(match.group(1).lower())
    if name is None:
        return None
    return ToolCall(name, _unquote(head[match.end(): -1].strip())), result, after_arrow


def _canonical_names(tool_names: Collection[str] | None) -> dict[str, str] | None:
    return None if tool_names is None else {name.lower(): name for name in tool_names}


def _unquote(text: str) -> str:
    if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def _has_bracket(text: str) -> bool:
    return CALL_START in text or CALL_END in text
