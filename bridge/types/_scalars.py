"""float, integer, string and boolean.

Coercion rules: an int (not a bool) is a valid float and is stored as float; an integral
float (2.0) is a valid integer, a fractional one (1.5) is not; a bool is neither an int
nor a float; NaN, +-inf and -0.0 are valid floats unless min/max bounds are set (NaN is
then outside every range). numpy scalars count as their Python kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..codec import INT64_MAX, INT64_MIN
from ._base import VariableType
from ._patterns import compile_pattern


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


class _Bounded(VariableType):
    constraint_keys = {"min": "smallest allowed value", "max": "largest allowed value"}

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        for key in ("min", "max"):
            if key in constraints:
                bound = constraints[key]
                try:
                    valid = _is_number(bound) and not math.isnan(bound)
                except OverflowError:  # an int too large for a float
                    valid = False
                if not valid:
                    raise self.bad_constraint(var, f"must be a finite number or +-inf, got {str(bound)[:40]}", key)
                constraints[key] = self._bound(bound)
        if "min" in constraints and "max" in constraints and constraints["min"] > constraints["max"]:
            raise self.bad_constraint(var, f"min {constraints['min']} is above max {constraints['max']}", "min")
        return constraints

    def _bound(self, bound: Any) -> Any:
        return float(bound)

    def _check_range(self, value: float | int, constraints: Mapping[str, Any], var: str) -> None:
        lo, hi = constraints.get("min"), constraints.get("max")
        if isinstance(value, float) and math.isnan(value) and (lo is not None or hi is not None):
            raise self.violation(var, "NaN is outside every range", "min" if lo is not None else "max")
        if lo is not None and value < lo:
            raise self.violation(var, f"{value!r} is below the minimum {lo!r}", "min")
        if hi is not None and value > hi:
            raise self.violation(var, f"{value!r} is above the maximum {hi!r}", "max")


class FloatType(_Bounded):
    name = "float"

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> float:
        if type(value) is float:  # the common case, first
            if constraints:
                self._check_range(value, constraints, var)
            return value
        if not _is_number(value):
            raise self.wrong_type(var, value, "a float or int")
        try:
            result = float(value)
        except OverflowError:
            raise self.violation(var, f"{str(value)[:40]}... is too large for a float", "float_range") from None
        self._check_range(result, constraints, var)
        return result


class IntegerType(_Bounded):
    name = "integer"

    def _bound(self, bound: Any) -> Any:
        return bound if isinstance(bound, float) and not bound.is_integer() else int(bound)

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> int:
        if not _is_number(value):
            raise self.wrong_type(var, value, "an int")
        if isinstance(value, (float, np.floating)) and not (math.isfinite(value) and float(value).is_integer()):
            raise self.violation(var, f"{value!r} is not a whole number", "integer")
        result = int(value)
        if not INT64_MIN <= result <= INT64_MAX:
            raise self.violation(var, f"{result} is outside the int64 range", "int64_range")
        self._check_range(result, constraints, var)
        return result


class StringType(VariableType):
    name = "string"
    constraint_keys = {
        "min_length": "fewest characters",
        "max_length": "most characters",
        "pattern": "regular expression the whole string must match",
    }

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        self.check_length_constraints(constraints, var)
        if "pattern" in constraints:
            pattern = constraints["pattern"]
            if not isinstance(pattern, str):
                raise self.bad_constraint(var, f"must be a string, got {type(pattern).__name__}", "pattern")
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise self.bad_constraint(var, str(exc), "pattern") from exc
        return constraints

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> str:
        if not isinstance(value, str):
            raise self.wrong_type(var, value, "a str")
        self.check_length(len(value), constraints, var, "characters")
        pattern = constraints.get("pattern")
        if pattern is not None and compile_pattern(pattern).fullmatch(value) is None:
            raise self.violation(var, f"{value[:60]!r} does not match pattern {pattern!r}", "pattern")
        return value


class BooleanType(VariableType):
    name = "boolean"

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise self.wrong_type(var, value, "a bool")
        return bool(value)
