"""Freed host memory handed back to the operating system between stages."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> None:
    """glibc keeps what a stage freed (XLA:CPU's temporaries, compilation) in per-thread arenas, and the
    next stage's allocations often come from other threads: without this, a GB of freed memory stayed
    resident under the next stage's peak while annotating with SmolLM2."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
