"""Read-only views of the tensors in a checkpoint, by HF name, read a slice at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np
from safetensors import safe_open

Index = tuple[slice, ...]


class TensorSource(Protocol):
    def names(self) -> set[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def read(self, name: str, index: Index) -> np.ndarray: ...
    def where(self, name: str) -> str: ...  # the file that holds it, for error messages


class SafetensorsSource:
    """model.safetensors, or model-*.safetensors with model.safetensors.index.json; memory-mapped."""

    def __init__(self, files: dict[str, Path]):
        self._file_of = files
        self._handles = {f: safe_open(f, framework="numpy") for f in set(files.values())}

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
        with safe_open(single, framework="numpy") as f:
            return cls({name: single for name in f.keys()})

    def names(self) -> set[str]:
        return set(self._file_of)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handles[self._file_of[name]].get_slice(name).get_shape())

    def read(self, name: str, index: Index) -> np.ndarray:
        return self._handles[self._file_of[name]].get_slice(name)[index]

    def where(self, name: str) -> str:
        return str(self._file_of.get(name, next(iter(self._handles), "?")))


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
