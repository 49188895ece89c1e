"""Which implementation runs: a config's "xla", "pallas" or "auto" resolved against the platform a
program is compiled for: its mesh's devices' (TPU devices when compiling ahead of time on a CPU host,
where `jax.default_backend()` stays "cpu"), else the default backend."""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Callable

import jax
from jax.sharding import Mesh

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


# Mosaic does not compile the kernels' bf16 matmuls for these ("CompileTimeMosaicUnsupportedRhsType", libtpu
# 0.0.42, scripts/results/kernels_tpu.json): they run the XLA version.
NO_MOSAIC_TPUS = ("TPU v2", "TPU v3")


def platform(mesh: Mesh | None = None) -> str:
    """"tpu", "gpu" or "cpu": the platform of `mesh`'s devices, or the default backend without a mesh;
    "tpu-v3" for a TPU whose kernels Mosaic does not compile."""
    if mesh is None:
        return jax.default_backend()
    device = mesh.devices.flat[0]
    if device.platform == "tpu" and device.device_kind.startswith(NO_MOSAIC_TPUS):
        return "tpu-v3"
    return device.platform


def _runs_here(mesh: Mesh | None) -> bool:
    """Whether this process can run programs on `mesh` (not a TPU topology only compiled for)."""
    return mesh is None or set(mesh.devices.flat) <= set(jax.devices())


def resolve_impl(impl: str, op: str, self_check: Callable[..., None] | None = None, key: tuple = (),
                 backend: str | None = None, mesh: Mesh | None = None,
                 auto_pallas_on: tuple[str, ...] = KERNEL_BACKENDS) -> str:
    """"xla" or "pallas" for operation `op` in a program for `mesh` (on `backend`, default: the mesh's
    platform). "auto" is Pallas on the platforms of `auto_pallas_on` (where the kernel earned its place,
    as measured for each op), provided the kernel passes `self_check(backend, *key)` there (a small
    instance against its reference at the caller's feature sizes and dtype, `key`, run once per process
    and key), and XLA otherwise; a fallback is logged once. On a mesh this process only compiles for (a
    TPU topology, ahead of time) no check can run: "auto" is Pallas there. "pallas" on the CPU runs the
    kernel in interpret mode."""
    if impl not in IMPLS:
        raise ValueError(f"{op}: implementation {impl!r}; expected one of {IMPLS}")
    if impl != "auto":
        return impl
    backend = backend or platform(mesh)
    if backend not in KERNEL_BACKENDS:
        _log_fallback(op, backend)
        return "xla"
    if backend not in auto_pallas_on:
        return "xla"
    if self_check is None or not _runs_here(mesh):
        return "pallas"
    return "pallas" if _passes(op, backend, self_check, key) else "xla"


def kernel_backend(backend: str | None = None) -> tuple[str, bool]:
    """(the kernel variant to run, whether in interpret mode) on `backend` (the default backend when
    None): its own variant, or the TPU variant interpreted on the CPU."""
    backend = backend or jax.default_backend()
    if backend in KERNEL_BACKENDS:
        return backend, False
    if backend != "cpu":
        raise ValueError(f"the Pallas kernels do not compile for {backend}: choose the xla implementation")
    return "tpu", True
