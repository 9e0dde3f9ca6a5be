"""Typed records to and from JSON by one generic mapping: a dataclass is an object whose keys are
its field names, a dict an object, a list or tuple an array, anything else a number, text, true,
false or null. Reading one back follows the dataclass's type hints and checks every key and type on
the way, so a damaged file is refused in one line naming the key, not read into a wrong number."""

import dataclasses
import functools
import math
import types
import typing

import numpy as np

# results.json's layout: a file of another layout (an earlier version's) is refused by --resume
FORMAT = 2


class RecordError(ValueError):
    """A stored record that does not have the shape its type declares."""


def to_json(value):
    """value as plain JSON types: dataclasses by their fields, numpy numbers as Python numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_json(getattr(value, name)) for name, _ in fields(type(value))}
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_json(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@functools.cache
def fields(kind):
    """A dataclass's stored fields (not its ClassVars), as (name, resolved type)."""
    hints = typing.get_type_hints(kind)
    return tuple((field.name, hints[field.name]) for field in dataclasses.fields(kind))


def from_json(kind, value, where="the record"):
    """value (parsed JSON) as the type `kind` (a dataclass, dict[str, X], list[X], X | None, float,
    int, str, bool, or typing.Any); RecordError naming `where` and the key when it is not one."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        return from_json(options[0], value, where) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind):
        return dataclass_from_json(kind, value, where)
    if origin is dict or kind is dict:
        expect(isinstance(value, dict), where, "an object")
        item_kind = args[1] if args else typing.Any
        return {key: from_json(item_kind, item, f"{where}.{key}") for key, item in value.items()}
    if origin is list or kind is list:
        expect(isinstance(value, list), where, "a list")
        item_kind = args[0] if args else typing.Any
        return [from_json(item_kind, item, f"{where}[{i}]") for i, item in enumerate(value)]
    return scalar_from_json(kind, value, where)


def dataclass_from_json(kind, value, where):
    expect(isinstance(value, dict), where, "an object")
    missing = [name for name, _ in fields(kind) if name not in value]
    if missing:
        raise RecordError(f"{where} lacks {', '.join(missing)}")
    return kind(
        **{name: from_json(hint, value[name], f"{where}.{name}") for name, hint in fields(kind)}
    )


def scalar_from_json(kind, value, where):
    if kind is float:
        expect(
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value),
            where,
            "a number",
        )
        return float(value)
    if kind is int:
        expect(isinstance(value, int) and not isinstance(value, bool), where, "a whole number")
        return value
    if kind is bool:
        expect(isinstance(value, bool), where, "true or false")
        return value
    if kind is str:
        expect(isinstance(value, str), where, "text")
        return value
    return value


def expect(holds, where, what):
    if not holds:
        raise RecordError(f"{where} is not {what}")
