"""`make_tools`: the tools by name, each wired to its backend."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from jtoolformer.errors import UsageError
from jtoolformer.tools.base import TextGenerator, Tool
from jtoolformer.tools.calculator import Calculator
from jtoolformer.tools.calendar_tool import Calendar
from jtoolformer.tools.mt import MT, PromptedTranslator, Seq2SeqTranslator, Translator
from jtoolformer.tools.qa import QA
from jtoolformer.tools.retrieval import PassageIndex
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
    tools: list[Tool] = []
    for key in tool_keys(names):
        if key == "calculator":
            tools.append(Calculator())
        elif key == "calendar":
            tools.append(Calendar())
        elif key == "wikisearch":
            tools.append(WikiSearch(_passage_index(index)))
        elif key == "qa":
            if generator is None:
                raise ValueError("the QA tool reads passages with a language model: pass generator=<TextGenerator>")
            tools.append(QA(_passage_index(index), generator))
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
