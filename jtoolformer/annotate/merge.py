"""Stage 5: insert the kept calls into the text, x* = x_{<i} e(c, r) x_{≥i}, after dropping leaks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from jtoolformer.annotate.candidates_file import Candidate
from jtoolformer.annotate.stats import AnnotationStats
from jtoolformer.tools.calls import ToolCall, format_call

_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]{3,}", re.UNICODE)
_STOPWORDS = frozenset(
    "the and for are was were who what when where which how why that this with from into does did has have "
    "had not but its his her their them they you your our about after before than then there these those "
    "der die das und ist les des est que los las del por".split()
)


@dataclass(frozen=True)
class KeptCall:
    tool: str  # API name, e.g. "Calculator"
    input: str
    result: str
    token_position: int  # i: the call goes before x_i
    char_position: int  # where in the original text it was inserted
    loss_plus: float  # L_i^+
    loss_minus: float  # L_i^-
    quoted: bool = False

    @property
    def gain(self) -> float:
        return self.loss_minus - self.loss_plus

    @property
    def text(self) -> str:
        return format_call(ToolCall(self.tool, self.input), self.result, quoted=self.quoted)

    def record(self) -> dict:
        return {**asdict(self), "call": self.text}


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS}


def leaks(call_input: str, text: str, char_position: int) -> bool:
    """A call leaks when its input uses words or numbers that the text has only after the call: the
    model copied from the future, which the filter rewards but inference cannot do (§7)."""
    later = content_words(call_input) - content_words(text[:char_position])
    return bool(later & content_words(text[char_position:]))


def spaced_call(call_text: str, text: str, pos: int) -> str:
    """The call as inserted at `pos`: a space before it where it would touch the word before, and after
    it where it would touch the word after ("that is [Calculator(400 / 1400) -> 0.29] 29%")."""
    before = " " if 0 < pos < len(text) and text[pos].isspace() and not text[pos - 1].isspace() else ""
    after = " " if pos < len(text) and not text[pos].isspace() else ""
    return before + call_text + after


def insert_calls(text: str, calls: list[KeptCall]) -> str:
    """The text with each call placed at its char position (see spaced_call)."""
    out, last = [], 0
    for call in sorted(calls, key=lambda c: c.char_position):
        pos = call.char_position
        out += [text[last:pos], spaced_call(call.text, text, pos)]
        last = pos
    out.append(text[last:])
    return "".join(out)


def choose_calls(candidates: list[KeptCall], text: str) -> tuple[list[KeptCall], list[KeptCall]]:
    """At most one call per place (the best gain, over all tools), leaks dropped; returns the calls and
    the leaks. Positions with only whitespace between them are one place: with digit-by-digit
    tokenizers both "= |40" and "=| 40" can take a call, and C* would get the same call twice."""
    best: dict[int, KeptCall] = {}
    leaked = []
    for call in candidates:
        if leaks(call.input, text, call.char_position):
            leaked.append(call)
            continue
        place = len(text) - len(text[call.char_position:].lstrip())
        current = best.get(place)
        if current is None or call.gain > current.gain:
            best[place] = call
    return sorted(best.values(), key=lambda c: c.char_position), leaked


def merge_document(doc: dict, found: list[tuple[KeptCall, Candidate]],
                   stats: Mapping[str, AnnotationStats]) -> dict | None:
    """The C* record of one document from every tool's kept calls (None when none is left): leaking
    calls are dropped, then the best calls that do not overlap are inserted. Each candidate's outcome
    says what became of its call."""
    by_call = {id(call): candidate for call, candidate in found}
    calls, leaked = choose_calls([call for call, _ in found], doc["text"])
    for call in leaked:
        stats[call.tool].skipped["leaking_call"] += 1
        by_call[id(call)].outcome = "leak"
    chosen = {id(call) for call in calls}
    for call, candidate in found:
        if candidate.outcome == "kept" and id(call) not in chosen:
            candidate.outcome = "lost_to_better"
    if not calls:
        return None
    return {"id": doc["id"], "text": insert_calls(doc["text"], calls), "original": doc["text"],
            "url": doc.get("url", ""), "date": doc.get("date", ""), "calls": [c.record() for c in calls]}
