"""The grain training pipeline: random-access texts -> shuffled, tokenised, packed batches.

Per epoch the texts are shuffled with a permutation derived from (seed, epoch), tokenised with
`encode`, and packed (see packing.py) into global batches of [global_batch, seq_len] rows; an
unfinished last batch (finite epochs only) is filled with all-padding rows.

Hosts: the global batches depend only on the texts, the seed and the layout (seq_len,
global_batch, mode), never on the number of hosts. Every host reads and tokenises the same stream
and keeps a contiguous share: host h of n gets rows [h*B/n, (h+1)*B/n) of each global batch, the
per-process order `jax.make_array_from_process_local_data` expects for a batch axis split over
processes. So all hosts hold the same iterator state, and a state restores under any host count.

State (`get_state` / `set_state`, JSON-serialisable; also grain's orbax save/load): where the
stream stood before the first text of the first row not yet handed out, the truncation count at
that point, and the layout. Rows close only when the next text does not fit, so re-reading from
there rebuilds exactly the rows that were pending.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grain
import numpy as np

from jtoolformer.data.packing import Mode, Packer, Text, empty_rows, stack_rows

Encode = Callable[[str], Sequence[int] | Text]
Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Tokenize:
    """Text (or a document dict's `field`) -> Text; `encode` may return token ids or a masked Text."""

    encode: Encode
    field: str = "text"

    def __call__(self, element: str | Mapping[str, str]) -> Text:
        encoded = self.encode(element if isinstance(element, str) else element[self.field])
        return encoded if isinstance(encoded, Text) else Text(np.asarray(encoded, np.int32))


@dataclasses.dataclass(frozen=True)
class Layout:
    seq_len: int
    global_batch: int
    mode: Mode = "pack"

    def __post_init__(self) -> None:
        if self.global_batch < 1:
            raise ValueError(f"global_batch must be at least 1, got {self.global_batch}")


class PackedBatches(grain.IterDataset):
    """Packs a stream of Texts into global batches and hands this host its share of each."""

    def __init__(
        self, parent: grain.IterDataset, layout: Layout, process_index: int = 0, process_count: int = 1
    ):
        super().__init__(parent)
        if layout.global_batch % process_count:
            raise ValueError(
                f"global_batch {layout.global_batch} must be a multiple of process_count {process_count}"
            )
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} must lie in [0, {process_count})")
        self.layout = layout
        share = layout.global_batch // process_count
        self.rows = slice(process_index * share, (process_index + 1) * share)

    def __iter__(self) -> "PackedBatchIterator":
        return PackedBatchIterator(self._parent.__iter__(), self.layout, self.rows)


class PackedBatchIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, layout: Layout, rows: slice):
        super().__init__(parent)
        self._layout = layout
        self._rows = rows
        self._packer = Packer(layout.seq_len, layout.mode)
        self._row_start = self._snapshot()

    @property
    def truncated_texts(self) -> int:
        """Texts cut to seq_len so far (counting those in rows read ahead)."""
        return self._packer.truncated

    def _snapshot(self) -> dict[str, Any]:
        return {"texts": self._parent.get_state(), "truncated_texts": self._packer.truncated}

    def _next_row(self) -> dict[str, np.ndarray] | None:
        """Reads texts until a row closes; None once the texts are exhausted."""
        while True:
            before = self._snapshot()
            try:
                text = next(self._parent)
            except StopIteration:
                self._row_start = self._snapshot()
                return self._packer.flush()
            opened = self._packer.rows_opened
            closed = self._packer.add(text)
            if self._packer.rows_opened != opened:
                self._row_start = before
            if closed is not None:
                return closed

    def __next__(self) -> Batch:
        rows = []
        while len(rows) < self._layout.global_batch and (row := self._next_row()) is not None:
            rows.append(row)
        if not rows:
            raise StopIteration
        batch = stack_rows(rows, self._layout.seq_len)
        if len(rows) < self._layout.global_batch:
            padding = empty_rows(self._layout.global_batch - len(rows), self._layout.seq_len)
            batch = {key: np.concatenate([batch[key], padding[key]]) for key in batch}
        return {key: values[self._rows] for key, values in batch.items()}

    def get_state(self) -> dict[str, Any]:
        return {**self._row_start, "layout": dataclasses.asdict(self._layout)}

    def set_state(self, state: dict[str, Any]) -> None:
        if state["layout"] != dataclasses.asdict(self._layout):
            raise ValueError(
                f"iterator state was saved with layout {state['layout']}, this pipeline has "
                f"{dataclasses.asdict(self._layout)}; restore into a pipeline with the saved layout"
            )
        self._parent.set_state(state["texts"])
        self._packer = Packer(self._layout.seq_len, self._layout.mode)
        self._packer.truncated = state["truncated_texts"]
        self._row_start = self._snapshot()


def make_pipeline(
    texts: Sequence[str] | Sequence[Mapping[str, str]],
    encode: Encode,
    *,
    seq_len: int,
    global_batch: int,
    seed: int,
    mode: Mode = "pack",
    num_epochs: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
    text_field: str = "text",
    read_options: grain.ReadOptions | None = None,
) -> PackedBatches:
    """Batches of dicts of [global_batch // process_count, seq_len] arrays (keys as packing.ROW_DTYPES).

    `texts` is any random-access source: a list of strings, or documents such as `open_corpus`
    gives (their `text_field` is used). `num_epochs=None` repeats forever. `read_options` sets
    grain's tokenising threads and read-ahead.
    """
    if len(texts) == 0:
        raise ValueError("the pipeline needs at least one text")
    documents = grain.MapDataset.source(texts).shuffle(seed=seed).repeat(num_epochs)
    tokenised = documents.map(Tokenize(encode, text_field))
    return PackedBatches(
        tokenised.to_iter_dataset(read_options or grain.ReadOptions()),
        Layout(seq_len, global_batch, mode),
        process_index,
        process_count,
    )
