"""`make_tools`: the tools by name, each wired to its backend; `ToolBackends`: the backends a command
was given (a passage index, an MT model), checked before a model loads and described in its output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jtoolformer.errors import UsageError
from jtoolformer.tools.base import TextGenerator, Tool
from jtoolformer.tools.calculator import Calculator
from jtoolformer.tools.calendar_tool import Calendar
from jtoolformer.tools.mt import MT, PromptedTranslator, Seq2SeqTranslator, Translator
from jtoolformer.tools.qa import QA
from jtoolformer.tools.retrieval import PassageIndex, check_index
from jtoolformer.tools.wikisearch import WikiSearch, bundled_index

TOOL_KEYS = ("calculator", "calendar", "wikisearch", "qa", "mt")


def make_tools(names: str | Iterable[str], *, index: PassageIndex | str | Path | None = None,
               generator: TextGenerator | None = None, translator: Translator | None = None,
               mt_model_dir: str | Path | None = None) -> dict[str, Tool]:
    """Tools keyed by their API name ("Calculator", "WikiSearch", ...).

    names: "calculator,calendar,wikisearch,qa,mt" or a list of those keys (any case).
    index: the passage index of WikiSearch and QA, or its directory; default: the bundled passages.
    generator: the LM that reads passages for QA and, without another backend, translates for MT.
    translator / mt_model_dir: an MT backend, or a local Hugging Face seq2seq model directory.
    """
    keys = tool_keys(names)
    passages = _passage_index(index) if {"wikisearch", "qa"} & set(keys) else None
    tools: list[Tool] = []
    for key in keys:
        if key == "calculator":
            tools.append(Calculator())
        elif key == "calendar":
            tools.append(Calendar())
        elif key == "wikisearch":
            tools.append(WikiSearch(passages))
        elif key == "qa":
            if generator is None:
                raise ValueError("the QA tool reads passages with a language model: pass generator=<TextGenerator>")
            tools.append(QA(passages, generator))
        else:
            tools.append(MT(_translator(translator, mt_model_dir, generator)))
    return {tool.name: tool for tool in tools}


def tool_keys(names: str | Iterable[str]) -> list[str]:
    """The tool keys in `names` (see make_tools), each once; an unknown one is a UsageError. Cheap: commands
    check their tools with it before loading a model."""
    keys = [n.strip().lower() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    unknown = [key for key in keys if key not in TOOL_KEYS]
    if unknown:
        raise UsageError(f"unknown tool(s) {unknown}; choose from {', '.join(TOOL_KEYS)}")
    if not keys:
        raise UsageError(f"no tools given; choose from {', '.join(TOOL_KEYS)}")
    return list(dict.fromkeys(keys))


def _passage_index(index: PassageIndex | str | Path | None) -> PassageIndex:
    if index is None:
        return bundled_index()
    return index if isinstance(index, PassageIndex) else PassageIndex.load(index)


def _translator(translator: Translator | None, model_dir: str | Path | None,
                generator: TextGenerator | None) -> Translator:
    if translator is not None:
        return translator
    if model_dir is not None:
        return Seq2SeqTranslator(model_dir)
    if generator is not None:
        return PromptedTranslator(generator)
    raise ValueError("the MT tool needs a backend: translator=, mt_model_dir= or generator=")


@dataclass(frozen=True)
class ToolBackends:
    """What a command was given to back its tools: `index`, a passage index directory for WikiSearch
    and QA (None: the bundled demo passages); `mt_model`, a local seq2seq translation checkpoint such
    as NLLB for MT (None: the language model prompted to translate)."""

    index: str | None = None
    mt_model: str | None = None

    def check(self) -> None:
        """Cheap checks, before a model loads: a UsageError names what is wrong."""
        if self.index is not None:
            try:
                check_index(self.index)
            except (OSError, ValueError) as error:
                raise UsageError(f"index {self.index}: {error}") from None
        if self.mt_model is not None and not Path(self.mt_model).is_dir():
            raise UsageError(f"MT model {self.mt_model}: no such directory (a local seq2seq checkpoint, e.g. NLLB)")

    def make_tools(self, names: str | Iterable[str], generator: TextGenerator | None) -> dict[str, Tool]:
        return make_tools(names, index=self.index, mt_model_dir=self.mt_model, generator=generator)


def describe_backends(tools: Mapping[str, Tool]) -> list[str]:
    """A line per tool whose backend is a choice (WikiSearch, QA, MT), saying what backs it."""
    lines = []
    for name, tool in tools.items():
        if isinstance(tool, (WikiSearch, QA)):
            reader = ", read by the language model" if isinstance(tool, QA) else ""
            hint = " (your own: `jtoolformer index build`, then --index DIR)" if tool.index is bundled_index() else ""
            lines.append(f"{name}: BM25 over {len(tool.index):,} passages from {tool.index.origin}{reader}{hint}")
        elif isinstance(tool, MT):
            translator = tool.translator
            backend = (f"the seq2seq model in {translator.model_dir}" if isinstance(translator, Seq2SeqTranslator)
                       else "the language model, prompted to translate (or --mt-model DIR: an NLLB checkpoint)"
                       if isinstance(translator, PromptedTranslator) else type(translator).__name__)
            lines.append(f"{name}: language identified by langid, translated by {backend}")
    return lines
