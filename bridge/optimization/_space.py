"""What an optimizer searches: one dimension per variable, derived from its type and constraints.

This is the contract between the run loop (in `bridge`) and the optimizers (in the
`optimizers` package, or a user's own): both sides speak `Dimension`, `SearchSpace` and
`Trial`, and nothing else, so `bridge` never imports an optimizer library.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ValidationError

Kind = Literal["float", "integer", "categorical"]

#: Variable types an optimizer can search, and why the others cannot be.
SEARCHABLE = ("float", "integer", "choice", "module", "boolean")
_UNSEARCHABLE_WHY = {
    "string": "free text has no search space (use a 'choice' variable with the candidates as choices)",
    "embedding": "an embedding is a vector, not a parameter to search",
    "tensor": "a tensor is an array, not a parameter to search",
    "list": "a list has no search space",
    "dict": "a dict has no search space",
}


@dataclass(frozen=True, slots=True)
class Dimension:
    """One searched variable: a numeric range (`low`..`high`, inclusive) or a set of `choices`."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    #: The variable's value when the run started (e.g. the gradient optimizer starts there).
    initial: Any = None

    @property
    def numeric(self) -> bool:
        return self.kind != "categorical"

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if self.kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
            return False
        if self.kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= value <= self.high

    def clip(self, value: float) -> float | int:
        """A numeric proposal moved into the range (and rounded, for integers)."""
        assert self.low is not None and self.high is not None
        if self.kind == "integer":
            return int(min(max(round(value), math.ceil(self.low)), math.floor(self.high)))
        return float(min(max(value, self.low), self.high))


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """The dimensions of a run, in the order the variables were given."""

    dimensions: tuple[Dimension, ...]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.dimensions)

    def __len__(self) -> int:
        return len(self.dimensions)

    def __getitem__(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    def check(self, candidate: Mapping[str, Any], who: str) -> dict[str, Any]:
        """A proposal from an optimizer, checked against the space (an optimizer bug must not reach the variables)."""
        if set(candidate) != set(self.names):
            raise ValidationError(
                f"{who} proposed {sorted(candidate)}; the search space is {self.names}", rule="candidate"
            )
        for dim in self.dimensions:
            if not dim.contains(candidate[dim.name]):
                raise ValidationError(
                    f"{who} proposed {dim.name}={candidate[dim.name]!r}, outside its search space {describe(dim)}",
                    variable=dim.name,
                    rule="candidate",
                )
        return {name: candidate[name] for name in self.names}


@dataclass(frozen=True, slots=True)
class Trial:
    """One finished iteration of a run, as optimizers see earlier ones (to resume instead of restarting)."""

    iteration: int
    candidate: dict[str, Any]
    #: None when the iteration failed (the objective raised or returned no usable score).
    score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.score is not None


def describe(dim: Dimension) -> str:
    if dim.kind == "categorical":
        return f"one of {list(dim.choices)}"
    return f"[{dim.low}, {dim.high}]" + (" (integers)" if dim.kind == "integer" else "")


def dimension_for(info: Mapping[str, Any], bounds: Sequence[float] | None = None) -> Dimension:
    """The dimension of one variable (an info dict as `list_variables` returns), or ValueError saying why not.

    `bounds` (low, high) narrows or supplies a numeric range; it must lie within the
    variable's own min/max constraints.
    """
    name, type_ = info["name"], info["type"]
    constraints = info.get("constraints") or {}
    initial = info.get("value")
    if type_ not in SEARCHABLE:
        why = _UNSEARCHABLE_WHY.get(type_, "it has no search space")
        raise ValidationError(
            f"{name}: a {type_!r} variable cannot be optimized: {why}; optimizable types: {', '.join(SEARCHABLE)}",
            variable=name,
            rule="search_space",
        )
    if type_ in ("choice", "module"):
        choices = constraints.get("choices")
        if not choices:
            raise ValidationError(
                f"{name}: a {type_!r} variable needs constraints={{'choices': [...]}} to be optimized",
                variable=name,
                rule="search_space",
            )
        return Dimension(name, "categorical", choices=tuple(choices), initial=initial)
    if type_ == "boolean":
        return Dimension(name, "categorical", choices=(False, True), initial=initial)
    low, high = constraints.get("min"), constraints.get("max")
    if bounds is not None:
        low, high = _narrowed(name, constraints, bounds)
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        raise ValidationError(
            f"{name}: a {type_!r} variable needs finite bounds to be optimized: register it with "
            "constraints={'min': ..., 'max': ...}, or pass optimizer_config={'bounds': "
            f"{{{name!r}: (low, high)}}}}",
            variable=name,
            rule="search_space",
        )
    if type_ == "integer" and math.ceil(low) > math.floor(high):
        raise ValidationError(f"{name}: no integer lies in [{low}, {high}]", variable=name, rule="search_space")
    if type_ == "integer":
        return Dimension(name, "integer", math.ceil(low), math.floor(high), initial=initial)
    return Dimension(name, "float", float(low), float(high), initial=initial)


def _narrowed(name: str, constraints: Mapping[str, Any], bounds: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValidationError(
            f"{name}: bounds must be a (low, high) pair of numbers, got {bounds!r}", variable=name, rule="bounds"
        ) from None
    if not low <= high:
        raise ValidationError(f"{name}: bounds ({low}, {high}) have low above high", variable=name, rule="bounds")
    lo, hi = constraints.get("min", -math.inf), constraints.get("max", math.inf)
    if low < lo or high > hi:
        raise ValidationError(
            f"{name}: bounds ({low}, {high}) reach outside the variable's constraints [{lo}, {hi}]",
            variable=name,
            rule="bounds",
        )
    return low, high


def search_space(
    infos: Sequence[Mapping[str, Any]], bounds: Mapping[str, Sequence[float]] | None = None
) -> SearchSpace:
    """The space of a run over these variables (in order); `bounds` maps names to (low, high)."""
    bounds = dict(bounds or {})
    names = [info["name"] for info in infos]
    unknown = sorted(set(bounds) - set(names))
    if unknown:
        raise ValidationError(f"bounds given for {unknown}, which this run does not optimize ({names})", rule="bounds")
    return SearchSpace(tuple(dimension_for(info, bounds.get(info["name"])) for info in infos))
