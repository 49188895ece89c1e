"""Read-only views of the tensors in a checkpoint, by HF name, read a slice at a time."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Protocol

import ml_dtypes
import numpy as np

from jtoolformer.errors import UsageError

Index = tuple[slice, ...]


class TensorSource(Protocol):
    def names(self) -> set[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def read(self, name: str, index: Index) -> np.ndarray: ...
    def where(self, name: str) -> str: ...  # the file that holds it, for error messages
    def floating(self, name: str) -> bool: ...  # stored as floating point (weights must be)


_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_FLOATING = {"F64", "F32", "F16", "BF16"}


class _SafetensorsFile:
    """One .safetensors file read with pread rather than mmap: mapped pages would count as resident
    memory of this process, doubling the apparent footprint of a load."""

    def __init__(self, path: Path):
        self.path = path
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size < 8:
                raise UsageError(f"{path}: {size} bytes, too short for a safetensors file (it starts with an "
                                 "8-byte header length)")
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size - 8:
                raise UsageError(f"{path}: its first 8 bytes give a header of {header_len} bytes, more than the "
                                 f"file's {size}: not a safetensors file, or a truncated one")
            header = _parse_header(f.read(header_len), path)
        self.data_start = 8 + header_len
        self.entries = _checked_entries(header, size - self.data_start, path)
        self.fd = os.open(path, os.O_RDONLY)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

    def floating(self, name: str) -> bool:
        return self.entries[name]["dtype"] in _FLOATING

    def read(self, name: str, index: Index) -> np.ndarray:
        entry = self.entries[name]
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
        shape = tuple(entry["shape"])
        begin = self.data_start + entry["data_offsets"][0]
        if not shape:
            return np.frombuffer(os.pread(self.fd, dtype.itemsize, begin), dtype).reshape(())
        rows = range(shape[0])[index[0]] if index else range(shape[0])
        row_bytes = math.prod(shape[1:]) * dtype.itemsize
        lo, hi = (rows.start, rows.stop) if rows.step == 1 else (0, shape[0])
        block = np.empty((hi - lo,) + shape[1:], dtype)
        if block.nbytes and os.preadv(self.fd, [memoryview(block.reshape(-1).view(np.uint8))], begin + lo * row_bytes) != block.nbytes:
            raise UsageError(f"{self.path}: tensor {name} is truncated")
        first = slice(None) if rows.step == 1 else index[0]
        rest = tuple(index[1:])
        if first == slice(None) and all(s == slice(None) for s in rest):
            return block
        return np.ascontiguousarray(block[(first,) + rest])


def parse_json(raw: bytes, where: str) -> Any:
    """The JSON value in `raw`; anything json cannot read (bad UTF-8 or syntax, an integer of thousands of
    digits, deep nesting) is a UsageError starting with `where`."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{where}: not valid JSON ({str(e) or type(e).__name__})") from None


def _parse_header(raw: bytes, path: Path) -> dict:
    header = parse_json(raw, f"{path}: the safetensors header")
    if not isinstance(header, dict):
        raise UsageError(f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object")
    return header


def _checked_entries(header: dict, data_size: int, path: Path) -> dict[str, dict]:
    """The header's tensor entries, each checked: a known dtype, a shape of sizes >= 0, and data_offsets
    [begin, end] inside the data that hold exactly shape × dtype size bytes, no two tensors sharing any."""
    entries = {name: entry for name, entry in header.items() if name != "__metadata__"}
    spans = []
    for name, entry in entries.items():
        where = f"{path}: tensor {name}"
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: expected an object with dtype, shape and data_offsets, got {entry!r}")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in _SAFETENSORS_DTYPES:
            raise UsageError(f"{where}: unknown dtype {dtype!r}; readable: {sorted(_SAFETENSORS_DTYPES)}")
        if not _is_int_list(shape) or any(n < 0 for n in shape):
            raise UsageError(f"{where}: shape {shape!r} is not a list of sizes >= 0")
        if not _is_int_list(offsets) or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1]:
            raise UsageError(f"{where}: data_offsets {offsets!r} are not [begin, end] with 0 <= begin <= end")
        needed = math.prod(shape) * np.dtype(_SAFETENSORS_DTYPES[dtype]).itemsize
        if offsets[1] - offsets[0] != needed:
            raise UsageError(f"{where}: data_offsets {offsets} hold {offsets[1] - offsets[0]} bytes, but shape "
                             f"{shape} of {dtype} needs {needed}")
        if offsets[1] > data_size:
            raise UsageError(f"{where}: data_offsets {offsets} end past the {data_size} bytes of data after the "
                             "header; the file is truncated or corrupt")
        if needed:
            spans.append((offsets[0], offsets[1], name))
    spans.sort()
    for (_, end, first), (begin, _, second) in zip(spans, spans[1:]):
        if begin < end:
            raise UsageError(f"{path}: tensor {second} overlaps tensor {first} (its data_offsets begin at {begin}, "
                             f"before {first} ends at {end}); the file is corrupt")
    return entries


