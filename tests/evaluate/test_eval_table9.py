"""Accuracy with and without a call (the paper's Table 9), through the harness on the fake."""

import json
from pathlib import Path

from eval_fakes import LookupGenerator, words_scorer

from jtoolformer.evaluate import evaluate
from jtoolformer.evaluate.metrics import math_correct
from jtoolformer.evaluate.report import call_split_table
from jtoolformer.evaluate.results import TaskResult
from jtoolformer.evaluate.tasks import DataSources, Example, GenerationTask

EXAMPLES = [
    Example(f"p{i}", f"Problem {i}: what is {i} + {i}? The answer is", (str(2 * i),))
    for i in range(6)
]
# p0–p2 the fake knows (answers without a call); p3–p5 it answers through a call. Its answers to
# p1 (no call) and p4, p5 (with a call) are wrong.
WRONG = {"p1", "p4", "p5"}
TASK = GenerationTask("sums", "math", lambda _: iter(EXAMPLES), math_correct, 16)


def test_accuracy_is_split_by_whether_a_call_was_made(tmp_path: Path) -> None:
    generator = LookupGenerator(
        {e.prompt: f"{int(e.answers[0]) + 1}" if e.id in WRONG else e.answers[0] for e in EXAMPLES},
        {e.prompt for e in EXAMPLES[:3]},
    )
    disabled, enabled = evaluate(
        generator,
        words_scorer,
        [TASK],
        ["disabled", "enabled"],
        None,
        tmp_path,
        data=DataSources(tmp_path),
        batch_size=4,
    )
    # Disabled: p0 and p2 right, no call anywhere.
    assert (disabled.value, disabled.call_share, disabled.n_with_call) == (2 / 6, 0.0, 0)
    assert (disabled.accuracy_with_call, disabled.accuracy_without_call) == (None, 2 / 6)
    # Enabled: calls on p3–p5 (one right), none on p0–p2 (two right).
    assert (enabled.value, enabled.call_share, enabled.n_with_call) == (3 / 6, 0.5, 3)
    assert (enabled.accuracy_with_call, enabled.accuracy_without_call) == (1 / 3, 2 / 3)

    saved = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [(r["accuracy_with_call"], r["accuracy_without_call"]) for r in saved] == [
        (None, 2 / 6),
        (1 / 3, 2 / 3),
    ]
    table = (tmp_path / "results.md").read_text()
    assert "## Accuracy with and without a call (the paper's Table 9)" in table
    assert "| sums | disabled | 6 | 33.3 | – (n=0) | 33.3 (n=6) | 0.0% |" in table
    assert "| sums | enabled | 6 | 50.0 | 33.3 (n=3) | 66.7 (n=3) | 50.0% |" in table


def test_perplexity_alone_has_no_call_split() -> None:
    perplexity = TaskResult("wikitext", "perplexity", "disabled", 2, "perplexity", 7.4)
    assert call_split_table([perplexity]) == ""
