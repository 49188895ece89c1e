"""Padded shapes for jitted calls, and placing a host batch on the mesh.

Every distinct shape compiles a program again, so lengths and row counts are rounded up to a few
sizes; rows are split over the mesh's data axes, so their number is also a multiple of those.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from jtoolformer.sharding import batch_sharding


def bucket(n: int, multiple: int = 32) -> int:
    """n rounded up to a multiple (at least one): padded shapes, so few sizes are compiled."""
    return max(multiple, -(-n // multiple) * multiple)


def geometric_bucket(n: int, multiple: int = 1) -> int:
    """n rounded up to a power of two or one and a half times one (1, 2, 3, 4, 6, 8, 12, …), then to a
    multiple: a long run meets a handful of sizes, not every one, and pads at most a third."""
    power = 1 << max(n - 1, 0).bit_length()
    return bucket(power * 3 // 4 if power >= 4 and n <= power * 3 // 4 else power, multiple)


def batch_multiple(mesh: Mesh) -> int:
    """The devices a batch's rows are split over (the data and fsdp axes)."""
    return mesh.shape["data"] * mesh.shape["fsdp"]


def padded_rows(n: int, mesh: Mesh) -> int:
    """n rows rounded up by geometric_bucket to a multiple of the mesh's batch axes: a long run
    compiles each jitted step for a handful of batch sizes."""
    return geometric_bucket(n, batch_multiple(mesh))


def coarse_rows(n: int, mesh: Mesh, top: int) -> int:
    """n rows (at most `top`) rounded up to a power of four, or to `top`, then to a multiple of the
    mesh's batch axes: for a batch whose size varies widely, up to 4× padding for a handful of sizes
    (top, top/4, … rather than every geometric_bucket between)."""
    if not 0 < n <= top:
        raise ValueError(f"{n} rows: expected 1 to {top}")
    size = 1
    while size < n:
        size *= 4
    return bucket(min(size, top), batch_multiple(mesh))


def left_padded(seqs: Sequence[Sequence[int]], rows: int, width: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """tokens int32 [rows, width] and valid bool [rows, width]: each sequence right-aligned in its row
    (so every row's next token goes into the same column); rows past the sequences stay padding."""
    tokens = np.full((rows, width), pad_id, np.int32)
    valid = np.zeros((rows, width), bool)
    for r, seq in enumerate(seqs):
        if seq:
            tokens[r, width - len(seq):] = seq
            valid[r, width - len(seq):] = True
    return tokens, valid


def on_mesh(mesh: Mesh, *arrays: np.ndarray) -> list[jax.Array]:
    """Host arrays [B, ...] placed on the mesh, rows split over its data axes."""
    return [jax.device_put(a, batch_sharding(mesh, np.shape(a))) for a in arrays]
