"""WikiSearch: BM25 over a local passage collection, the top passage(s) cut to a short snippet."""

from __future__ import annotations

import functools
from importlib import resources

from jtoolformer.tools.base import PromptedTool, ToolContext
from jtoolformer.tools.retrieval import PassageIndex, read_passages
from jtoolformer.tools.text import shorten


@functools.cache
def bundled_index() -> PassageIndex:
    """An in-memory index of the small passage collection shipped with the package (tests, demos)."""
    with resources.as_file(resources.files("jtoolformer.tools") / "data" / "passages.jsonl") as path:
        return PassageIndex.from_passages(read_passages(path), origin="the bundled demo set")


class WikiSearch(PromptedTool):
    name = "WikiSearch"
    prompt_name = "wikisearch"
    quoted_input = True

    def __init__(self, index: PassageIndex, *, snippets: int = 1, max_chars: int = 300):
        self.index, self.snippets, self.max_chars = index, snippets, max_chars

    def __call__(self, input: str, context: ToolContext) -> str:
        passages = self.index.search(input, k=self.snippets)
        return shorten(" ".join(p.text for p in passages), self.max_chars)
