"""Writes an evaluation's results: JSON, a Markdown table beside the paper's figures, a bar
chart, and each run's predictions."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # used without pyplot: no display backend involved

from jtoolformer.evaluate.results import MODES, TaskResult

PAPER_RESULTS = Path(__file__).with_name("paper_results.json")


def load_paper_results() -> dict[str, Any]:
    return json.loads(PAPER_RESULTS.read_text(encoding="utf-8"))


def write_predictions(
    out_dir: Path, task: str, mode: str, records: Sequence[Mapping[str, Any]]
) -> None:
    path = out_dir / "predictions" / f"{task}.{mode}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_json(results: Sequence[TaskResult], path: Path, run_info: Mapping[str, Any]) -> None:
    payload = {"run": dict(run_info), "results": [dataclasses.asdict(r) for r in results]}
    path.write_text(
        json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )


def _shown(result: TaskResult) -> float:
    """Accuracy in %, perplexity as is: the paper's units."""
    return result.value * 100 if result.metric == "accuracy" else result.value


def _format(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if metric == "accuracy" else f"{value:.2f}"


def _calls(result: TaskResult | None) -> str:
    if result is None or result.metric != "accuracy":
        return "–"
    tools = ", ".join(f"{tool} {count}" for tool, count in result.tool_calls.items())
    return f"{result.call_share * 100:.1f}%" + (f" ({tools})" if tools else "")


def _by_task(results: Sequence[TaskResult]) -> dict[str, dict[str, TaskResult]]:
    table: dict[str, dict[str, TaskResult]] = {}
    for result in results:
        table.setdefault(result.task, {})[result.mode] = result
    return table


def markdown_table(results: Sequence[TaskResult], run_info: Mapping[str, Any]) -> str:
    paper = load_paper_results()
    header = (
        ["task", "metric", "n"]
        + [f"paper: {column}" for column in paper["columns"]]
        + [f"ours: {mode}" for mode in MODES]
        + ["ours: tool calls (enabled)"]
    )
    lines = [
        "# Evaluation",
        "",
        *(f"- {key}: {value}" for key, value in run_info.items()),
        "",
        f"Paper: {paper['source']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for task, by_mode in _by_task(results).items():
        first = next(iter(by_mode.values()))
        figures = paper["tasks"].get(task, {})
        cells = [task, first.metric, str(first.n)]
        cells += [_format(figures.get(column), first.metric) for column in paper["columns"]]
        cells += [
            _format(_shown(by_mode[m]) if m in by_mode else None, first.metric) for m in MODES
        ]
        cells.append(_calls(by_mode.get("enabled")))
        lines.append("| " + " | ".join(cells) + " |")
    if table9 := call_split_table(results):
        lines += ["", "## Accuracy with and without a call (the paper's Table 9)", "", table9]
    return "\n".join(lines) + "\n"


def _split_cell(accuracy: float | None, examples: int) -> str:
    return f"{_format(None if accuracy is None else accuracy * 100, 'accuracy')} (n={examples})"


def call_split_table(results: Sequence[TaskResult]) -> str:
    """Accuracy tasks laid out as the paper's Table 9: accuracy on all examples, on those where the
    model made a call (AC), on the others (NC), and the share with a call. "" without such tasks."""
    rows = [
        "| task | mode | n | all | AC: with a call | NC: without a call | share with a call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.metric == "accuracy":
            cells = [
                r.task,
                r.mode,
                str(r.n),
                _format(_shown(r), r.metric),
                _split_cell(r.accuracy_with_call, r.n_with_call),
                _split_cell(r.accuracy_without_call, r.n - r.n_with_call),
                f"{r.call_share * 100:.1f}%",
            ]
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else ""


def _bars(
    axes: Any, tasks: list[str], by_task: dict[str, dict[str, TaskResult]], paper: dict[str, Any]
) -> None:
    modes = [mode for mode in MODES if any(mode in by_task[t] for t in tasks)]
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        xs = [x + (i - (len(modes) - 1) / 2) * width for x in range(len(tasks))]
        heights = [_shown(by_task[t][mode]) if mode in by_task[t] else 0.0 for t in tasks]
        axes.bar(xs, heights, width, label=f"ours: {mode}")
    for column, marker in zip(paper["columns"], ("o", "s", "*"), strict=True):
        points = [
            (x, paper["tasks"][t][column])
            for x, t in enumerate(tasks)
            if column in paper["tasks"].get(t, {})
        ]
        if points:
            axes.scatter(
                *zip(*points, strict=True),
                marker=marker,
                color="black",
                zorder=3,
                label=f"paper: {column}",
            )
    axes.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    axes.legend(fontsize="small")


def write_chart(results: Sequence[TaskResult], path: Path) -> None:
    by_task = _by_task(results)
    metric_of = {task: next(iter(modes.values())).metric for task, modes in by_task.items()}
    groups = {
        metric: [task for task in by_task if metric_of[task] == metric]
        for metric in ("accuracy", "perplexity")
        if metric in metric_of.values()
    }
    figure = Figure(figsize=(max(8.0, 2 + 0.8 * len(by_task)), 5), layout="constrained")
    all_axes = figure.subplots(
        1, len(groups), squeeze=False, width_ratios=[max(len(t), 2) for t in groups.values()]
    )[0]
    paper = load_paper_results()
    for axes, (metric, tasks) in zip(all_axes, groups.items(), strict=True):
        _bars(axes, tasks, by_task, paper)
        axes.set_ylabel("accuracy (%)" if metric == "accuracy" else "perplexity")
    figure.savefig(path, dpi=120)


def write_report(results: Sequence[TaskResult], out_dir: Path, run_info: Mapping[str, Any]) -> None:
    """results.json, results.md and results.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(results, out_dir / "results.json", run_info)
    (out_dir / "results.md").write_text(markdown_table(results, run_info), encoding="utf-8")
    write_chart(results, out_dir / "results.png")
