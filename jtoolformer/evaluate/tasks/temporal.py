"""The temporal sets: TempLAMA and DATESET, both scored as LAMA.

TempLAMA (Dhingra et al. 2022): get test.json from https://storage.googleapis.com/gresearch/templama/
(see https://github.com/google-research/language/tree/master/language/templama) and put it in
<data_dir>/templama/test.json (JSON lines: query with a _X_ blank, answers, year). The query has
no year in it: the Calendar tool is what tells the model the date, so each example's calendar
date is a day in its year (ours: drawn from the example's id). Queries whose blank is not at the
end are dropped, as for LAMA; the prompt is LAMA's.

DATESET is generated (see dateset.py); its prompt is the QA prompt (the paper's appendix C.3)
and the Calendar tool reports each question's current date.
"""

from __future__ import annotations

import datetime
import random
import zlib
from collections.abc import Iterator

from jtoolformer.evaluate.metrics import lama_correct
from jtoolformer.evaluate.tasks.base import (
    DataSources,
    Example,
    GenerationTask,
    read_jsonl,
    require_file,
)
from jtoolformer.evaluate.tasks.dateset import generate_dateset
from jtoolformer.evaluate.tasks.lama import MASK, PROMPT, text_before_final_mask
from jtoolformer.evaluate.tasks.qa import qa_prompt

DATESET_SEED = 0


def day_in_year(year: int, key: str) -> datetime.date:
    """A day of ``year`` that depends only on ``key``."""
    days = (datetime.date(year + 1, 1, 1) - datetime.date(year, 1, 1)).days
    offset = random.Random(zlib.crc32(key.encode("utf-8"))).randrange(days)
    return datetime.date(year, 1, 1) + datetime.timedelta(days=offset)


def load_templama(sources: DataSources) -> Iterator[Example]:
    path = require_file(
        sources.data_dir / "templama" / "test.json",
        "TempLAMA",
        "Get https://storage.googleapis.com/gresearch/templama/test.json and put it there.",
    )
    for row in read_jsonl(path):
        prefix = text_before_final_mask(row["query"].replace("_X_", MASK))
        if prefix is not None:
            yield Example(
                id=row["id"],
                prompt=PROMPT.format(prefix),
                answers=tuple(dict.fromkeys(answer["name"] for answer in row["answer"])),
                calendar_date=day_in_year(int(row["date"]), row["id"]),
            )


def load_dateset(sources: DataSources) -> Iterator[Example]:
    for i, question in enumerate(generate_dateset(DATESET_SEED)):
        yield Example(
            id=f"dateset-{i}",
            prompt=qa_prompt(question.question),
            answers=(question.answer,),
            calendar_date=question.current_date,
        )


TASKS = (
    GenerationTask("templama", "temporal", load_templama, lama_correct, 32),
    GenerationTask("dateset", "temporal", load_dateset, lama_correct, 32),
)
