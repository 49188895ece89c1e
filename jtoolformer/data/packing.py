"""Tokenised texts -> fixed-length training rows, in pure numpy.

Layout of one row of `seq_len` slots, for a text t_0..t_{n-1} placed at slots s..s+n-1:

    inputs[s+k]      = t_k
    targets[s+k]     = t_{k+1}, and PAD_ID on the text's last slot (no target crosses a text boundary)
    positions[s+k]   = k                 (restarts at 0 for every text)
    segment_ids[s+k] = 1..m              (the text's number within the row; 0 marks padding)
    loss_mask[s+k]   = 1.0 where targets[s+k] is a token of the same text that is to be predicted

Every slot not covered by a text is padding: PAD_ID everywhere, segment 0, loss 0.

A text may carry a per-token mask (True = this token is to be predicted, e.g. False on tool results).
Entry k decides the loss on the slot whose target is t_k; entry 0 is never used (nothing predicts
the first token).

Rows are filled in order ("next fit"): a row closes when the next text does not fit. Mode "pack"
puts as many texts in a row as fit; mode "pad" puts one text per row. A text longer than the row is
cut to `seq_len` tokens and counted in `truncated`. Texts with no tokens are skipped.
"""

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import numpy as np

PAD_ID = 0
Mode = Literal["pack", "pad"]
MODES: tuple[Mode, ...] = ("pack", "pad")
ROW_DTYPES: dict[str, type] = {
    "inputs": np.int32,
    "targets": np.int32,
    "segment_ids": np.int32,
    "positions": np.int32,
    "loss_mask": np.float32,
}


class Text(NamedTuple):
    """One tokenised text and, optionally, which of its tokens are to be predicted."""

    tokens: Sequence[int] | np.ndarray
    loss_mask: Sequence[bool] | np.ndarray | None = None


class Packed(NamedTuple):
    rows: dict[str, np.ndarray]  # each [num_rows, seq_len], keys and dtypes as ROW_DTYPES
    truncated: int  # texts cut to seq_len


def empty_rows(num_rows: int, seq_len: int) -> dict[str, np.ndarray]:
    """All-padding rows (no loss anywhere)."""
    return {key: np.zeros((num_rows, seq_len), dtype) for key, dtype in ROW_DTYPES.items()}


def _as_arrays(text: Text) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.asarray(text.tokens)
    if tokens.ndim != 1 or (tokens.size and not np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(f"tokens must be a flat sequence of ints, got {tokens.dtype} of shape {tokens.shape}")
    if text.loss_mask is None:
        return tokens, np.ones(tokens.shape, bool)
    mask = np.asarray(text.loss_mask, bool)
    if mask.shape != tokens.shape:
        raise ValueError(f"loss_mask has shape {mask.shape}, tokens {tokens.shape}; give one flag per token")
    return tokens, mask


class Packer:
    """Streams texts into rows; `add` and `flush` hand back each row as it closes."""

    def __init__(self, seq_len: int, mode: Mode = "pack"):
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {seq_len}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.seq_len = seq_len
        self.mode: Mode = mode
        self.truncated = 0  # texts cut to seq_len
        self.rows_opened = 0  # rows begun so far, the open one included
        self._open: list[tuple[np.ndarray, np.ndarray]] = []
        self._used = 0

    @property
    def open_texts(self) -> int:
        """Number of texts in the row not yet handed back."""
        return len(self._open)

    def add(self, text: Text) -> dict[str, np.ndarray] | None:
        """Places `text`; returns the previous row if this text did not fit in it, else None."""
        tokens, mask = _as_arrays(text)
        if tokens.size == 0:
            return None
        if tokens.size > self.seq_len:
            tokens, mask = tokens[: self.seq_len], mask[: self.seq_len]
            self.truncated += 1
        fits = self.mode == "pack" and self._used + tokens.size <= self.seq_len
        closed = None if fits or not self._open else self.flush()
        if not self._open:
            self.rows_opened += 1
        self._open.append((tokens, mask))
        self._used += tokens.size
        return closed

    def flush(self) -> dict[str, np.ndarray] | None:
        """Closes the open row and returns it (None if it holds no text)."""
        if not self._open:
            return None
        row = {key: values[0] for key, values in empty_rows(1, self.seq_len).items()}
        start = 0
        for segment, (tokens, mask) in enumerate(self._open, start=1):
            end = start + tokens.size
            row["inputs"][start:end] = tokens
            row["targets"][start : end - 1] = tokens[1:]
            row["positions"][start:end] = np.arange(tokens.size)
            row["segment_ids"][start:end] = segment
            row["loss_mask"][start : end - 1] = mask[1:]
            start = end
        self._open, self._used = [], 0
        return row


def stack_rows(rows: Sequence[dict[str, np.ndarray]], seq_len: int) -> dict[str, np.ndarray]:
    """Stacks single rows into [len(rows), seq_len] arrays."""
    if not rows:
        return empty_rows(0, seq_len)
    return {key: np.stack([row[key] for row in rows]) for key in ROW_DTYPES}


def pack_texts(texts: Iterable[Text], seq_len: int, mode: Mode = "pack") -> Packed:
    """All of `texts`, in order, as rows of `seq_len` slots (see the module docstring)."""
    packer = Packer(seq_len, mode)
    rows = [row for text in texts if (row := packer.add(text)) is not None]
    if (last := packer.flush()) is not None:
        rows.append(last)
    return Packed(stack_rows(rows, seq_len), packer.truncated)


def attention_mask_from_segments(segment_ids: np.ndarray) -> np.ndarray:
    """Reference attention mask, bool [B, T, T]: query q sees key k iff k <= q, both lie in the same
    text, and that text is not padding. Padding queries see nothing (their rows are all False)."""
    segment_ids = np.asarray(segment_ids)
    if segment_ids.ndim != 2:
        raise ValueError(f"segment_ids must be [batch, seq_len], got shape {segment_ids.shape}")
    length = segment_ids.shape[1]
    causal = np.tril(np.ones((length, length), bool))
    query, key = segment_ids[:, :, None], segment_ids[:, None, :]
    return causal & (query == key) & (query != 0)
