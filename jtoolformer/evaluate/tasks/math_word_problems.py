"""Math word problems: ASDiv, SVAMP and MAWPS.

Data (in <data_dir>/math):
  ASDiv.xml     dataset/ASDiv.xml of https://github.com/chaochun/nlu-asdiv-dataset
  SVAMP.json    SVAMP.json of https://github.com/arkilpatel/SVAMP
  mawps/*.json  the MAWPS release (https://github.com/sroy9/mawps): JSON lists of
                {"iIndex", "sQuestion", "lSolutions", ...}, e.g. AddSub.json, SingleOp.json

Prompt (the paper's appendix C.2): "<context> <question> The answer is". Problems whose gold
answer is not a single number (ASDiv ratios such as "3:2", multi-part answers, MAWPS systems
with several solutions) are skipped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

from jtoolformer.evaluate.metrics import math_correct
from jtoolformer.evaluate.tasks.base import (
    DataSources,
    Example,
    GenerationTask,
    MissingDataError,
    require_file,
)

# An ASDiv answer: one number or fraction, optionally followed by its unit in parentheses: "9 (apples)".
_ASDIV_ANSWER = re.compile(r"\s*(-?\d+/\d+|-?[\d,]*\.?\d+)\s*(?:\([^()]*\))?\s*")


def math_prompt(*parts: str) -> str:
    return " ".join(" ".join(parts).split()) + " The answer is"


def _math_dir(sources: DataSources) -> Path:
    return sources.data_dir / "math"


def load_asdiv(sources: DataSources) -> Iterator[Example]:
    path = require_file(
        _math_dir(sources) / "ASDiv.xml",
        "ASDiv",
        "Get dataset/ASDiv.xml from https://github.com/chaochun/nlu-asdiv-dataset "
        "and put it there.",
    )
    for problem in ElementTree.parse(path).getroot().iter("Problem"):
        answer = _ASDIV_ANSWER.fullmatch(problem.findtext("Answer", ""))
        if answer:
            yield Example(
                id=problem.get("ID", ""),
                prompt=math_prompt(problem.findtext("Body", ""), problem.findtext("Question", "")),
                answers=(answer.group(1),),
            )


def load_svamp(sources: DataSources) -> Iterator[Example]:
    path = require_file(
        _math_dir(sources) / "SVAMP.json",
        "SVAMP",
        "Get SVAMP.json from https://github.com/arkilpatel/SVAMP and put it there.",
    )
    for row in json.loads(path.read_text(encoding="utf-8")):
        yield Example(
            id=row["ID"],
            prompt=math_prompt(row["Body"], row["Question"]),
            answers=(str(row["Answer"]),),
        )


def load_mawps(sources: DataSources) -> Iterator[Example]:
    folder = _math_dir(sources) / "mawps"
    files = sorted(folder.glob("*.json"))
    if not files:
        raise MissingDataError(
            f"MAWPS not found: no *.json in {folder}. Get the MAWPS dataset files "
            "(https://github.com/sroy9/mawps; lists of {iIndex, sQuestion, lSolutions}) "
            "and put them there."
        )
    for path in files:
        for row in json.loads(path.read_text(encoding="utf-8")):
            if len(row["lSolutions"]) == 1:
                yield Example(
                    id=f"{path.stem}-{row['iIndex']}",
                    prompt=math_prompt(row["sQuestion"]),
                    answers=(str(row["lSolutions"][0]),),
                )


_MAX_NEW_TOKENS = 48

TASKS = (
    GenerationTask("asdiv", "math", load_asdiv, math_correct, _MAX_NEW_TOKENS),
    GenerationTask("svamp", "math", load_svamp, math_correct, _MAX_NEW_TOKENS),
    GenerationTask("mawps", "math", load_mawps, math_correct, _MAX_NEW_TOKENS),
)
