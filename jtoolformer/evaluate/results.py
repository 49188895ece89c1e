"""One task's outcome under one decoding mode."""

from __future__ import annotations

from dataclasses import dataclass, field

# "disabled": p(<API>) = 0. "enabled": a call starts whenever <API> is among the top k tokens,
# restricted to the task's tools.
MODES = ("disabled", "enabled")


@dataclass(frozen=True)
class TaskResult:
    task: str
    family: str
    mode: str
    n: int
    metric: str  # "accuracy" (a fraction) or "perplexity"
    value: float
    call_share: float = 0.0
    tool_calls: dict[str, int] = field(default_factory=dict)
    # As the paper's Table 9: accuracy where the model made a call (AC) and where it did not (NC).
    accuracy_with_call: float | None = None
    accuracy_without_call: float | None = None
    n_with_call: int = 0  # examples where the model made a call
