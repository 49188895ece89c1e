"""GSM8K-format problems as documents with human-placed calculator calls.

A GSM8K line is {"question": …, "answer": …}; the answer's solution marks every calculation as
`48/2 = <<48/2=24>>24`. A document is the question, a blank line, then the solution with the marks
removed and its final `#### <answer>` line dropped; each mark becomes a `GoldCall` at the character
position where it stood, i.e. right before the result it computes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

_MARK = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_FINAL_ANSWER = re.compile(r"\n?####[^\n]*\s*$")


@dataclass(frozen=True)
class GoldCall:
    position: int  # character offset in the document text
    expression: str
    result: str


def strip_marks(solution: str, offset: int = 0) -> tuple[str, list[GoldCall]]:
    """The solution without its `<<expr=result>>` marks (and without its `####` line), and the marks
    as calls at their positions in the stripped text (plus `offset`)."""
    solution = _FINAL_ANSWER.sub("", solution)
    pieces, calls, last, removed = [], [], 0, 0
    for mark in _MARK.finditer(solution):
        pieces.append(solution[last : mark.start()])
        calls.append(GoldCall(offset + mark.start() - removed, mark.group(1).strip(), mark.group(2).strip()))
        removed += mark.end() - mark.start()
        last = mark.end()
    pieces.append(solution[last:])
    return "".join(pieces), calls


def problem_document(problem: dict, doc_id: str) -> dict:
    """One problem as a corpus document {"id", "text", "gold_calls"}."""
    question = str(problem["question"]).strip()
    head = question + "\n\n"
    solution, calls = strip_marks(str(problem["answer"]).strip(), offset=len(head))
    return {"id": doc_id, "text": head + solution, "gold_calls": [asdict(c) for c in calls]}


def read_problems(path: str | Path, start: int = 0, limit: int = 0) -> Iterator[dict]:
    """Documents for lines start, start+1, … (at most `limit`, 0 for all) of a GSM8K JSONL file; the id
    is "<file name>:<line number>"."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        taken = 0
        for number, line in enumerate(f, 1):
            if number <= start or not line.strip():
                continue
            if limit and taken >= limit:
                return
            yield problem_document(json.loads(line), f"{path.name}:{number}")
            taken += 1


def write_corpus(documents: list[dict], out: str | Path) -> Path:
    """The documents as a JSONL corpus for `jtoolformer annotate` (gold calls kept as metadata lines
    are ignored by the corpus reader)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    return out
