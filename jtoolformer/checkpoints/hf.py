"""Hugging Face checkpoint directories: load into sharded params (each shard read straight from the
file, never a second full copy in host memory) and export params back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict
from jax.sharding import Mesh
from safetensors.numpy import save_file

from jtoolformer.checkpoints.sources import TensorSource, open_weights, parse_json
from jtoolformer.errors import UsageError
from jtoolformer.models import ARCH_MODULES, ModelConfig, abstract_params, param_shardings

LAYERED = "{i}"


def read_hf_config(directory: str | Path) -> ModelConfig:
    directory = Path(directory)
    path = directory / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a Hugging Face checkpoint directory: no config.json")
    hf = parse_json(path.read_bytes(), str(path))
    if not isinstance(hf, dict):
        raise UsageError(f"{path}: expected a JSON object of config fields, got {type(hf).__name__}")
    return config_from_hf(hf, path)


# A checkpoint's torch_dtype → the params and compute it runs in: float16 weights run in bfloat16 (same
# width; TPUs compute in it), so GPT-J-6B's float16 release loads at 12 GB, not 24.
_CHECKPOINT_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "bfloat16"}


def config_from_hf(hf: dict, path: Path) -> ModelConfig:
    """The ModelConfig of a HF config dict read from `path`, in the checkpoint's own dtype (its
    torch_dtype, "dtype" since transformers 5; float32 when it has none); a bad field is a UsageError
    naming the file."""
    model_type = hf.get("model_type")
    if model_type not in ARCH_MODULES:
        raise UsageError(f"{path}: model_type {model_type!r} is not supported; expected one of {sorted(ARCH_MODULES)}")
    stored = hf.get("dtype", hf.get("torch_dtype")) or "float32"
    if stored not in _CHECKPOINT_DTYPES:
        raise UsageError(f"{path}: dtype {stored!r} is not supported; expected one of {sorted(_CHECKPOINT_DTYPES)}")
    dtype = _CHECKPOINT_DTYPES[stored]
    try:
        return ARCH_MODULES[model_type].config_from_hf(hf).replace(dtype=dtype, param_dtype=dtype)
    except KeyError as e:
        raise UsageError(f"{path}: missing key {e} for a {model_type} config") from e
    except (TypeError, AttributeError, ValueError) as e:  # a field of the wrong type or out of range
        raise UsageError(f"{path}: {e}") from e


@dataclass(frozen=True)
class _Tensors:
    """The HF tensors one param holds: one per layer, in order, when it stacks the scanned layers."""

    names: tuple[str, ...]
    transposed: bool
    stacked: bool

    def shape(self, param_shape: tuple[int, ...]) -> tuple[int, ...]:
        per_tensor = param_shape[1:] if self.stacked else param_shape
        return tuple(reversed(per_tensor)) if self.transposed else tuple(per_tensor)


def _unrolled_layer(path: tuple[str, ...]) -> int | None:
    """The layer index of a param under "h_<i>" (unrolled layers), else None."""
    match = re.fullmatch(r"h_(\d+)", path[0])
    return int(match[1]) if match else None


def _name_table(cfg: ModelConfig) -> dict[tuple[str, ...], _Tensors]:
    """Our param path → the HF tensors it holds, for the params this config has (scanned layers under
    "h", or unrolled ones under "h_0", "h_1", …), in the order of the architecture's name table."""
    order = {path: k for k, (path, _, _) in enumerate(ARCH_MODULES[cfg.arch].HF_NAMES)}
    entries = {path: (hf, transposed) for path, hf, transposed in ARCH_MODULES[cfg.arch].HF_NAMES}
    found = []
    for path in flatten_dict(abstract_params(cfg)):
        layer = _unrolled_layer(path)
        key = path if layer is None else ("h", *path[1:])
        found.append((order[key], -1 if layer is None else layer, path, key, layer))
    table = {}
    for _, _, path, key, layer in sorted(found):  # errors then name tensors in HF order
        hf, transposed = entries[key]
        if LAYERED not in hf:
            names = (hf,)
        elif layer is not None:
            names = (hf.format(i=layer),)
        else:
            names = tuple(hf.format(i=i) for i in range(cfg.n_layers))
        table[path] = _Tensors(names, transposed, stacked=LAYERED in hf and layer is None)
    return table


