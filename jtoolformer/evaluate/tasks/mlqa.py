"""MLQA (Lewis et al. 2019): questions in six languages about English paragraphs.

Data: download https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip and unzip it into <data_dir>/mlqa,
giving mlqa/MLQA_V1/test/test-context-en-question-<lang>.json (SQuAD format).

Prompt (the paper's appendix C.4): "Your task is to answer a question based on the following
paragraph: <context> Now answer the following question in English: <question>".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from jtoolformer.evaluate.metrics import mlqa_correct
from jtoolformer.evaluate.tasks.base import DataSources, Example, GenerationTask, require_file

LANGUAGES = ("es", "de", "hi", "vi", "zh", "ar")
PROMPT = (
    "Your task is to answer a question based on the following paragraph: {context} "
    "Now answer the following question in English: {question}"
)


def load_mlqa(sources: DataSources, language: str) -> Iterator[Example]:
    path = require_file(
        sources.data_dir
        / "mlqa"
        / "MLQA_V1"
        / "test"
        / f"test-context-en-question-{language}.json",
        f"MLQA ({language})",
        "Download https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip and unzip it into "
        f"{sources.data_dir / 'mlqa'}.",
    )
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield Example(
                    id=qa["id"],
                    prompt=PROMPT.format(
                        context=paragraph["context"].strip(), question=qa["question"].strip()
                    ),
                    answers=tuple(dict.fromkeys(a["text"] for a in qa["answers"])),
                )


def _loader(language: str) -> Callable[[DataSources], Iterator[Example]]:
    return lambda sources: load_mlqa(sources, language)


TASKS = tuple(
    GenerationTask(f"mlqa_{language}", "mlqa", _loader(language), mlqa_correct, 48)
    for language in LANGUAGES
)
