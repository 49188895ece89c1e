"""Which implementation runs: a config's "xla", "pallas" or "auto" resolved against the backend."""

from __future__ import annotations

import functools
import logging

import jax

IMPLS = ("xla", "pallas", "auto")
KERNEL_BACKENDS = ("tpu", "gpu")

log = logging.getLogger(__name__)


@functools.cache
def _log_fallback(op: str, backend: str) -> None:
    log.info("%s: Pallas kernels need a TPU or GPU; the %s backend runs the XLA version", op, backend)


def resolve_impl(impl: str, op: str) -> str:
    """"xla" or "pallas" for operation `op`. "auto" is Pallas on TPU and GPU and XLA elsewhere (logged
    once per operation); "pallas" on the CPU runs the kernel in interpret mode."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: implementation {impl!r}; expected one of {IMPLS}")
    if impl != "auto":
        return impl
    backend = jax.default_backend()
    if backend in KERNEL_BACKENDS:
        return "pallas"
    _log_fallback(op, backend)
    return "xla"


def kernel_backend() -> tuple[str, bool]:
    """(the kernel variant to run, whether in interpret mode): the default backend's own variant, or
    the TPU variant interpreted on the CPU."""
    backend = jax.default_backend()
    if backend in KERNEL_BACKENDS:
        return backend, False
    return "tpu", True
