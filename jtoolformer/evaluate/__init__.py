"""Zero-shot evaluation of the paper's §4: LAMA, math, QA, MLQA, temporal sets, perplexity."""

from jtoolformer.evaluate.harness import evaluate
from jtoolformer.evaluate.protocols import GenerationLike, Generator, TextScorer
from jtoolformer.evaluate.results import MODES, TaskResult
from jtoolformer.evaluate.tasks import DataSources, resolve_tasks

__all__ = [
    "MODES",
    "DataSources",
    "GenerationLike",
    "Generator",
    "TaskResult",
    "TextScorer",
    "evaluate",
    "resolve_tasks",
]
