"""Frozen dataclass configs from YAML, with `key.sub=value` command-line overrides, saved back as YAML.

Generic over the config class: nested dataclass fields become nested YAML mappings. Override values
are parsed as YAML scalars, so `steps=10`, `remat=true`, `peak_tflops=null` get their natural types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """["a.b=1", "c=x"] → {"a": {"b": 1}, "c": "x"}."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value (or key.sub=value)")
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} was already given a value")
        node[leaf] = yaml.safe_load(value)
    return tree


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` laid over `base`, mappings merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """An instance of dataclass `cls`; `where` names the source in errors (a file, "overrides")."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"{where}: unknown {cls.__name__} keys {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_dict(kind, value, f"{where}: {name}")
        else:
            values[name] = _checked(kind, value, f"{where}: {name}")
    try:
        return cls(**values)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from e


def _checked(kind: Any, value: Any, where: str) -> Any:
    """`value` as a field of type `kind` (int, float, bool, str, or a union of them with None)."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is float and isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if option in (int, bool, str) and type(value) is option:
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"{where}: expected {names}, got {value!r}")


def load(cls: type[T], path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """`cls` from the YAML file at `path` (or its defaults alone) with `overrides` applied."""
    data = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
    where = " with ".join(filter(None, [str(path) if path else "", "overrides" if overrides else ""]))
    return from_dict(cls, merge(data, parse_overrides(overrides)), where or cls.__name__)


def save(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
