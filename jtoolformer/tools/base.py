"""What every tool is: the `Tool` protocol, its document context and its annotation settings."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from jtoolformer.tools.text import fill_template, package_text

PROMPT_PLACEHOLDER = "{text}"


@dataclass(frozen=True)
class SamplingParams:
    """Annotation hyper-parameters of one tool (paper, Appendix A; docs/method.md §2)."""

    position_threshold: float  # τ_s: keep positions i with p_i(<API>) > τ_s
    positions_per_doc: int  # k: at most the k most likely positions per text
    calls_per_position: int  # m: calls sampled at each kept position
    filter_threshold: float  # τ_f: keep a call when L⁻ − L⁺ ≥ τ_f


DEFAULT_SAMPLING = SamplingParams(position_threshold=0.05, positions_per_doc=5, calls_per_position=5,
                                  filter_threshold=1.0)
# The paper lowers the thresholds and samples more for the two tools whose calls are rare.
RARE_CALL_SAMPLING = SamplingParams(position_threshold=0.0, positions_per_doc=20, calls_per_position=10,
                                    filter_threshold=0.5)


@dataclass(frozen=True)
class ToolContext:
    """Metadata of the document a call was written in; tools like Calendar depend on it."""

    date: dt.date | None = None
    url: str | None = None
    doc_id: str | None = None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> ToolContext:
        """Reads `date` (date, datetime or ISO string), `url` and `id`/`doc_id`; an unreadable date is None."""
        url = metadata.get("url")
        doc_id = metadata.get("doc_id", metadata.get("id"))
        return cls(
            date=_parse_date(metadata.get("date")),
            url=str(url) if url is not None else None,
            doc_id=str(doc_id) if doc_id is not None else None,
        )


def _parse_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip()).date()
        except ValueError:
            return None
    return None


class TextGenerator(Protocol):
    """A language model that continues prompts (our `LM` class provides exactly this)."""

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 64, *,
                 stop: Sequence[str] | None = None) -> list[str]: ...


def generate_checked(generator: TextGenerator, prompts: list[str], max_new_tokens: int,
                     stop: list[str]) -> list[str]:
    """`generator.generate`, insisting on one string per prompt."""
    outputs = generator.generate(prompts, max_new_tokens=max_new_tokens, stop=stop)
    if len(outputs) != len(prompts) or not all(isinstance(o, str) for o in outputs):
        raise ValueError(f"{type(generator).__name__}.generate returned {len(outputs)} outputs for "
                         f"{len(prompts)} prompts; it must return one string per prompt")
    return list(outputs)


@runtime_checkable
class Tool(Protocol):
    """A tool the model may call: its API name, annotation prompt, pre-filter and the call itself.

    `quoted_input`: calls are written `Tool("input")` (as in the paper's QA, WikiSearch and MT prompts).
    `context_dependent`: the result depends on the ToolContext, so cached results are keyed by it.
    `takes_input`: False for a tool called with nothing between its parentheses (Calendar).
    """

    name: str
    sampling: SamplingParams
    quoted_input: bool
    context_dependent: bool
    takes_input: bool

    def render_prompt(self, text: str) -> str:
        """The few-shot annotation prompt P(x), ending in "Output:" (x itself is appended by the caller)."""
        ...

    def prefilter(self, text: str, context: ToolContext) -> bool:
        """Whether a document is worth annotating with this tool (cheap heuristics, docs/method.md §2.0)."""
        ...

    def __call__(self, input: str, context: ToolContext) -> str:
        """The result of the call; "" when the tool has no answer."""
        ...


@runtime_checkable
class BatchTool(Tool, Protocol):
    """A tool that answers many calls at once (one batched LM generation instead of one per call)."""

    def call_batch(self, inputs: Sequence[str], contexts: Sequence[ToolContext]) -> list[str]: ...


class PromptedTool:
    """Shared behaviour: the prompt comes from `prompts/<prompt_name>.txt`; every document passes."""

    name: str
    prompt_name: str
    sampling: SamplingParams = DEFAULT_SAMPLING
    quoted_input: bool = False
    context_dependent: bool = False
    takes_input: bool = True  # False: the call is written `Tool()` (Calendar)

    def render_prompt(self, text: str) -> str:
        return fill_template(load_prompt(self.prompt_name), text=text)

    def prefilter(self, text: str, context: ToolContext) -> bool:
        return True


@functools.cache
def load_prompt(prompt_name: str) -> str:
    """The annotation prompt template `prompts/<prompt_name>.txt`, checked for its one `{text}` slot."""
    return checked_prompt(package_text("prompts", f"{prompt_name}.txt"), f"prompts/{prompt_name}.txt")


def read_prompt_file(path: str) -> str:
    """A user's own annotation prompt template (same format as prompts/*.txt), checked."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"prompt file {path}: {e.strerror or e}") from None
    return checked_prompt(text, path)


def checked_prompt(template: str, source: str) -> str:
    template = template.rstrip()
    if template.count(PROMPT_PLACEHOLDER) != 1 or not template.endswith(f"Input: {PROMPT_PLACEHOLDER}\nOutput:"):
        raise ValueError(f"{source}: a prompt must contain {PROMPT_PLACEHOLDER} once and end "
                         f"with 'Input: {PROMPT_PLACEHOLDER}' then 'Output:'")
    return template
