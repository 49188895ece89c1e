"""Stand-in for the grain pipeline (`jtoolformer.data`) until it lands: a JSONL of texts, tokenised,
packed in file order into rows and cut into global batches that repeat for ever. Swap
`open_text_batches` for the grain pipeline; the train loop only needs `ResumableIterator`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from jtoolformer.train.batches import BATCH_DTYPES


def read_jsonl_texts(path: str | Path, field: str = "text") -> list[str]:
    texts = []
    with Path(path).open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                texts.append(json.loads(line)[field])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{number}: expected a JSON object with a {field!r} string ({e})") from e
    if not texts:
        raise ValueError(f"{path}: no texts")
    return texts


def pack_rows(texts: Sequence[Sequence[int]], seq_len: int, pack: bool = True) -> dict[str, np.ndarray]:
    """Token lists → rows [n, seq_len] in the batch layout (see batches.py). With `pack`, texts share a
    row while they fit; otherwise one text per row. Texts longer than a row are cut to it."""
    rows: list[list[np.ndarray]] = []
    used = seq_len
    for text in texts:
        tokens = np.asarray(text[:seq_len], np.int32)
        if tokens.size == 0:
            continue
        if not pack or used + tokens.size > seq_len:
            rows.append([])
            used = 0
        rows[-1].append(tokens)
        used += tokens.size
    out = {key: np.zeros((len(rows), seq_len), dtype) for key, dtype in BATCH_DTYPES.items()}
    for r, row in enumerate(rows):
        start = 0
        for segment, tokens in enumerate(row, 1):
            end = start + tokens.size
            out["inputs"][r, start:end] = tokens
            out["targets"][r, start:end - 1] = tokens[1:]
            out["positions"][r, start:end] = np.arange(tokens.size)
            out["segment_ids"][r, start:end] = segment
            out["loss_mask"][r, start:end - 1] = 1.0
            start = end
    return out


def batches_of(rows: dict[str, np.ndarray], batch: int) -> list[dict[str, np.ndarray]]:
    """Consecutive batches of `batch` rows; the last one filled up with padding rows (no loss)."""
    n = len(rows["inputs"])
    padded = -(-n // batch) * batch
    rows = {k: np.concatenate([v, np.zeros((padded - n, v.shape[1]), v.dtype)]) for k, v in rows.items()}
    return [{k: v[i:i + batch] for k, v in rows.items()} for i in range(0, padded, batch)]


class TextBatches:
    """Fixed global batches handed out in order, round and round; this host gets its share of rows."""

    def __init__(self, batches: list[dict[str, np.ndarray]], process_index: int = 0, process_count: int = 1):
        if not batches:
            raise ValueError("no batches: the texts gave no tokens")
        share = len(batches[0]["inputs"]) // process_count
        self.rows = slice(process_index * share, (process_index + 1) * share)
        self.batches, self.position = batches, 0

    def __iter__(self) -> "TextBatches":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = self.batches[self.position % len(self.batches)]
        self.position += 1
        return {k: v[self.rows] for k, v in batch.items()}

    def get_state(self) -> dict[str, int]:
        return {"position": self.position}

    def set_state(self, state: dict[str, int]) -> None:
        self.position = state["position"]


def open_text_batches(path: str | Path, encode: Callable[[str], list[int]], seq_len: int,
                      global_batch: int) -> TextBatches:
    """Training batches of the texts in a JSONL file (`{"text": ...}` per line), for this host."""
    rows = pack_rows([encode(t) for t in read_jsonl_texts(path)], seq_len)
    return TextBatches(batches_of(rows, global_batch), jax.process_index(), jax.process_count())


def held_out_batches(path: str | Path, encode: Callable[[str], list[int]], seq_len: int,
                     global_batch: int) -> list[dict[str, np.ndarray]]:
    """Each batch of a JSONL file's texts once, for this host (a finite, re-iterable eval set)."""
    batches = open_text_batches(path, encode, seq_len, global_batch)
    return [next(batches) for _ in batches.batches]
