"""Command-line arguments every model-using subcommand shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import jax
from jax.sharding import Mesh

from jtoolformer.errors import UsageError
from jtoolformer.lm import DEFAULT_MODEL, LM, load_model
from jtoolformer.sharding import make_mesh


def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="HF checkpoint directory, .gguf file, YAML model config, or smollm2-135m (default)")
    parser.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor sizes over this host's devices (one may be -1)")
    add_dtype_arg(parser)


INFERENCE_DTYPES = ("float32", "bfloat16")


def add_dtype_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", default=None, choices=INFERENCE_DTYPES,
                        help="params and compute (default: a HF checkpoint's torch_dtype, float32 otherwise); "
                             "bfloat16 halves the memory, as GPT-J-6B needs on a v3-8 or v5e-8")


def dtype_overrides(dtype: str | None) -> dict[str, str]:
    """The model-config fields --dtype sets: params and compute alike (nothing: the model's own)."""
    return {} if dtype is None else {"dtype": dtype, "param_dtype": dtype}


def add_coordinator_args(parser: argparse.ArgumentParser) -> None:
    """Where jax.distributed cannot find the other processes itself (not a TPU VM or SLURM)."""
    parser.add_argument("--coordinator", default=None, help="host:port of process 0 (multi-host, off TPU/SLURM)")
    parser.add_argument("--num-processes", type=at_least(1), default=None, help="with --coordinator: how many processes")
    parser.add_argument("--process-id", type=at_least(0), default=None, help="with --coordinator: this process's rank")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`; argparse names the option in its error and exits 2."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return integer


def mesh_from_text(text: str) -> Mesh:
    """The mesh of a --mesh value "data,fsdp,tensor" over this host's devices; a malformed value, or sizes
    that do not fit the devices, is a UsageError."""
    try:
        sizes = [int(size) for size in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) != 3:
        raise UsageError(f"--mesh {text!r}: expected three integers data,fsdp,tensor (one may be -1), e.g. -1,1,1")
    try:
        return make_mesh(*sizes, devices=jax.local_devices())
    except ValueError as e:
        raise UsageError(f"--mesh {text!r}: {e}") from None


def load_from_args(args: argparse.Namespace) -> LM:
    return load_model(args.model, mesh=mesh_from_text(args.mesh), **dtype_overrides(args.dtype))
