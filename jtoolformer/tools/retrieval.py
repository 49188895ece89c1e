"""A BM25 passage index (bm25s) shared by WikiSearch and QA: build, save, memory-mapped load, search.

An index directory holds the bm25s arrays, `passages.jsonl` with `passage_offsets.npy` (so a
passage is read by slicing a memory map, safe from many threads) and `meta.json`.

bm25s is imported on first use, not with this module: importing it runs a JAX computation, which
must not happen before a multi-host run has called `jax.distributed.initialize`. bm25s sets its
logger to DEBUG on import; `_bm25s` gives it back to the application's logging configuration.
"""

from __future__ import annotations

import functools
import json
import logging
import mmap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import bm25s

INDEX_FORMAT = 1
STOPWORDS = "en"
MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32
_META = "meta.json"
_PASSAGES = "passages.jsonl"
_OFFSETS = "passage_offsets.npy"


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


def read_passages(source: str | Path) -> Iterator[Passage]:
    """Passages from a JSONL file (KILT style: `title` or `wikipedia_title`, `text` as a string or a
    list of paragraphs) or from a folder of .txt files (title from the file name, one passage per
    paragraph)."""
    source = Path(source)
    if source.is_dir():
        yield from _read_text_folder(source)
    elif source.is_file():
        yield from _read_jsonl(source)
    else:
        raise FileNotFoundError(f"passage source {source} is neither a JSONL file nor a folder of .txt files")


def _read_jsonl(path: Path) -> Iterator[Passage]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON object ({error.msg})") from None
            text = record.get("text") if isinstance(record, dict) else None
            if isinstance(text, list):
                text = " ".join(str(paragraph) for paragraph in text)
            if not isinstance(text, str):
                raise ValueError(f"{path}:{number}: needs a 'text' string (or list of strings)")
            title = record.get("title", record.get("wikipedia_title", ""))
            yield Passage(str(title), " ".join(text.split()))


def _read_text_folder(folder: Path) -> Iterator[Passage]:
    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise ValueError(f"{folder} has no .txt files")
    for path in files:
        title = path.stem.replace("_", " ")
        for paragraph in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            if paragraph.strip():
                yield Passage(title, " ".join(paragraph.split()))


class _MappedPassages(Sequence[Passage]):
    """Passages read on demand from a memory-mapped JSONL file."""

    def __init__(self, directory: Path):
        self._offsets = np.load(directory / _OFFSETS, mmap_mode="r")
        with (directory / _PASSAGES).open("rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]  # integer indices only
        record = json.loads(self._map[int(self._offsets[i]): int(self._offsets[i + 1])])
        return Passage(record["title"], record["text"])


@functools.cache
def _bm25s():
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


class PassageIndex:
    """BM25 (bm25s, Lucene variant, English stop words) over titled passages; `origin` says where
    they came from (an index directory, or a description)."""

    def __init__(self, retriever: bm25s.BM25, passages: Sequence[Passage], origin: str = "memory"):
        self._retriever = retriever
        self._passages = passages
        self.origin = origin

    @classmethod
    def from_passages(cls, passages: Iterable[Passage], *, show_progress: bool = False,
                      origin: str = "memory") -> PassageIndex:
        """An in-memory index (save it with `save`)."""
        bm25s = _bm25s()
        passages = list(passages)
        if not passages:
            raise ValueError("cannot index an empty passage collection")
        tokens = bm25s.tokenize([f"{p.title} {p.text}" for p in passages], stopwords=STOPWORDS,
                                show_progress=show_progress)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=show_progress)
        return cls(retriever, passages, origin)

    @classmethod
    def load(cls, directory: str | Path) -> PassageIndex:
        """Opens a saved index; the score arrays and passages stay on disk, memory-mapped."""
        directory = Path(directory)
        check_index(directory)
        bm25s = _bm25s()
        retriever = bm25s.BM25.load(directory, mmap=True)
        return cls(retriever, _MappedPassages(directory), str(directory))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._retriever.save(directory, show_progress=False)
        offsets = [0]
        with (directory / _PASSAGES).open("wb") as file:
            for passage in self._passages:
                line = json.dumps({"title": passage.title, "text": passage.text}, ensure_ascii=False)
                offsets.append(offsets[-1] + file.write(line.encode("utf-8", "replace") + b"\n"))
        np.save(directory / _OFFSETS, np.asarray(offsets, dtype=np.int64))
        files = sorted(path.name for path in directory.iterdir() if path.is_file() and path.name != _META)
        meta = {"format": INDEX_FORMAT, "passages": len(self._passages), "stopwords": STOPWORDS, "files": files}
        (directory / _META).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    def __len__(self) -> int:
        return len(self._passages)

    def search(self, query: str, k: int = 1) -> list[Passage]:
        """Up to k passages that share a term with the query, best first."""
        term_ids = self._term_ids(query)
        if not term_ids or k < 1:
            return []
        scores = self._retriever.get_scores_from_ids(term_ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        ranked = sorted((i for i in top if scores[i] > 0), key=lambda i: (-scores[i], i))
        return [self._passages[int(i)] for i in ranked]

    def _term_ids(self, query: str) -> list[int]:
        bm25s = _bm25s()
        terms = bm25s.tokenize(query[:MAX_QUERY_CHARS], stopwords=STOPWORDS, return_ids=False,
                               show_progress=False)[0]
        vocabulary = self._retriever.vocab_dict
        ids = dict.fromkeys(vocabulary[t] for t in terms if t and t in vocabulary)
        return list(ids)[:MAX_QUERY_TERMS]


def check_index(directory: str | Path) -> None:
    """Whether `directory` holds an index this code reads (cheap: reads meta.json only); else a
    FileNotFoundError or ValueError that says what to do."""
    meta_path = Path(directory) / _META
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory} is not a passage index (no {_META}); build one with "
                                "`jtoolformer index build --source S --out D`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{meta_path}: unreadable ({error}); rebuild the index") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{meta_path}: index format {found}, this code reads {INDEX_FORMAT}; rebuild the index")
    files = meta.get("files", [])  # indexes written before the list was kept have none
    if not isinstance(files, list):
        raise ValueError(f"{meta_path}: 'files' is not a list; rebuild the index")
    missing = [str(name) for name in files if not (Path(directory) / str(name)).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory}: the index is incomplete, {', '.join(missing)} missing; rebuild it")


def build_index(source: str | Path, out_dir: str | Path, *, show_progress: bool = False) -> PassageIndex:
    """Indexes the passages of `source` (see `read_passages`) into `out_dir` and opens the result."""
    PassageIndex.from_passages(read_passages(source), show_progress=show_progress).save(out_dir)
    return PassageIndex.load(out_dir)
