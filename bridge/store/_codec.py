"""Records to JSON text and back, driven by their type annotations, for the stores that keep
records outside this process (SQLite, Redis).

Every field of a record is written under its name, so a field added to a record later is
stored with no change here (or refused loudly, if its annotation is one this codec does not
know), and a row written before the field existed reads back with the field's default.
JSON keeps what the wire gives (int vs float, str, bool, None, lists, str-keyed dicts);
tuples and NamedTuples, which JSON writes as arrays, are rebuilt from the annotations.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

from ._records import OptimizationRecord, SessionRecord, TrialRecord, VariableRecord

R = TypeVar("R", bound=tuple)  # a NamedTuple record class

_Convert = Callable[[Any], Any]
_PLAIN = (int, float, str, bool, type(None))

_dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
_loads = json.loads


def _converter(hint: Any, where: str) -> _Convert | None:
    """What rebuilds a value of this annotation from its JSON form; None when JSON gives it back as it was."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint in _PLAIN:
        return None
    if origin in (types.UnionType, typing.Union):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"{where}: a store cannot keep a union of {options}")
        inner = _converter(options[0], where)
        return None if inner is None else (lambda v: None if v is None else inner(v))
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"{where}: JSON keys are strings; {hint} cannot be stored")
        inner = _converter(args[1], where) if args else None
        return None if inner is None else (lambda v: {k: inner(x) for k, x in v.items()})
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0], where)
            return tuple if item is None else (lambda v: tuple([item(x) for x in v]))
        parts = [_converter(a, where) or (lambda x: x) for a in args]
        return lambda v: tuple([convert(x) for convert, x in zip(parts, v, strict=True)])
    if isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields"):
        return _named_tuple(hint)
    raise TypeError(f"{where}: a store does not know how to keep {hint!r}")


def _named_tuple(cls: type) -> _Convert:
    """A NamedTuple nested in a record (an access rule): JSON holds its fields in order; a shorter
    array (written before a field was added) takes the later fields' defaults."""
    hints = typing.get_type_hints(cls)
    parts = [_converter(hints[f], f"{cls.__name__}.{f}") or (lambda x: x) for f in cls._fields]  # type: ignore[attr-defined]
    return lambda v: cls(*[convert(x) for convert, x in zip(parts, v, strict=False)])


class RecordCodec(Generic[R]):
    """One record class's fields, except those kept in columns of their own (`apart`), as a JSON object."""

    def __init__(self, cls: type[R], apart: Collection[str] = ()) -> None:
        self.cls = cls
        hints = typing.get_type_hints(cls)
        fields: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]
        self._stored = [(i, name) for i, name in enumerate(fields) if name not in apart]
        defaults: dict[str, Any] = cls._field_defaults  # type: ignore[attr-defined]
        self._decode: list[tuple[str, _Convert | None, Any]] = [
            (name, _converter(hints[name], f"{cls.__name__}.{name}"), defaults.get(name, _REQUIRED))
            for _, name in self._stored
        ]

    def dumps(self, record: R) -> str:
        return _dumps({name: record[i] for i, name in self._stored})

    def loads(self, text: str | bytes, **apart: Any) -> R:
        """The record from its JSON, with the fields kept apart passed in by name."""
        raw = _loads(text)
        values = dict(apart)
        for name, convert, default in self._decode:
            if name in raw:
                value = raw[name]
                values[name] = value if convert is None or value is None else convert(value)
            elif default is _REQUIRED:
                raise ValueError(f"stored {self.cls.__name__} lacks its field {name!r}: the database is damaged")
        return self.cls(**values)


_REQUIRED = object()


#: A version's value is kept in columns of its own: its wire bytes as they came.
VARIABLES = RecordCodec(VariableRecord, apart=("value",))
SESSIONS = RecordCodec(SessionRecord)
RUNS = RecordCodec(OptimizationRecord)
TRIALS = RecordCodec(TrialRecord)
