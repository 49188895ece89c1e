"""What the evaluation harness needs from a model: structural types, so any implementation fits."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Protocol


# Members are read-only properties so that frozen dataclasses and NamedTuples fit as well.
class CallLike(Protocol):
    """A call as a generation reports it (e.g. generate.session.CallRecord)."""

    @property
    def tool(self) -> str:
        """Lower-case tool name, one of tools.registry.TOOL_KEYS."""
        ...

    @property
    def input(self) -> str: ...

    @property
    def result(self) -> str: ...


class GenerationLike(Protocol):
    """One prompt's generation (e.g. generate.session.Generation)."""

    @property
    def text(self) -> str:
        """The continuation only (not the prompt). Calls may appear in it inline
        (``[QA(...) -> ...]``); the harness removes them before scoring."""
        ...

    @property
    def calls(self) -> Sequence[CallLike]: ...


class Generator(Protocol):
    def __call__(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int,
        tools: Sequence[str],
        trigger_top_k: int | None,
        calendar_dates: Sequence[datetime.date | None],
    ) -> Sequence[GenerationLike]:
        """Greedy generation, one GenerationLike per prompt, in order.

        tools: the tools the model may call; () disables calls (p(<API>) = 0).
        trigger_top_k: start a call whenever <API> is among the k most likely tokens (at most
            one call per prompt); None means plain greedy decoding.
        calendar_dates: per prompt, the date the Calendar tool reports; None means the real date.
        max_new_tokens: the model's own tokens; tool results are not counted.
        """
        ...


class TextScorer(Protocol):
    """Log-likelihoods of whole texts (unlike annotate's Scorer, which weighs the tokens after a position)."""

    def __call__(self, texts: list[str]) -> Sequence[tuple[float, int]]:
        """Per text of any length: (sum of token NLLs in nats, number of tokens scored)."""
        ...
