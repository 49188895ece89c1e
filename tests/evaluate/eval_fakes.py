"""A small deterministic model for the harness tests: it answers from a lookup table."""

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeCall:
    tool: str
    input: str
    result: str


@dataclass(frozen=True)
class FakeGeneration:
    text: str
    calls: list[FakeCall] = field(default_factory=list)


@dataclass
class LookupGenerator:
    """Knows every gold answer. Without tools it answers only the ``known`` prompts; with tools
    it calls QA (WikiSearch where QA is not allowed) on the others and answers from the result."""

    answers: dict[str, str]
    known: set[str]
    requests: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int,
        tools: Sequence[str],
        trigger_top_k: int | None,
        calendar_dates: Sequence[datetime.date | None],
    ) -> list[FakeGeneration]:
        self.requests.append(
            {
                "prompts": list(prompts),
                "tools": tuple(tools),
                "trigger_top_k": trigger_top_k,
                "calendar_dates": list(calendar_dates),
                "max_new_tokens": max_new_tokens,
            }
        )
        return [self._one(prompt, tools) for prompt in prompts]

    def _one(self, prompt: str, tools: Sequence[str]) -> FakeGeneration:
        gold = self.answers[prompt]
        if prompt in self.known:
            return FakeGeneration(f" {gold} is the answer.")
        if not tools:
            return FakeGeneration(" I am not sure about that one.")
        tool = "qa" if "qa" in tools else "wikisearch"
        question = prompt[-30:]
        return FakeGeneration(
            f" [{tool.upper()}({question}) -> {gold}] {gold}.", [FakeCall(tool, question, gold)]
        )


def words_scorer(texts: list[str]) -> list[tuple[float, int]]:
    """2 nats per whitespace word: a perplexity of e^2."""
    return [(2.0 * len(text.split()), len(text.split())) for text in texts]
