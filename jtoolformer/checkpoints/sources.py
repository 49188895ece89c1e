"""Read-only views of the tensors in a checkpoint, by HF name, read a slice at a time."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Protocol

import ml_dtypes
import numpy as np

Index = tuple[slice, ...]


class TensorSource(Protocol):
    def names(self) -> set[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def read(self, name: str, index: Index) -> np.ndarray: ...
    def where(self, name: str) -> str: ...  # the file that holds it, for error messages


_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


class _SafetensorsFile:
    """One .safetensors file read with pread rather than mmap: mapped pages would count as resident
    memory of this process, doubling the apparent footprint of a load."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        header.pop("__metadata__", None)
        self.data_start = 8 + header_len
        self.entries = header
        self.fd = os.open(path, os.O_RDONLY)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

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
            raise ValueError(f"{self.path}: tensor {name} is truncated")
        first = slice(None) if rows.step == 1 else index[0]
        rest = tuple(index[1:])
        if first == slice(None) and all(s == slice(None) for s in rest):
            return block
        return np.ascontiguousarray(block[(first,) + rest])


class SafetensorsSource:
    """model.safetensors, or model-*.safetensors with model.safetensors.index.json."""

    def __init__(self, files: dict[str, Path]):
        self._file_of = files
        self._files = {f: _SafetensorsFile(f) for f in set(files.values())}

    @classmethod
    def from_dir(cls, directory: Path) -> "SafetensorsSource":
        index = directory / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = {name: directory / f for name, f in weight_map.items()}
            for f in set(files.values()):
                if not f.exists():
                    raise FileNotFoundError(f"{index} names {f.name}, which is missing from {directory}")
            return cls(files)
        single = directory / "model.safetensors"
        return cls(dict.fromkeys(_SafetensorsFile(single).entries, single))

    def names(self) -> set[str]:
        return set(self._file_of)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._files[self._file_of[name]].shape(name)

    def read(self, name: str, index: Index) -> np.ndarray:
        return self._files[self._file_of[name]].read(name, index)

    def where(self, name: str) -> str:
        return str(self._file_of.get(name, next(iter(self._files), "?")))


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
        files = (sorted({directory / f for f in json.loads(index.read_text())["weight_map"].values()})
                 if index.exists() else [directory / "pytorch_model.bin"])
        self._tensors, self._file_of = {}, {}
        for f in files:
            for name, t in torch.load(f, map_location="cpu", mmap=True, weights_only=True).items():
                self._tensors[name], self._file_of[name] = t, f

    def names(self) -> set[str]:
        return set(self._tensors)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._tensors[name].shape)

    def read(self, name: str, index: Index) -> np.ndarray:
        import torch

        t = self._tensors[name][index]
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()

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
