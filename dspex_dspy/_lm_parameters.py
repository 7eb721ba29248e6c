"""The per-call LM parameters of a DSPy program's predictors, and the session variables that hold them.

DSPy reads a predictor's `config` on every call (`Predict.forward` merges it into the LM
kwargs), so these are the knobs a variable can turn without touching the program. Names
follow the spec: `cot_temperature` for a one-predictor program with prefix `cot_`; a
program with several predictors puts each predictor's path in the name
(`rag_generate_answer_temperature`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dspy


@dataclass(frozen=True, slots=True)
class LMParameter:
    name: str
    type: str
    constraints: dict[str, Any]


#: The LM parameters a sync binds to variables; None (nullable) means "not in config: the LM's own default".
LM_PARAMETERS: dict[str, LMParameter] = {
    p.name: p
    for p in (
        LMParameter("temperature", "float", {"min": 0.0, "max": 2.0, "nullable": True}),
        LMParameter("max_tokens", "integer", {"min": 1, "max": 1_000_000, "nullable": True}),
        LMParameter("top_p", "float", {"min": 0.0, "max": 1.0, "nullable": True}),
        LMParameter("top_k", "integer", {"min": 1, "max": 1_000_000, "nullable": True}),
        LMParameter("frequency_penalty", "float", {"min": -2.0, "max": 2.0, "nullable": True}),
        LMParameter("presence_penalty", "float", {"min": -2.0, "max": 2.0, "nullable": True}),
    )
}
#: Bound for every predictor; the others only when the predictor's config or its LM sets them.
ALWAYS = ("temperature", "max_tokens")
#: Variable types that can hold each kind of LM parameter.
_CARRIERS = {"float": ("float", "integer"), "integer": ("integer",)}


@dataclass(frozen=True, slots=True)
class Slot:
    """One LM parameter of one predictor, and the variable named for it."""

    key: str  # the returned mapping's key: 'temperature', or 'generate_answer.temperature'
    variable: str
    parameter: LMParameter
    predictor: Any

    def current(self) -> Any:
        """What the predictor would send now: its config, else its LM's (or the configured LM's) setting."""
        if self.parameter.name in self.predictor.config:
            return self.predictor.config[self.parameter.name]
        lm = self.predictor.lm or dspy.settings.lm
        return getattr(lm, "kwargs", {}).get(self.parameter.name)

    def apply(self, value: Any) -> None:
        """Sets the predictor's config for its next call: a new dict, so a call in another thread sees old or new."""
        config = dict(self.predictor.config)
        if value is None:
            config.pop(self.parameter.name, None)
        else:
            config[self.parameter.name] = value
        self.predictor.config = config


def predictor_paths(module: Any) -> list[tuple[str, Any]]:
    """(path used in names, predictor): '' for a one-predictor program; else the path, '.predict' dropped."""
    named = list(module.named_predictors())
    if not named:
        raise ValueError(f"{type(module).__name__} has no predictors, so no LM parameters to sync")
    if len(named) == 1:
        return [("", named[0][1])]
    paths = [(name.removesuffix(".predict").replace(".", "_"), predictor) for name, predictor in named]
    seen: dict[str, str] = {}
    for (path, _), (name, _) in zip(paths, named, strict=True):
        if path in seen:
            raise ValueError(f"predictors {seen[path]!r} and {name!r} would share variable names ({path!r})")
        seen[path] = name
    return paths


def slots(module: Any, prefix: str, names: Iterable[str] = ALWAYS) -> list[Slot]:
    """The slots of these parameters for every predictor of the module."""
    found = []
    for path, predictor in predictor_paths(module):
        for name in names:
            parameter = LM_PARAMETERS[name]
            variable = f"{prefix}{path}_{name}" if path else f"{prefix}{name}"
            found.append(Slot(f"{path}.{name}" if path else name, variable, parameter, predictor))
    return found


def wanted(module: Any, prefix: str) -> list[Slot]:
    """What a sync binds: temperature and max_tokens, plus any other LM parameter the predictor already sets."""
    every = slots(module, prefix, LM_PARAMETERS)
    return [s for s in every if s.parameter.name in ALWAYS or s.current() is not None]


def check_carrier(slot: Slot, info: dict[str, Any]) -> None:
    carriers = _CARRIERS[slot.parameter.type]
    if info["type"] not in carriers:
        raise TypeError(
            f"variable {slot.variable!r} is a {info['type']!r} variable; the LM parameter {slot.parameter.name} "
            f"needs a {' or '.join(repr(c) for c in carriers)} variable"
        )
