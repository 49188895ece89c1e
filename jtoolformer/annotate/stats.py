"""What annotation counts per tool: the paper's Table 2 and why calls were dropped."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

REPORT_THRESHOLDS = (0.5, 1.0, 2.0)  # τ_f values whose kept counts every run reports


@dataclass
class AnnotationStats:
    """Table 2 of the paper, per tool."""

    documents: int = 0
    prefiltered: int = 0  # passed the tool's pre-filter
    skipped: Counter = field(default_factory=Counter)
    positions: int = 0
    calls_sampled: int = 0
    well_formed: int = 0
    executed: int = 0  # returned a non-empty result
    kept: Counter = field(default_factory=Counter)  # by τ_f (as str), plus "tool" for the tool's own τ_f

    def add(self, other: "AnnotationStats") -> None:
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, a + b)

    def to_dict(self) -> dict:
        return {f.name: dict(getattr(self, f.name)) if isinstance(getattr(self, f.name), Counter)
                else getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "AnnotationStats":
        return cls(**{k: Counter(v) if isinstance(v, dict) else v for k, v in d.items()})
