"""LAMA (Petroni et al. 2019): the SQuAD, Google-RE and T-REx subsets.

Data: download https://dl.fbaipublicfiles.com/LAMA/data.zip, unzip it and move its data/ folder
to <data_dir>/lama, giving lama/Squad/test.jsonl, lama/Google_RE/*_test.jsonl, lama/TREx/P*.jsonl
and lama/relations.jsonl.

SQuAD items carry their masked sentence; Google-RE and T-REx facts are put into LAMA's relation
templates ("[X] was born in [Y] ."), as LAMA probes them. The paper keeps only statements whose
mask is the last token (a final full stop aside); the prompt is the text before the mask.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from jtoolformer.evaluate.metrics import lama_correct
from jtoolformer.evaluate.tasks.base import (
    DataSources,
    Example,
    GenerationTask,
    MissingDataError,
    read_jsonl,
    require_file,
)
from jtoolformer.tools.registry import TOOL_KEYS

PROMPT = "Please complete the following text so that it is factually correct: {}"
MASK = "[MASK]"
_MASK_LAST = re.compile(r"(.*\S)\s*\[MASK\]\s*[.!?]?\s*", re.DOTALL)
_GOOGLE_RE_TEMPLATES = Path(__file__).with_name("google_re_templates.json")
_HOW_TO_GET = (
    "Download https://dl.fbaipublicfiles.com/LAMA/data.zip, unzip it and move its data/ "
    "folder to {root}."
)


def text_before_final_mask(statement: str) -> str | None:
    """The text before the single [MASK] when the mask ends the statement, else None."""
    if statement.count(MASK) != 1:
        return None
    match = _MASK_LAST.fullmatch(statement)
    return match.group(1) if match else None


def lama_example(example_id: str, statement: str, answer: str) -> Example | None:
    """The prompt for a masked statement, or None when its mask is not the last token."""
    prefix = text_before_final_mask(statement)
    if prefix is None:
        return None
    return Example(id=example_id, prompt=PROMPT.format(prefix), answers=(answer,))


def _root(sources: DataSources) -> Path:
    return sources.data_dir / "lama"


def _require(path: Path, sources: DataSources) -> Path:
    return require_file(path, "LAMA data", _HOW_TO_GET.format(root=_root(sources)))


def _fill(template: str, subject: str) -> str:
    return template.replace("[X]", subject).replace("[Y]", MASK)


def load_squad(sources: DataSources) -> Iterator[Example]:
    for row in read_jsonl(_require(_root(sources) / "Squad" / "test.jsonl", sources)):
        if example := lama_example(row["id"], row["masked_sentences"][0], row["obj_label"]):
            yield example


def _relation_files(folder: Path, pattern: str, sources: DataSources) -> list[Path]:
    files = sorted(_require(folder, sources).glob(pattern))
    if not files:
        raise MissingDataError(
            f"no {pattern} files in {folder}. " + _HOW_TO_GET.format(root=_root(sources))
        )
    return files


def load_google_re(sources: DataSources) -> Iterator[Example]:
    templates = json.loads(_GOOGLE_RE_TEMPLATES.read_text(encoding="utf-8"))
    for path in _relation_files(_root(sources) / "Google_RE", "*_test.jsonl", sources):
        for row in read_jsonl(path):
            relation = row["pred"].rsplit("/", 1)[-1]
            if relation not in templates:
                raise ValueError(
                    f"{path}: relation {relation!r} has no template in {_GOOGLE_RE_TEMPLATES}"
                )
            statement = _fill(templates[relation], row["sub_label"])
            if example := lama_example(row["uuid"], statement, row["obj_label"]):
                yield example


def load_trex(sources: DataSources) -> Iterator[Example]:
    relations_path = _require(_root(sources) / "relations.jsonl", sources)
    templates = {row["relation"]: row["template"] for row in read_jsonl(relations_path)}
    for path in _relation_files(_root(sources) / "TREx", "P*.jsonl", sources):
        if path.stem not in templates:
            raise ValueError(f"{path}: relation {path.stem} has no template in {relations_path}")
        for row in read_jsonl(path):
            statement = _fill(templates[path.stem], row["sub_label"])
            if example := lama_example(row["uuid"], statement, row["obj_label"]):
                yield example


# The paper keeps WikiSearch off on LAMA: its statements come straight from Wikipedia.
_TOOLS = tuple(t for t in TOOL_KEYS if t != "wikisearch")
_MAX_NEW_TOKENS = 32

TASKS = (
    GenerationTask("lama_squad", "lama", load_squad, lama_correct, _MAX_NEW_TOKENS, _TOOLS),
    GenerationTask("lama_google_re", "lama", load_google_re, lama_correct, _MAX_NEW_TOKENS, _TOOLS),
    GenerationTask("lama_trex", "lama", load_trex, lama_correct, _MAX_NEW_TOKENS, _TOOLS),
)
