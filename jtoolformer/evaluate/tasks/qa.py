"""Open-domain QA: WebQuestions, Natural Questions (open) and TriviaQA.

Each set is read from a prepared TFDS dataset (array_record) in the TFDS data dir when there is
one, else from its original release file in <data_dir>/qa:
  web_questions (test)                     webquestions.examples.test.json
  natural_questions_open (validation)      NQ-open.dev.jsonl
  trivia_qa/unfiltered.nocontext (validation)
                                           triviaqa-unfiltered/unfiltered-web-dev.json

Prompt (the paper's appendix C.3): "Answer the following question: <question>?".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jtoolformer.evaluate.metrics import qa_correct
from jtoolformer.evaluate.tasks.base import (
    DataSources,
    Example,
    GenerationTask,
    read_jsonl,
    require_file,
)
from jtoolformer.evaluate.tasks.tfds_source import tfds_records
from jtoolformer.tools.registry import TOOL_KEYS

PROMPT = "Answer the following question: {}"

QuestionAnswers = tuple[str, tuple[str, ...]]


def qa_prompt(question: str) -> str:
    question = question.strip()
    return PROMPT.format(question if question.endswith("?") else question + "?")


@dataclass(frozen=True)
class _QASet:
    name: str
    tfds_name: str
    tfds_split: str
    from_tfds: Callable[[dict[str, Any]], QuestionAnswers]
    release_file: str
    release_url: str
    read_release: Callable[[Path], Iterator[QuestionAnswers]]

    def load(self, sources: DataSources) -> Iterator[Example]:
        records = tfds_records(self.tfds_name, self.tfds_split, sources.tfds_data_dir)
        pairs: Iterator[QuestionAnswers]
        if records is not None:
            pairs = (self.from_tfds(record) for record in records)
        else:
            path = require_file(
                sources.data_dir / "qa" / self.release_file,
                f"{self.name} (neither in the TFDS data dir nor as a release file)",
                f"Either prepare the TFDS dataset `tfds build {self.tfds_name} "
                f"--file_format=array_record` in the TFDS data dir, or get {self.release_file} "
                f"from {self.release_url} and put it there.",
            )
            pairs = self.read_release(path)
        for i, (question, answers) in enumerate(pairs):
            yield Example(id=f"{self.name}-{i}", prompt=qa_prompt(question), answers=answers)


# WebQuestions' targetValue: (list (description "Jazmyn Bieber") (description Jaxon))
_WEBQS_ANSWER = re.compile(r'\(description (?:"((?:[^"\\]|\\.)*)"|([^)]*))\)')


def _read_webqs(path: Path) -> Iterator[QuestionAnswers]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        answers = tuple(
            quoted or bare for quoted, bare in _WEBQS_ANSWER.findall(row["targetValue"])
        )
        yield row["utterance"], answers


def _read_nq(path: Path) -> Iterator[QuestionAnswers]:
    for row in read_jsonl(path):
        yield row["question"], tuple(row["answer"])


def _trivia_answers(aliases: list[str], value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([value, *aliases]))


def _read_triviaqa(path: Path) -> Iterator[QuestionAnswers]:
    for row in json.loads(path.read_text(encoding="utf-8"))["Data"]:
        yield row["Question"], _trivia_answers(row["Answer"]["Aliases"], row["Answer"]["Value"])


_SETS = (
    _QASet(
        name="webqs",
        tfds_name="web_questions",
        tfds_split="test",
        from_tfds=lambda r: (r["question"], tuple(r["answers"])),
        release_file="webquestions.examples.test.json",
        release_url="https://worksheets.codalab.org/worksheets/0xba659fe363cb46e7a505c5b6a774dc8a",
        read_release=_read_webqs,
    ),
    _QASet(
        name="nq",
        tfds_name="natural_questions_open",
        tfds_split="validation",
        from_tfds=lambda r: (r["question"], tuple(r["answer"])),
        release_file="NQ-open.dev.jsonl",
        release_url="https://github.com/google-research-datasets/natural-questions/tree/master/nq_open",
        read_release=_read_nq,
    ),
    _QASet(
        name="triviaqa",
        tfds_name="trivia_qa/unfiltered.nocontext",
        tfds_split="validation",
        from_tfds=lambda r: (
            r["question"],
            _trivia_answers(r["answer"]["aliases"], r["answer"]["value"]),
        ),
        release_file="triviaqa-unfiltered/unfiltered-web-dev.json",
        release_url="http://nlp.cs.washington.edu/triviaqa/ (triviaqa-unfiltered.tar.gz)",
        read_release=_read_triviaqa,
    ),
)

# The paper keeps the QA tool off here: its Atlas backend was fine-tuned on Natural Questions.
_TOOLS = tuple(t for t in TOOL_KEYS if t != "qa")

TASKS = tuple(GenerationTask(s.name, "qa", s.load, qa_correct, 64, _TOOLS) for s in _SETS)
