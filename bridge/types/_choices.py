"""choice (one of a fixed set of strings) and module (a reference to a program module by name)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._base import VariableType

_MODULE_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ChoiceType(VariableType):
    name = "choice"
    constraint_keys = {"choices": "the allowed strings (required)"}
    choices_required = True

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        if "choices" not in constraints:
            if self.choices_required:
                raise self.bad_constraint(var, f"type {self.name!r} needs a non-empty list of choices", "choices")
            return constraints
        choices = constraints["choices"]
        if not isinstance(choices, (list, tuple)) or not choices:
            raise self.bad_constraint(var, f"must be a non-empty list, got {choices!r}", "choices")
        if not all(isinstance(c, str) for c in choices):
            raise self.bad_constraint(var, "every choice must be a string", "choices")
        if len(set(choices)) != len(choices):
            raise self.bad_constraint(var, "choices must be unique", "choices")
        constraints["choices"] = list(choices)
        return constraints

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> str:
        if not isinstance(value, str):
            raise self.wrong_type(var, value, "a str")
        choices = constraints.get("choices")
        if choices is not None and value not in choices:
            raise self.violation(var, f"{value!r} is not one of {choices}", "choices")
        return value


class ModuleType(ChoiceType):
    """A module reference such as 'ChainOfThought' or 'dspy.Predict'; choices are optional."""

    name = "module"
    constraint_keys = {"choices": "the allowed module names (optional)"}
    choices_required = False

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> str:
        value = super().coerce_value(value, constraints, var)
        if not _MODULE_REF.fullmatch(value):
            raise self.violation(var, f"{value!r} is not a dotted module reference", "module_ref")
        return value
