"""Which implementation runs: a config's "xla", "pallas" or "auto" resolved against the backend."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Callable

import jax

IMPLS = ("xla", "pallas", "auto")
KERNEL_BACKENDS = ("tpu", "gpu")

log = logging.getLogger(__name__)


@functools.cache
def _log_fallback(op: str, backend: str) -> None:
    log.info("%s: Pallas kernels need a TPU or GPU; the %s backend runs the XLA version", op, backend)


@functools.cache
def _passes(op: str, backend: str, self_check: Callable[..., None], key: tuple) -> bool:
    try:  # in a thread of its own: JAX's tracing state is per thread, and this may be asked mid-trace
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(self_check, backend, *key).result()
    except Exception as error:  # noqa: BLE001 - whatever stops the kernel (lowering, compiling, wrong numbers) means XLA
        log.warning("%s: the Pallas kernel failed its check on %s, running the XLA version: %s", op, backend, error)
        return False
    return True


def resolve_impl(impl: str, op: str, self_check: Callable[..., None] | None = None, key: tuple = (),
                 backend: str | None = None) -> str:
    """"xla" or "pallas" for operation `op`. "auto" is Pallas on TPU and GPU, provided the kernel passes
    `self_check(backend, *key)` there (a small instance against its reference at the caller's feature
    sizes and dtype, `key`, run once per process and key), and XLA otherwise; a fallback is logged
    once. "pallas" on the CPU runs the kernel in interpret mode."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: implementation {impl!r}; expected one of {IMPLS}")
    if impl != "auto":
        return impl
    backend = backend or jax.default_backend()
    if backend not in KERNEL_BACKENDS:
        _log_fallback(op, backend)
        return "xla"
    return "pallas" if self_check is None or _passes(op, backend, self_check, key) else "xla"


def kernel_backend() -> tuple[str, bool]:
    """(the kernel variant to run, whether in interpret mode): the default backend's own variant, or
    the TPU variant interpreted on the CPU."""
    backend = jax.default_backend()
    if backend in KERNEL_BACKENDS:
        return backend, False
    return "tpu", True
