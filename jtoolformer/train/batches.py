"""What the train loop consumes: host batches of packed rows, and their assembly into global arrays.

A batch is a dict of numpy arrays [rows, seq_len], the rows `jtoolformer.data.packing` builds:
`inputs`, `targets`, `positions` (restarting at 0 for every packed text), `segment_ids` (1..n per row,
0 = padding) int32, and `loss_mask` float32 (1.0 where the target counts). On a multi-host run each
host hands over its contiguous share of the rows of every global batch, host h of n rows
[h·B/n, (h+1)·B/n).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from jax.sharding import Mesh

from jtoolformer.data.packing import ROW_DTYPES
from jtoolformer.sharding import batch_sharding

Batch = Mapping[str, np.ndarray]

BATCH_DTYPES: dict[str, type] = ROW_DTYPES  # one contract: the train step reads what packing writes


@runtime_checkable
class ResumableIterator(Protocol):
    """An iterator of batches whose position can be saved (JSON-serialisable) and restored."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch: ...

    def get_state(self) -> Any: ...

    def set_state(self, state: Any) -> None: ...


def check_batch(batch: Batch, where: str, shape: tuple[int, int] | None = None) -> None:
    """All keys present, all [rows, seq_len] of one `shape` (any shape when None)."""
    missing = sorted(set(BATCH_DTYPES) - set(batch))
    if missing:
        raise ValueError(f"{where}: batch lacks {missing}; a batch needs {sorted(BATCH_DTYPES)}")
    expected = shape or np.shape(batch["inputs"])
    for key in BATCH_DTYPES:
        if np.shape(batch[key]) != expected:
            raise ValueError(f"{where}: batch[{key!r}] has shape {np.shape(batch[key])}, expected {expected}"
                             + (" (this host's share of global_batch, seq_len)" if shape else ""))


def to_global(batch: Batch, mesh: Mesh) -> dict[str, jax.Array]:
    """This host's rows → global arrays of all hosts' rows, split over the mesh's batch axes."""
    local_rows, seq_len = np.shape(batch["inputs"])
    shape = (local_rows * jax.process_count(), seq_len)
    sharding = batch_sharding(mesh, shape)
    return {
        key: jax.make_array_from_process_local_data(sharding, np.asarray(batch[key], dtype), shape)
        for key, dtype in BATCH_DTYPES.items()
    }
