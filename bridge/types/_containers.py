"""list and dict (the spec's map): nested plain data that keeps int vs float apart.

Plain data is None, bool, int (int64), float, str, numpy arrays, and lists/dicts of
those. Tuples become lists. Dict keys that are str/int/float/bool become strings (as
the spec's map does); two keys that become the same string are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..codec import INT64_MAX, INT64_MIN, is_torch_tensor
from ..errors import LimitExceededError
from ..limits import HARD_MAX_NESTING
from ._base import VariableType

_KEY_TYPES = (str, int, float, bool)


def plain(t: VariableType, value: Any, var: str, depth: int = 0) -> Any:
    """Checks and normalises nested plain data; raises naming the offending path.

    Size limits (items, depth) are the codec's job, with the server's configured limits;
    the depth guard here only keeps recursion finite.
    """
    if depth > HARD_MAX_NESTING:
        raise LimitExceededError(
            f"{var}: value nests deeper than {HARD_MAX_NESTING} levels", variable=var, rule="max_nesting_depth"
        )
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        if not INT64_MIN <= int(value) <= INT64_MAX:
            raise t.violation(var, f"{int(value)} is outside the int64 range", "int64_range")
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray) or is_torch_tensor(value):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(t, v, f"{var}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, _KEY_TYPES):
                raise t.wrong_type(f"{var} key", key, "a str (or int/float/bool, converted to str)")
            skey = key if isinstance(key, str) else str(key)
            if skey in out:
                raise t.violation(var, f"keys {key!r} and {skey!r} both become {skey!r}", "map_key")
            out[skey] = plain(t, item, f"{var}[{skey!r}]", depth + 1)
        return out
    raise t.wrong_type(var, value, "plain data (None, bool, int, float, str, list, dict, array)")


class ListType(VariableType):
    name = "list"
    constraint_keys = {
        "item_type": "type name every item must have",
        "min_length": "fewest items",
        "max_length": "most items",
    }

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        self.check_length_constraints(constraints, var)
        item_type = constraints.get("item_type")
        if item_type is not None:
            from . import get_type  # the registry imports this module

            if not isinstance(item_type, str):
                raise self.bad_constraint(var, f"must be a type name, got {type(item_type).__name__}", "item_type")
            if item_type in ("list", "dict", "map"):
                raise self.bad_constraint(var, "items may not themselves be typed containers", "item_type")
            constraints["item_type"] = get_type(item_type, var).name
        return constraints

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise self.wrong_type(var, value, "a list")
        self.check_length(len(value), constraints, var, "items")
        item_type = constraints.get("item_type")
        if item_type is None:
            return plain(self, value, var)
        from . import get_type

        t = get_type(item_type)
        return [t.coerce(v, {}, f"{var}[{i}]") for i, v in enumerate(value)]


class DictType(VariableType):
    name = "dict"
    constraint_keys = {
        "required_keys": "keys that must be present",
        "min_length": "fewest keys",
        "max_length": "most keys",
    }

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        self.check_length_constraints(constraints, var)
        keys = constraints.get("required_keys")
        if keys is not None and (not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys)):
            raise self.bad_constraint(var, f"must be a list of strings, got {keys!r}", "required_keys")
        return constraints

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.wrong_type(var, value, "a dict")
        self.check_length(len(value), constraints, var, "items")
        result = plain(self, value, var)
        missing = [k for k in constraints.get("required_keys") or () if k not in result]  # None: no keys required
        if missing:
            raise self.violation(var, f"missing required keys {missing}", "required_keys")
        return result