def _is_int_list(value: object) -> bool:
    return isinstance(value, list) and all(type(n) is int for n in value)


class SafetensorsSource:
    """model.safetensors, or model-*.safetensors with model.safetensors.index.json."""

    def __init__(self, files: dict[str, Path]):
        self._file_of = files
        self._files = {f: _SafetensorsFile(f) for f in sorted(set(files.values()))}
        for name, f in files.items():
            if name not in self._files[f].entries:
                raise UsageError(f"{f}: has no tensor {name}, which the index puts there")

    @classmethod
    def from_dir(cls, directory: Path) -> "SafetensorsSource":
        index = directory / "model.safetensors.index.json"
        if index.exists():
            return cls(_index_files(index))
        single = directory / "model.safetensors"
        return cls(dict.fromkeys(_SafetensorsFile(single).entries, single))

    def names(self) -> set[str]:
        return set(self._file_of)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._files[self._file_of[name]].shape(name)

    def read(self, name: str, index: Index) -> np.ndarray:
        return self._files[self._file_of[name]].read(name, index)

    def floating(self, name: str) -> bool:
        return self._files[self._file_of[name]].floating(name)

    def where(self, name: str) -> str:
        return str(self._file_of.get(name, next(iter(self._files), "?")))


def _index_files(index: Path) -> dict[str, Path]:
    """Tensor name → file, from a sharded checkpoint's index."""
    content = parse_json(index.read_bytes(), str(index))
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
        raise UsageError(f"{index}: expected \"weight_map\": an object of tensor name to file name")
    files = {name: index.parent / f for name, f in weight_map.items()}
    for f in set(files.values()):
        if not f.is_file():
            raise FileNotFoundError(f"{index} names {f.name}, which is missing from {index.parent}")
    return files


class TorchBinSource:
    """pytorch_model.bin (or its sharded index), memory-mapped by torch; needs torch installed."""

    def __init__(self, directory: Path):
        try:
            import torch
        except ImportError as e:
            raise ImportError(
                f"{directory} holds only pytorch_model.bin weights; reading them needs torch "
                "(pip install torch), or convert the checkpoint to safetensors"
            ) from e
        index = directory / "pytorch_model.bin.index.json"
        files = sorted(set(_index_files(index).values())) if index.exists() else [directory / "pytorch_model.bin"]
        self._tensors, self._file_of = {}, {}
        for f in files:
            try:
                tensors = torch.load(f, map_location="cpu", mmap=True, weights_only=True)
            except Exception as e:  # torch raises many kinds (pickle, zip, runtime) for a corrupt file
                raise UsageError(f"{f}: not a readable PyTorch checkpoint ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})") from e
            if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
                raise UsageError(f"{f}: expected a state dict of tensors by name, got {type(tensors).__name__}")
            for name, t in tensors.items():
                self._tensors[name], self._file_of[name] = t, f

    def names(self) -> set[str]:
        return set(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def read(self, name: str, index: Index) -> np.ndarray:
        import torch

        t = self._tensors[name][index]
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()

    def floating(self, name: str) -> bool:
        return self._tensors[name].is_floating_point()

    def where(self, name: str) -> str:
        return str(self._file_of.get(name, "pytorch_model.bin"))


def open_weights(directory: Path) -> TensorSource:
    if (directory / "model.safetensors").exists() or (directory / "model.safetensors.index.json").exists():
        return SafetensorsSource.from_dir(directory)
    if (directory / "pytorch_model.bin").exists() or (directory / "pytorch_model.bin.index.json").exists():
        return TorchBinSource(directory)
    raise FileNotFoundError(
        f"no weights in {directory}: expected model.safetensors, model.safetensors.index.json, "
        "pytorch_model.bin or pytorch_model.bin.index.json"
    )
