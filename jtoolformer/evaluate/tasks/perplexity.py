"""Perplexity sets (the paper's §4.3), scored with tools disabled.

WikiText: the test split of WikiText-103 (identical to WikiText-2's) as raw text. Download
https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip and put its
wikitext-103-raw/wiki.test.raw at <data_dir>/perplexity/wiki.test.raw. Each article (from one
" = Title = " heading to the next) is one text, as released (ours: no detokenisation).

CCNet: held-out corpus texts, JSON lines with a "text" field, at
<data_dir>/perplexity/ccnet_heldout.jsonl (the paper: 10,000 CCNet documents not trained on).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from jtoolformer.evaluate.tasks.base import DataSources, PerplexityTask, read_jsonl, require_file

_ARTICLE_HEADING = re.compile(r"^ = [^=].* = $")


def split_wikitext_articles(lines: Iterator[str]) -> Iterator[str]:
    article: list[str] = []
    for line in lines:
        if _ARTICLE_HEADING.match(line.rstrip("\n")) and "".join(article).strip():
            yield "".join(article).strip()
            article = []
        article.append(line)
    if "".join(article).strip():
        yield "".join(article).strip()


def load_wikitext(sources: DataSources) -> Iterator[str]:
    path = require_file(
        sources.data_dir / "perplexity" / "wiki.test.raw",
        "WikiText test split",
        "Download https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip "
        "and put its wikitext-103-raw/wiki.test.raw there.",
    )
    with path.open(encoding="utf-8") as f:
        yield from split_wikitext_articles(f)


def load_ccnet(sources: DataSources) -> Iterator[str]:
    path = require_file(
        sources.data_dir / "perplexity" / "ccnet_heldout.jsonl",
        "Held-out corpus texts",
        "Write held-out corpus documents (not used for training) there "
        'as JSON lines {"text": ...}.',
    )
    for row in read_jsonl(path):
        yield row["text"]


TASKS = (
    PerplexityTask("wikitext", "perplexity", load_wikitext),
    PerplexityTask("ccnet", "perplexity", load_ccnet),
)
