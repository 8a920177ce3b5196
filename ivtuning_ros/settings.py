"""One loader for every settings dataclass: model configs, training configs and the
node's parameters are frozen dataclasses read from mappings by their type hints.

`from_mapping(cls, raw, path)` checks every key: an unknown or missing key, a value of
the wrong type or outside a `Literal`'s choices raises a ValueError naming the dotted key
(`train.lr`, `prompter.rank`); nested dataclasses, tuples, unions and dicts are
followed. Checks that need several fields live in each class's `__post_init__`; their
errors are prefixed with where the mapping sits.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

__all__ = ["from_mapping", "to_plain"]


def from_mapping(cls: type, raw: Any, path: str = "") -> Any:
    """Build dataclass `cls` from a mapping; errors name the dotted key under `path`."""
    where = path or "config"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        keys = ", ".join(f"{path}.{k}" if path else k for k in unknown)
        raise ValueError(f"unknown key {keys} (allowed here: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in raw:
            no_default = f.default is dataclasses.MISSING
            if no_default and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"missing key {key}")
            continue
        kwargs[name] = convert(hints[name], raw[name], key)
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") if path else err from None


def convert(tp: Any, value: Any, path: str) -> Any:
    """Check one value against a type hint and convert it (lists to tuples, ints to
    floats where a float is declared); ValueError naming `path` otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ValueError(f"{path}: must not be null")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return convert(option, value, path)
            except ValueError as err:
                errors.append(str(err).removeprefix(f"{path}: "))
        raise ValueError(f"{path}: {' or '.join(errors)}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ValueError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if origin in (tuple, list):
        return _sequence(tp, value, path)
    return _scalar(tp, value, path)


def _sequence(tp: Any, value: Any, path: str) -> Any:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{path}: expected a list, got {value!r}")
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list:
        return [convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ValueError(f"{path}: expected {len(args)} values, got {list(value)!r}")
    items = enumerate(zip(args, value, strict=True))
    return tuple(convert(a, v, f"{path}[{i}]") for i, (a, v) in items)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{path}: expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"{path}: unsupported field type {tp}")


def to_plain(value: Any) -> Any:
    """Dataclasses and tuples -> dicts and lists (for JSON, YAML and round trips)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        }
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
