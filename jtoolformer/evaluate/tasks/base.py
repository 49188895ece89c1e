"""What a task is: examples (or texts), how they are scored, and which tools they allow."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jtoolformer.tools.registry import TOOL_KEYS


class MissingDataError(FileNotFoundError):
    """An evaluation data file is not where the loader looks for it."""


@dataclass(frozen=True)
class DataSources:
    """Where the evaluation data lives.

    data_dir: the original releases, laid out as each task module's docstring says.
    tfds_data_dir: a TFDS data dir with array_record datasets; None means TFDS's default.
    """

    data_dir: Path
    tfds_data_dir: Path | None = None


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str
    answers: tuple[str, ...]
    # The date the Calendar tool reports for this example; None: the real current date.
    calendar_date: datetime.date | None = None


Metric = Callable[[str, Sequence[str]], bool]


@dataclass(frozen=True)
class GenerationTask:
    name: str
    family: str
    load: Callable[[DataSources], Iterator[Example]]
    metric: Metric
    max_new_tokens: int
    tools: tuple[str, ...] = TOOL_KEYS  # the tools allowed when tools are enabled


@dataclass(frozen=True)
class PerplexityTask:
    """Perplexity of raw texts, always with tools disabled (the paper's §4.3)."""

    name: str
    family: str
    load: Callable[[DataSources], Iterator[str]]


Task = GenerationTask | PerplexityTask


def require_file(path: Path, what: str, how_to_get: str) -> Path:
    """``path`` if it exists, else a MissingDataError saying where to get it and put it."""
    if not path.exists():
        raise MissingDataError(f"{what} not found at {path}. {how_to_get}")
    return path


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{line_number}: not a JSON line ({e})") from e
