"""What the evaluation harness needs from a model: structural types, so any implementation fits."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Protocol

# Lower-case names of the five tools, as a Generation's calls report them.
ALL_TOOLS: tuple[str, ...] = ("calculator", "calendar", "wikisearch", "qa", "mt")


class ToolCall(Protocol):
    tool: str  # lower-case tool name, one of ALL_TOOLS
    input: str
    result: str


class Generation(Protocol):
    """One prompt's generation.

    ``text`` is the continuation only (not the prompt). Calls may appear in it inline
    (``[QA(...) -> ...]``); the harness removes them before scoring.
    """

    text: str
    calls: Sequence[ToolCall]


class Generator(Protocol):
    def __call__(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int,
        tools: Sequence[str],
        trigger_top_k: int | None,
        calendar_dates: Sequence[datetime.date | None],
    ) -> list[Generation]:
        """Greedy generation, one Generation per prompt, in order.

        tools: the tools the model may call; () disables calls (p(<API>) = 0).
        trigger_top_k: start a call whenever <API> is among the k most likely tokens (at most
            one call per prompt); None means plain greedy decoding.
        calendar_dates: per prompt, the date the Calendar tool reports; None means the real date.
        max_new_tokens: the model's own tokens; tool results are not counted.
        """
        ...


class Scorer(Protocol):
    def __call__(self, texts: list[str]) -> list[tuple[float, int]]:
        """Per text of any length: (sum of token NLLs in nats, number of tokens scored)."""
        ...