def _check_layer_count(source: TensorSource, cfg: ModelConfig) -> None:
    """The config's layer count against the layers the weights hold, before anything is built per layer
    (a config.json claiming a billion layers would otherwise trace them all)."""
    templates = [hf for _, hf, _ in ARCH_MODULES[cfg.arch].HF_NAMES if LAYERED in hf]
    patterns = [re.compile(re.escape(hf).replace(re.escape(LAYERED), r"(\d+)")) for hf in templates]
    held = {int(match[1]) for name in source.names() for pattern in patterns if (match := pattern.fullmatch(name))}
    count = max(held, default=-1) + 1
    if count != cfg.n_layers:
        where = source.where(min(source.names(), default=""))
        raise UsageError(f"{where}: the weights hold {count} layers, but the config says n_layers={cfg.n_layers}")


def _check_tensors(source: TensorSource, cfg: ModelConfig, table, flat_abstract) -> None:
    expected = {name: tensors.shape(flat_abstract[path].shape)
                for path, tensors in table.items() for name in tensors.names}
    present = source.names()
    missing = sorted(set(expected) - present)
    if missing:
        raise UsageError(f"{source.where(missing[0])}: missing tensors {missing[:5]}"
                         f"{' …' if len(missing) > 5 else ''} ({len(missing)} in all) for a {cfg.arch} model")
    ignored = ARCH_MODULES[cfg.arch].HF_IGNORED_SUFFIXES + (("lm_head.weight",) if cfg.tie_embeddings else ())
    unexpected = sorted(n for n in present - set(expected) if not n.endswith(ignored))
    if unexpected:
        raise UsageError(f"{source.where(unexpected[0])}: unexpected tensors {unexpected[:5]} — the file "
                         f"does not match its config.json ({cfg.arch}, {cfg.n_layers} layers)")
    for name, shape in expected.items():
        if not source.floating(name):
            raise UsageError(f"{source.where(name)}: tensor {name} is not stored as floating point, as weights are")
        if source.shape(name) != shape:
            raise UsageError(f"{source.where(name)}: tensor {name} has shape {source.shape(name)}, "
                             f"but config.json implies {shape}")


def load_params(source: TensorSource, cfg: ModelConfig, mesh: Mesh):
    """Params for `cfg` read from `source`, each device reading only its own shard."""
    _check_layer_count(source, cfg)
    flat_abstract = flatten_dict(abstract_params(cfg))
    flat_shardings = flatten_dict(param_shardings(cfg, mesh))
    table = _name_table(cfg)
    _check_tensors(source, cfg, table, flat_abstract)

    def reader(path):
        tensors = table[path]
        dtype = flat_abstract[path].dtype

        def read_one(name: str, index: tuple[slice, ...]) -> np.ndarray:
            if tensors.transposed:
                return source.read(name, tuple(reversed(index))).T
            return source.read(name, index)

        def callback(index: tuple[slice, ...]) -> np.ndarray:
            if not tensors.stacked:
                return np.asarray(read_one(tensors.names[0], index), dtype)
            layers = range(cfg.n_layers)[index[0]]
            out = np.empty((len(layers),) + tuple(len(range(n)[s]) for n, s in
                                                   zip(flat_abstract[path].shape[1:], index[1:])), dtype)
            for j, i in enumerate(layers):
                out[j] = read_one(tensors.names[i], index[1:])
            return out

        return callback

    flat = {
        path: jax.make_array_from_callback(flat_abstract[path].shape, flat_shardings[path], reader(path))
        for path in flat_abstract
    }
    return unflatten_dict(flat)


def load_hf(directory: str | Path, mesh: Mesh, **overrides) -> tuple[ModelConfig, object]:
    """(config, params) from a HF checkpoint directory; `overrides` change e.g. dtype or remat."""
    directory = Path(directory)
    cfg = read_hf_config(directory).replace(**overrides)
    return cfg, load_params(open_weights(directory), cfg, mesh)


def save_hf(params, cfg: ModelConfig, directory: str | Path, max_shard_bytes: int = 2 << 30) -> None:
    """Writes config.json and model.safetensors (sharded with an index above max_shard_bytes).

    Tensors are fetched from the devices one layer at a time.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    flat = flatten_dict(params)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for path, tensors in _name_table(cfg).items():
        for i, name in enumerate(tensors.names):
            x = np.asarray(jax.device_get(flat[path][i] if tensors.stacked else flat[path]))
            x = np.ascontiguousarray(x.T if tensors.transposed else x)
            if size and size + x.nbytes > max_shard_bytes:
                shards.append({})
                size = 0
            shards[-1][name] = x
            size += x.nbytes
    if len(shards) == 1:
        save_file(shards[0], directory / "model.safetensors", metadata={"format": "pt"})
    else:
        weight_map = {}
        for k, shard in enumerate(shards, 1):
            fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, directory / fname, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(shard, fname))
        total = sum(x.nbytes for s in shards for x in s.values())
        (directory / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    (directory / "config.json").write_text(json.dumps(ARCH_MODULES[cfg.arch].config_to_hf(cfg), indent=1))
