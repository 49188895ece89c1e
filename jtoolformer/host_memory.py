"""Freed host memory handed back to the operating system between stages."""

from __future__ import annotations

import ctypes
import functools


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
LARGE_BLOCK_BYTES = 4 << 20  # 128 KiB released no more and doubled small XLA calls' time


@functools.cache
def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc
        return None


def _malloc_trim():
    libc = _glibc()
    return None if libc is None else libc.malloc_trim


@functools.cache
def map_large_blocks_alone() -> bool:
    """Every block of LARGE_BLOCK_BYTES or more gets its own mapping, so freeing it returns it to the
    operating system. glibc's default raises that threshold after each large free (up to 32 MiB), and
    XLA:CPU's buffers then come from arenas that stay resident: about 400 MB of RSS kept between
    annotation stages with SmolLM2. True when set (glibc only)."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))


def release_freed_memory() -> None:
    """glibc keeps what a stage freed (XLA:CPU's temporaries, compilation) in per-thread arenas, and the
    next stage's allocations often come from other threads: without this, a GB of freed memory stayed
    resident under the next stage's peak while annotating with SmolLM2."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
