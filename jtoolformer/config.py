"""Frozen dataclass configs from YAML, with `key.sub=value` command-line overrides, saved back as YAML,
and every field checked against its type and valid range.

Generic over the config class: nested dataclass fields become nested YAML mappings. Override values
are parsed as YAML scalars, so `steps=10`, `remat=true`, `peak_tflops=null` get their natural types.
A config class derives from `Checked` and declares ranges with `setting(default, ge=…, lt=…, choices=…)`;
construction then refuses a value of the wrong type, NaN, an infinity, or a value out of range with a
`ConfigError` naming the field (loading from YAML adds the file and the dotted path, `optim.b1`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from jtoolformer.errors import UsageError

T = TypeVar("T")

_RANGE = "range"


class ConfigError(UsageError):
    """A config field holding a value it cannot take: `field`, `value`, and the `problem` ("must be …")."""

    def __init__(self, field: str, value: Any, problem: str):
        super().__init__(f"{field}={value!r} {problem}")
        self.field, self.value, self.problem = field, value, problem


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds (each optional) and allowed values of one field; `finite` False lets a float be ±inf."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: Collection[Any] | None = None
    finite: bool = True

    def problem(self, value: Any, number: bool) -> str | None:
        """What is wrong with `value` (of the field's type; `number`: a float field), or None."""
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {tuple(self.choices)}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        bounds = [(">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)]
        within = all(bound is None or _holds(value, op, bound) for op, bound in bounds)
        finite = not isinstance(value, float) or math.isfinite(value) or (not self.finite and not math.isnan(value))
        if within and finite:
            return None
        kind = "a finite number" if number and self.finite else "a number" if number else "an integer"
        limits = " and ".join(f"{op} {_number(bound)}" for op, bound in bounds if bound is not None)
        return f"must be {kind}" + (f" {limits}" if limits else "")


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _holds(value: float, op: str, bound: float) -> bool:
    return {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[op]


def setting(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: Collection[Any] | None = None, finite: bool = True) -> Any:
    """A dataclass field with a default and a valid range (see `Range`), checked by `Checked`."""
    return dataclasses.field(default=default, metadata={_RANGE: Range(ge, gt, le, lt, choices, finite)})


class Checked:
    """Base of a frozen dataclass config: construction checks every field's type (an int may stand for a
    float) and range; a NaN or infinite float is refused unless the field allows it. A subclass with its
    own `__post_init__` calls this one first."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            kind = _hints(type(self))[field.name]
            checked = _typed(kind, value)
            if checked is _WRONG_TYPE:
                raise ConfigError(field.name, value, f"must be {_describe(kind)}")
            if checked is None or dataclasses.is_dataclass(checked):
                continue
            problem = field.metadata.get(_RANGE, Range()).problem(checked, float in _options(kind))
            if problem:
                raise ConfigError(field.name, value, problem)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_WRONG_TYPE = object()


def _options(kind: Any) -> tuple[Any, ...]:
    return typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)


def _typed(kind: Any, value: Any) -> Any:
    """`value` as its range is checked in a field of type `kind` (int, float, bool, str, a dataclass, or a
    union of them with None): an int in a float field as a float, one beyond the float range as an
    infinity. _WRONG_TYPE when the type does not fit."""
    for option in _options(kind):
        if option is type(None) and value is None:
            return None
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _as_float(value)
        if option in (int, bool, str) and type(value) is option:
            return value
        if dataclasses.is_dataclass(option) and isinstance(value, option):
            return value
    return _WRONG_TYPE


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range
        return math.inf if value > 0 else -math.inf


def _describe(kind: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return " or ".join(names.get(o, getattr(o, "__name__", str(o))) for o in _options(kind))


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """["a.b=1", "c=x"] → {"a": {"b": 1}, "c": "x"}."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"override {item!r} is not of the form key=value (or key.sub=value)")
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"override {item!r}: {part!r} was already given a value")
        try:
            node[leaf] = yaml.safe_load(value)
        except _YAML_ERRORS as e:
            raise UsageError(f"override {item[:80]!r}: the value is not valid YAML ({_one_line(e)})") from None
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


def from_dict(cls: type[T], data: Any, where: str, prefix: str = "") -> T:
    """An instance of dataclass `cls`; `where` names the source in errors (a file, "overrides"), and
    `prefix` the dotted path of a nested config ("optim.")."""
    here = f"{where}: {prefix[:-1]}" if prefix else where
    if not isinstance(data, Mapping):
        raise UsageError(f"{here}: expected a mapping of {cls.__name__} keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        raise UsageError(f"{here}: unknown {cls.__name__} keys {unknown}; known: {sorted(fields)}")
    required = [name for name, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise UsageError(f"{here}: missing {cls.__name__} keys {missing}")
    values = {}
    for name, value in data.items():
        kind = _hints(cls)[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_dict(kind, value, where, f"{prefix}{name}.")
        else:
            values[name] = _yaml_float(kind, value)
    try:
        return cls(**values)
    except ConfigError as e:
        raise UsageError(f"{where}: {prefix}{e}") from None


def _yaml_float(kind: Any, value: Any) -> Any:
    """YAML 1.1 reads "1e-5" (no dot) as a string: a string where only a number fits becomes one."""
    options = _options(kind)
    if float in options and str not in options and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


# ValueError: int() refusing a literal of over 4300 digits; RecursionError: nesting too deep to build.
_YAML_ERRORS = (yaml.YAMLError, ValueError, RecursionError)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def read_yaml(path: str | Path) -> Any:
    """The content of a YAML file; a missing, unreadable or invalid file is a UsageError naming it."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the config ({getattr(e, 'strerror', None) or e})") from None
    except _YAML_ERRORS as e:
        raise UsageError(f"{path}: not valid YAML ({_one_line(e)})") from None


def load(cls: type[T], path: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """`cls` from the YAML file at `path` (or its defaults alone) with `overrides` applied."""
    data = {}
    if path is not None:
        data = read_yaml(path)
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise UsageError(f"{path}: expected a mapping of {cls.__name__} keys, got {data!r}")
    where = " with ".join(filter(None, [str(path) if path else "", "overrides" if overrides else ""]))
    return from_dict(cls, merge(data, parse_overrides(overrides)), where or cls.__name__)


def save(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
