"""What every variable type does: check its constraints once, then coerce each value."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import ConstraintViolationError, ValidationError, VariableTypeError


class VariableType(ABC):
    """A variable type: constraint checking at registration, coercion at every write.

    `coerce` (or `coerce_value`, for a value known not to be None) returns the value as it
    will be stored (e.g. an int given to a float variable becomes a float; an embedding
    becomes its unit vector) or raises VariableTypeError (wrong kind of value) /
    ConstraintViolationError (rule broken).
    """

    name: ClassVar[str]
    #: constraint key -> one-line description (also the list of allowed keys).
    constraint_keys: ClassVar[dict[str, str]] = {}

    def check_constraints(self, constraints: Mapping[str, Any] | None, var: str) -> dict[str, Any]:
        """Validates a constraint dict once, at registration; returns it normalised."""
        constraints = dict(constraints or {})
        allowed = {"nullable": "allow None as the value", **self.constraint_keys}
        unknown = sorted(set(constraints) - set(allowed))
        if unknown:
            raise ValidationError(
                f"{var}: unknown constraint(s) {unknown} for type {self.name!r}; allowed: {sorted(allowed)}",
                variable=var,
                rule="constraints",
            )
        if not isinstance(constraints.get("nullable", False), bool):
            raise ValidationError(f"{var}: constraint 'nullable' must be a bool", variable=var, rule="nullable")
        return self._check_constraints(constraints, var)

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        return constraints

    def coerce(self, value: Any, constraints: Mapping[str, Any], var: str) -> Any:
        if value is None:
            if constraints.get("nullable"):
                return None
            raise VariableTypeError(
                f"{var}: None is not a valid {self.name} (register with constraints={{'nullable': True}} to allow it)",
                variable=var,
                rule="nullable",
            )
        return self.coerce_value(value, constraints, var)

    @abstractmethod
    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> Any:
        """Coerces a value that is not None, or raises; each concrete type defines its rules here.
        Callers that already know the value is not None (e.g. a wire scalar) call it directly."""

    def coerces_arrays_by_shape(self, constraints: Mapping[str, Any]) -> bool:
        """Whether `coerce_value`, under these constraints, does the same to every array of one dtype and
        shape, whatever its elements (no normalising, say): then one such array validated stands for a
        batch of them (an import of embeddings). False unless a type says so."""
        return False

    # -- helpers for subclasses: errors that name the variable and the rule

    def wrong_type(self, var: str, value: Any, expected: str) -> VariableTypeError:
        return VariableTypeError(
            f"{var}: expected {expected} for type {self.name!r}, got {type(value).__name__} {_short(value)}",
            variable=var,
            rule="type",
            type=self.name,
        )

    def violation(self, var: str, message: str, rule: str) -> ConstraintViolationError:
        return ConstraintViolationError(f"{var}: {message} (constraint {rule!r})", variable=var, rule=rule)

    def bad_constraint(self, var: str, message: str, rule: str) -> ValidationError:
        return ValidationError(f"{var}: invalid constraint {rule!r}: {message}", variable=var, rule=rule)

    def check_length_constraints(self, constraints: Mapping[str, Any], var: str) -> None:
        for key in ("min_length", "max_length"):
            n = constraints.get(key)
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
                raise self.bad_constraint(var, f"must be a non-negative int, got {_short(n)}", key)

    def check_length(self, n: int, constraints: Mapping[str, Any], var: str, unit: str) -> None:
        lo, hi = constraints.get("min_length"), constraints.get("max_length")
        if lo is not None and n < lo:
            raise self.violation(var, f"has {n} {unit}, below min_length {lo}", "min_length")
        if hi is not None and n > hi:
            raise self.violation(var, f"has {n} {unit}, above max_length {hi}", "max_length")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
