"""Runs the tasks under each decoding mode and collects the paper's numbers: accuracy, the share
of inputs with a tool call, calls per tool; perplexity with tools disabled."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from jtoolformer.errors import UsageError
from jtoolformer.evaluate.metrics import perplexity
from jtoolformer.evaluate.protocols import GenerationLike, Generator, TextScorer
from jtoolformer.evaluate.report import write_predictions, write_report
from jtoolformer.evaluate.results import MODES, TaskResult
from jtoolformer.evaluate.tasks import DataSources, Example, GenerationTask, PerplexityTask, Task

Item = TypeVar("Item")
Output = TypeVar("Output")


def _mean(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def _first(items: Iterator[Item], limit: int | None, task: str, data: DataSources) -> list[Item]:
    first = list(islice(items, limit))
    if not first:
        raise ValueError(f"task {task} has no examples (data dir {data.data_dir}, limit {limit})")
    return first


def _in_batches(
    items: list[Item], batch_size: int, label: str, run: Callable[[list[Item]], Sequence[Output]]
) -> Iterator[tuple[Item, Output]]:
    """Each item with its output, ``run`` being called on batches; shows a progress bar."""
    with tqdm(total=len(items), desc=label, unit="ex") as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            outputs = run(batch)
            if len(outputs) != len(batch):
                raise ValueError(f"{label}: {len(outputs)} outputs for {len(batch)} inputs")
            yield from zip(batch, outputs, strict=True)
            bar.update(len(batch))


def _run_generation(
    generator: Generator,
    task: GenerationTask,
    examples: list[Example],
    mode: str,
    trigger_top_k: int,
    batch_size: int,
) -> tuple[TaskResult, list[dict[str, Any]]]:
    tools = task.tools if mode == "enabled" else ()

    def generate(batch: list[Example]) -> Sequence[GenerationLike]:
        return generator(
            [example.prompt for example in batch],
            max_new_tokens=task.max_new_tokens,
            tools=tools,
            trigger_top_k=trigger_top_k if mode == "enabled" else None,
            calendar_dates=[example.calendar_date for example in batch],
        )

    label = f"{task.name} [{mode}]"
    records: list[dict[str, Any]] = []
    tool_calls: Counter[str] = Counter()
    for example, generation in _in_batches(examples, batch_size, label, generate):
        used = [call.tool for call in generation.calls]
        if forbidden := sorted(set(used) - set(tools)):
            raise ValueError(
                f"{label} example {example.id}: the generator called {forbidden}; "
                f"allowed here: {list(tools) or 'none'}"
            )
        tool_calls.update(used)
        records.append(
            {
                "id": example.id,
                "prompt": example.prompt,
                "answers": list(example.answers),
                "generation": generation.text,
                "calls": [
                    {"tool": c.tool, "input": c.input, "result": c.result} for c in generation.calls
                ],
                "correct": task.metric(generation.text, example.answers),
            }
        )
    correct = [record["correct"] for record in records]
    called = [bool(record["calls"]) for record in records]
    result = TaskResult(
        task=task.name,
        family=task.family,
        mode=mode,
        n=len(records),
        metric="accuracy",
        value=sum(correct) / len(records),
        call_share=sum(called) / len(records),
        tool_calls=dict(sorted(tool_calls.items())),
        accuracy_with_call=_mean([ok for ok, c in zip(correct, called, strict=True) if c]),
        accuracy_without_call=_mean([ok for ok, c in zip(correct, called, strict=True) if not c]),
        n_with_call=sum(called),
    )
    return result, records


def _run_perplexity(
    scorer: TextScorer, task: PerplexityTask, texts: list[str], batch_size: int
) -> tuple[TaskResult, list[dict[str, Any]]]:
    label = f"{task.name} [perplexity]"
    scores = [score for _, score in _in_batches(texts, batch_size, label, scorer)]
    result = TaskResult(
        task.name, task.family, "disabled", len(texts), "perplexity", perplexity(scores)
    )
    return result, [{"index": i, "nll": nll, "tokens": n} for i, (nll, n) in enumerate(scores)]


def check_modes(modes: Sequence[str]) -> None:
    """At least one mode, each one of MODES; else a UsageError."""
    if unknown := [mode for mode in modes if mode not in MODES]:
        raise UsageError(f"unknown modes {unknown}; choose from {list(MODES)}")
    if not modes:
        raise UsageError(f"no mode given; choose from {list(MODES)}")


def evaluate(
    generator: Generator,
    scorer: TextScorer,
    tasks: Sequence[Task],
    modes: Sequence[str],
    limit: int | None,
    out_dir: Path,
    *,
    data: DataSources,
    trigger_top_k: int = 10,
    batch_size: int = 16,
    run_info: Mapping[str, Any] | None = None,
) -> list[TaskResult]:
    """Evaluates every task under every mode on its first ``limit`` examples (None: all).

    Perplexity tasks run once, with tools disabled, whatever the modes. Writes results.json,
    results.md (beside the paper's figures), results.png and predictions/<task>.<mode>.jsonl
    into ``out_dir``.
    """
    check_modes(modes)
    results: list[TaskResult] = []
    for task in tasks:
        if isinstance(task, PerplexityTask):
            texts = _first(task.load(data), limit, task.name, data)
            runs = [_run_perplexity(scorer, task, texts, batch_size)]
        else:
            examples = _first(task.load(data), limit, task.name, data)
            runs = [
                _run_generation(generator, task, examples, mode, trigger_top_k, batch_size)
                for mode in dict.fromkeys(modes)
            ]
        for result, records in runs:
            write_predictions(out_dir, result.task, result.mode, records)
            results.append(result)
    write_report(
        results, out_dir, {**(run_info or {}), "trigger_top_k": trigger_top_k, "limit": limit}
    )
    return results
