"""What fine-tuning reads: a data spec opened as texts, split into training and held-out texts, capped
per tool, and fed through the one grain pipeline (`jtoolformer.data.pipeline`).

A data spec is one of
  - an annotation run directory (`jtoolformer annotate --out OUT`): its C* in OUT/tfds;
  - a local corpus (a .jsonl of {"text": ...} lines, or a folder of .txt files) or a prepared TFDS
    dataset NAME[/CONFIG][:VERSION][@SPLIT][#FIELD], as `jtoolformer.data.corpus.open_corpus` reads them.

Held-out perplexity is measured on corpus texts, like the paper's held-out CCNet texts: those of the
eval spec, or, without one, `data.held_out` of the training documents, set aside before anything
else. A C* document gives its `original` text (without calls) for that; for training, its text with
the calls inlined.

At most `data.max_examples_per_tool` C* texts per tool (Toolformer §4: 25k) are trained on: going
through the documents in a fixed random order, a text is taken while every tool it calls has room.

The split and the cap depend on the data alone (a permutation with a fixed seed, not the run's), so a
resumed run, and runs with other seeds, hold out and train on the same texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, overload

import jax
import numpy as np

from jtoolformer.annotate.dataset import open_c_star
from jtoolformer.checkpoints.tokenizer import Tokenizer
from jtoolformer.data.corpus import open_corpus
from jtoolformer.data.pipeline import Encode, PackedBatches, PackedBatchIterator, make_pipeline
from jtoolformer.data.tool_results import MaskToolResults
from jtoolformer.errors import UsageError
from jtoolformer.train.config import DataConfig, TrainConfig

C_STAR_DIR = "tfds"  # where an annotation run keeps its C*
SPLIT_SEED = 0

Record = Mapping[str, Any]


class Texts(Sequence[str]):
    """Random access to one text field of `records` at `indices` (UTF-8 bytes decoded)."""

    def __init__(self, records: Sequence[Record], field: str, indices: Sequence[int]):
        self._records, self._field, self._indices = records, field, np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        value = self._records[int(self._indices[index])][self._field]
        return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Source:
    """The documents of a data spec; `c_star` when they are C* records (text, original, calls, …)."""

    records: Sequence[Record]
    c_star: bool

    def texts(self, indices: Sequence[int], held_out: bool = False) -> Texts:
        return Texts(self.records, "original" if held_out and self.c_star else "text", indices)

    def tools(self, index: int) -> list[str]:
        """The tools the calls of document `index` go to (none outside C*)."""
        return [call["tool"] for call in json.loads(self.records[index]["calls"])] if self.c_star else []


def open_source(spec: str | Path, corpus_dir: str | Path) -> Source:
    """The documents of a data spec (see the module docstring); local corpora are built in `corpus_dir`."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / C_STAR_DIR).is_dir():
        return Source(open_c_star(path / C_STAR_DIR), c_star=True)
    if path.is_dir() and (path / "shards").is_dir():
        raise UsageError(f"{path} is an annotation run without C* in {path / C_STAR_DIR}: it kept no call, or "
                         "has not finished (run `jtoolformer annotate` again with the same --out)")
    return Source(open_corpus(spec, corpus_dir), c_star=False)


def held_out_count(setting: float, total: int) -> int:
    """How many of `total` texts `data.held_out` sets aside: a fraction below 1, a number from 1 up."""
    count = round(setting * total) if setting < 1 else int(setting)
    if count >= total:
        raise ValueError(f"data.held_out={setting} holds out {count} of the {total} texts, leaving none to "
                         "train on; lower it, or give held-out texts of their own (--eval-data, eval_spec)")
    return count


def cap_per_tool(candidates: Sequence[int], tools: Callable[[int], Collection[str]], cap: int) -> list[int]:
    """The candidates, taken in order, that keep every tool within `cap` texts (0: all of them). A text
    is taken while each tool it calls has room, and then counts once for each of them."""
    if cap == 0:
        return list(candidates)
    counts: dict[str, int] = {}
    kept = []
    for index in candidates:
        called = set(tools(index))
        if all(counts.get(tool, 0) < cap for tool in called):
            kept.append(index)
            for tool in called:
                counts[tool] = counts.get(tool, 0) + 1
    return kept


@dataclass(frozen=True)
class TrainTexts:
    train: Texts
    held_out: Texts | None  # None: nothing to evaluate on
    over_cap: int  # training documents left out by the per-tool cap


def select_texts(cfg: DataConfig, source: Source, eval_source: Source | None = None) -> TrainTexts:
    """Training and held-out texts (see the module docstring)."""
    total = len(source.records)
    if total == 0:
        raise ValueError("the training data has no documents")
    order = np.random.default_rng(SPLIT_SEED).permutation(total).tolist()
    if eval_source is not None:
        held_out = eval_source.texts(range(len(eval_source.records)), held_out=True)
    else:
        count = held_out_count(cfg.held_out, total)
        held_out = source.texts(sorted(order[:count]), held_out=True) if count else None
        order = order[count:]
    # Fewer texts than the cap: no tool can pass it, so the calls need not be read.
    cap = cfg.max_examples_per_tool if len(order) > cfg.max_examples_per_tool else 0
    kept = cap_per_tool(order, source.tools, cap)
    return TrainTexts(source.texts(sorted(kept)), held_out, len(order) - len(kept))


def batches(texts: Sequence[str], encode: Encode, cfg: TrainConfig, epochs: int | None) -> PackedBatches:
    """Packed global batches of `texts` (this host's rows), shuffled by the run's seed; repeating
    forever when `epochs` is None."""
    return make_pipeline(texts, encode, seq_len=cfg.seq_len, global_batch=cfg.global_batch, seed=cfg.seed,
                         num_epochs=epochs, process_index=jax.process_index(), process_count=jax.process_count())


class TrainData(NamedTuple):
    batches: PackedBatchIterator  # resumable, repeating
    held_out: PackedBatches | None  # one pass each time it is iterated; None: no held-out texts
    texts: TrainTexts


def open_train_data(cfg: TrainConfig, tokenizer: Tokenizer, data_spec: str | Path, corpus_dir: str | Path,
                    eval_spec: str | Path | None = None) -> TrainData:
    """Train and held-out batches of a data spec (and of an eval spec), tokenised by `tokenizer`, with
    no loss on tool results under `data.mask_tool_results`."""
    source = open_source(data_spec, corpus_dir)
    eval_source = None if eval_spec is None else open_source(eval_spec, corpus_dir)
    texts = select_texts(cfg.data, source, eval_source)
    encode = MaskToolResults(tokenizer) if cfg.data.mask_tool_results else tokenizer.encode
    held_out = None if texts.held_out is None else batches(texts.held_out, encode, cfg, epochs=1)
    return TrainData(iter(batches(texts.train, encode, cfg, epochs=None)), held_out, texts)
