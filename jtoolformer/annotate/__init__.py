"""Building C*: positions, calls, execution, filtering and merging (docs/method.md §2)."""

from jtoolformer.annotate.filter import ScoreRequest, Scorer, weighted_losses

__all__ = ["ScoreRequest", "Scorer", "weighted_losses"]
