"""Variable types: constraint checks and value coercion, shared by client (early errors) and server (authority)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..codec import is_torch_tensor
from ..errors import UnknownTypeError, VariableTypeError
from ._arrays import EmbeddingType, TensorType
from ._base import VariableType
from ._choices import ChoiceType, ModuleType
from ._containers import DictType, ListType
from ._scalars import BooleanType, FloatType, IntegerType, StringType

TYPES: dict[str, VariableType] = {
    t.name: t
    for t in (
        FloatType(),
        IntegerType(),
        StringType(),
        BooleanType(),
        ChoiceType(),
        ModuleType(),
        EmbeddingType(),
        TensorType(),
        ListType(),
        DictType(),
    )
}

#: Other accepted spellings: the spec's Elixir-side 'map' is our 'dict'.
ALIASES: dict[str, str] = {"map": "dict"}


def get_type(name: object, var: str | None = None) -> VariableType:
    """The type called `name` (or an alias), or UnknownTypeError listing the known ones."""
    if isinstance(name, str):
        t = TYPES.get(ALIASES.get(name, name))
        if t is not None:
            return t
    prefix = f"{var}: " if var else ""
    raise UnknownTypeError(
        f"{prefix}unknown variable type {str(name)[:40]!r}; known types: {', '.join(TYPES)}",
        variable=var,
        rule="type",
        type=str(name)[:40],
    )


def infer_type(value: Any, var: str = "value") -> str:
    """The type a value most plainly is, for set_variable(create_if_missing=True) without a hint."""
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (int, np.integer)):
        return "integer"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, np.ndarray) or is_torch_tensor(value):
        return "tensor"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    raise VariableTypeError(
        f"{var}: cannot infer a variable type from {type(value).__name__}; pass type_hint",
        variable=var,
        rule="type_inference",
    )


def check_spec(type_name: str, constraints: Mapping[str, Any] | None, var: str) -> tuple[VariableType, dict[str, Any]]:
    """A new variable's type and its constraints, checked and normalised."""
    t = get_type(type_name, var)
    return t, t.check_constraints(constraints, var)


def prepare(
    type_name: str, value: Any, constraints: Mapping[str, Any] | None, var: str
) -> tuple[str, dict[str, Any], Any]:
    """Checks a new variable's type, constraints and initial value; returns them normalised."""
    t, checked = check_spec(type_name, constraints, var)
    return t.name, checked, t.coerce(value, checked, var)


__all__ = [
    "ALIASES",
    "TYPES",
    "VariableType",
    "check_spec",
    "get_type",
    "infer_type",
    "prepare",
]
