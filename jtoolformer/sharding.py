"""Device mesh (axes data, fsdp, tensor), logical-axis rules, and placing arrays by logical names.

Every parameter and activation carries logical axis names; RULES maps them to mesh axes. A mesh axis
that does not divide a dimension is dropped for that dimension (the array is replicated along it)
rather than failing, so e.g. 3 KV heads still load on a tensor axis of 2.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Mapping, Sequence

import jax
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jtoolformer.errors import UsageError

MESH_AXES = ("data", "fsdp", "tensor")

RULES: Mapping[str, tuple[str, ...]] = {
    # parameters
    "vocab": ("tensor",),
    "embed": ("fsdp",),
    "heads": ("tensor",),
    "kv_heads": ("tensor",),
    "mlp": ("tensor",),
    "layers": (),
    # activations
    "batch": ("data", "fsdp"),
    "length": (),
    "act_embed": (),
    "act_heads": ("tensor",),
    "act_vocab": ("tensor",),
}

_ACTIVE: contextvars.ContextVar[Mesh | None] = contextvars.ContextVar("jtoolformer_mesh", default=None)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (all by default); one size may be -1 (the rest)."""
    devices = list(jax.devices() if devices is None else devices)
    sizes = [data, fsdp, tensor]
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise UsageError(f"mesh sizes {sizes}: each must be positive, at most one may be -1")
    if -1 in sizes:
        known = math.prod(s for s in sizes if s != -1)
        if len(devices) % known:
            raise UsageError(f"mesh sizes {sizes} do not divide the {len(devices)} devices")
        sizes[sizes.index(-1)] = len(devices) // known
    if math.prod(sizes) != len(devices):
        raise UsageError(
            f"mesh data={sizes[0]} × fsdp={sizes[1]} × tensor={sizes[2]} = {math.prod(sizes)} "
            f"does not equal the {len(devices)} devices; choose sizes whose product is {len(devices)}"
        )
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def spec_for(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh) -> PartitionSpec:
    """PartitionSpec of an array of `shape` whose dimensions have logical `names`."""
    if len(names) != len(shape):
        raise ValueError(f"logical names {tuple(names)} do not match shape {tuple(shape)}")
    used: set[str] = set()
    spec = []
    for name, size in zip(names, shape):
        axes = []
        for axis in RULES.get(name, ()) if name else ():
            n = mesh.shape[axis]
            if n > 1 and axis not in used and size % (math.prod(mesh.shape[a] for a in axes) * n) == 0:
                axes.append(axis)
        used.update(axes)
        spec.append(tuple(axes) if len(axes) > 1 else (axes[0] if axes else None))
    return PartitionSpec(*spec)


def named_sharding(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, spec_for(names, shape, mesh))


def tree_shardings(logical_axes, shapes, mesh: Mesh):
    """NamedShardings for a tree of arrays (or ShapeDtypeStructs) given a matching tree of logical names."""
    return jax.tree.map(
        lambda names, x: named_sharding(names, x.shape, mesh),
        logical_axes,
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )


@contextlib.contextmanager
def activation_mesh(mesh: Mesh | None) -> Iterator[None]:
    """While tracing under this context, `constrain` pins activations to `mesh` by their logical names."""
    token = _ACTIVE.set(mesh)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_mesh() -> Mesh | None:
    """The mesh `activation_mesh` set for the code being traced (None outside it)."""
    return _ACTIVE.get()


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    mesh = _ACTIVE.get()
    if mesh is None:
        return x
    return jax.lax.with_sharding_constraint(x, named_sharding(names, x.shape, mesh))


def batch_sharding(mesh: Mesh, shape: Sequence[int]) -> NamedSharding:
    """Inputs [B, ...] split over the data axes, the rest replicated."""
    return named_sharding(("batch",) + (None,) * (len(shape) - 1), shape, mesh)


def initialize_distributed(enabled: bool, coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None) -> None:
    """Multi-host start-up (TPU pods, multi-node GPU). On TPU VMs and SLURM every argument may stay
    None; elsewhere give all three."""
    if enabled:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)


def sync_hosts(name: str) -> None:
    """Waits until every host has reached the point called `name` (nothing to wait for on one host)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
