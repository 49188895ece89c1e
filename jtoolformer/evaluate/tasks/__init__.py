"""The evaluation tasks of the paper's §4, by name and by family.

Families: lama (lama_squad, lama_google_re, lama_trex), math (asdiv, svamp, mawps),
qa (webqs, nq, triviaqa), mlqa (mlqa_es ... mlqa_ar), temporal (templama, dateset),
perplexity (wikitext, ccnet). Each module's docstring says where its data goes.
"""

from __future__ import annotations

from jtoolformer.errors import UsageError
from jtoolformer.evaluate.tasks import lama, math_word_problems, mlqa, perplexity, qa, temporal
from jtoolformer.evaluate.tasks.base import (
    DataSources,
    Example,
    GenerationTask,
    MissingDataError,
    PerplexityTask,
    Task,
)

TASKS: dict[str, Task] = {
    task.name: task
    for module in (lama, math_word_problems, qa, mlqa, temporal, perplexity)
    for task in module.TASKS
}
FAMILIES: dict[str, list[str]] = {}
for _task in TASKS.values():
    FAMILIES.setdefault(_task.family, []).append(_task.name)


def resolve_tasks(spec: str) -> list[Task]:
    """Tasks from a comma-separated list of task or family names, in order, without repeats."""
    names: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if item in FAMILIES:
            names.extend(FAMILIES[item])
        elif item in TASKS:
            names.append(item)
        elif item:
            raise UsageError(
                f"unknown task {item!r}; families: {', '.join(FAMILIES)}; tasks: {', '.join(TASKS)}"
            )
    return [TASKS[name] for name in dict.fromkeys(names)]


__all__ = [
    "FAMILIES",
    "TASKS",
    "DataSources",
    "Example",
    "GenerationTask",
    "MissingDataError",
    "PerplexityTask",
    "Task",
    "resolve_tasks",
]
