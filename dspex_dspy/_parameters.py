"""Which teleprompter parameters a session variable can set, and how each value reaches DSPy.

A mapping name is either a real argument of the teleprompter's constructor or `compile`
(a number, a flag or a `Literal` choice), or a *derived* name for a setting DSPy takes
inside an object: `teacher_temperature` is the temperature of the LM in `teacher_settings`
(DSPy applies `teacher_settings` as `dspy.context(**teacher_settings)`, so the temperature
reaches the teacher as the sampling temperature of `teacher_settings['lm']`).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["float", "integer", "boolean", "choice"]
Stage = Literal["init", "compile", "derived"]

#: Variable types that can carry a parameter of each kind.
CARRIERS: dict[str, tuple[str, ...]] = {
    "float": ("float", "integer"),
    "integer": ("integer",),
    "boolean": ("boolean",),
    "choice": ("choice",),
}
#: Arguments that are the run's data or objects, never a variable's value.
_NOT_PARAMETERS = frozenset({"metric", "student", "trainset", "teacher", "valset", "programs"})
#: Arguments DSPy leaves unannotated (default None, or none), whose kind its documentation gives.
_UNTYPED: dict[str, Kind] = {
    "metric_threshold": "float",
    "stop_at_score": "float",
    "max_errors": "integer",
    "num_threads": "integer",
    "size": "integer",
    "max_demos": "integer",
}
#: Constructor arguments that hold an LM (or, for teacher_settings, DSPy settings with one) -> derived prefix.
_LM_ROLES = {
    "teacher_settings": "teacher",
    "prompt_model": "prompt",
    "task_model": "task",
    "reflection_lm": "reflection",
}
#: LM settings a derived name can set, with their kind.
_LM_KWARGS: dict[str, Kind] = {"temperature": "float", "max_tokens": "integer"}
_PLAIN = {"int": "integer", "float": "float", "bool": "boolean"}


@dataclass(frozen=True, slots=True)
class Parameter:
    """One name `variable_mappings` may use for a teleprompter class."""

    name: str
    kind: Kind
    stage: Stage
    #: Where the value goes, as DSPy spells it (shown in errors and in the docs' table).
    target: str
    choices: tuple[Any, ...] = ()
    #: For a derived name: the constructor argument holding the LM, and the LM setting.
    role: str | None = None
    lm_kwarg: str | None = None


def _annotation_kind(annotation: Any) -> tuple[Kind, tuple[Any, ...]] | None:
    if isinstance(annotation, str):
        words = [w.strip() for w in annotation.split("|") if w.strip() != "None"]
        return (_PLAIN[words[0]], ()) if len(words) == 1 and words[0] in _PLAIN else None  # type: ignore[return-value]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "choice", tuple(a for a in typing.get_args(annotation) if a is not None)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _annotation_kind(args[0]) if len(args) == 1 else None
    if annotation is bool:
        return "boolean", ()
    if annotation is int:
        return "integer", ()
    if annotation is float:
        return "float", ()
    return None


def _kind(param: inspect.Parameter) -> tuple[Kind, tuple[Any, ...]] | None:
    if param.annotation is not param.empty:
        return _annotation_kind(param.annotation)
    default = param.default
    if isinstance(default, bool):
        return "boolean", ()
    if isinstance(default, int):
        return "integer", ()
    if isinstance(default, float):
        return "float", ()
    if (default is None or default is param.empty) and param.name in _UNTYPED:
        return _UNTYPED[param.name], ()
    return None


def _arguments(fn: Any) -> list[inspect.Parameter]:
    params = list(inspect.signature(fn).parameters.values())[1:]  # without self
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def parameters(teleprompter: type) -> dict[str, Parameter]:
    """Every mapping name of a teleprompter class: constructor, then compile-only arguments, then derived names."""
    table: dict[str, Parameter] = {}
    init_args = _arguments(teleprompter.__init__)
    for stage, args in (("init", init_args), ("compile", _arguments(teleprompter.compile))):
        for arg in args:
            if arg.name in _NOT_PARAMETERS or arg.name in table:
                continue
            found = _kind(arg)
            if found is not None:
                kind, choices = found
                target = arg.name if stage == "init" else f"compile({arg.name}=...)"
                table[arg.name] = Parameter(arg.name, kind, stage, target, choices)  # type: ignore[arg-type]
    for arg in init_args:
        prefix = _LM_ROLES.get(arg.name)
        if prefix is None:
            continue
        for lm_kwarg, kind in _LM_KWARGS.items():
            where = "teacher_settings['lm']" if arg.name == "teacher_settings" else arg.name
            table[f"{prefix}_{lm_kwarg}"] = Parameter(
                f"{prefix}_{lm_kwarg}",
                kind,
                "derived",
                f"{where}.copy({lm_kwarg}=...)",
                role=arg.name,
                lm_kwarg=lm_kwarg,
            )
    return table


def accepted_kwargs(teleprompter: type) -> set[str] | None:
    """The keyword arguments the constructor takes; None when it takes any (it has **kwargs)."""
    params = list(inspect.signature(teleprompter.__init__).parameters.values())[1:]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def check_mappings(teleprompter: type, mappings: Mapping[str, str]) -> dict[str, Parameter]:
    """The parameter of each mapping name; ValueError listing the valid names for this class otherwise."""
    table = parameters(teleprompter)
    unknown = sorted(name for name in mappings if name not in table)
    if unknown:
        raise ValueError(
            f"{teleprompter.__name__} has no parameter {', '.join(map(repr, unknown))} for a variable to set; "
            f"valid names for {teleprompter.__name__}: {', '.join(sorted(table))}"
        )
    for name, variable in mappings.items():
        if not isinstance(variable, str) or not variable:
            raise ValueError(f"variable_mappings[{name!r}] must be a variable name or ID, got {variable!r}")
    return {name: table[name] for name in mappings}


def check_carrier(param: Parameter, variable: str, info: Mapping[str, Any]) -> None:
    """TypeError when the variable's type cannot hold this parameter's values (or its choices are not all valid)."""
    carriers = CARRIERS[param.kind]
    if info["type"] not in carriers:
        raise TypeError(
            f"variable {variable!r} is a {info['type']!r} variable; {param.name} ({param.target}) takes "
            f"{'an' if param.kind == 'integer' else 'a'} {param.kind}, carried by a "
            f"{' or '.join(repr(c) for c in carriers)} variable"
        )
    if param.kind == "choice":
        choices = (info.get("constraints") or {}).get("choices") or []
        outside = [c for c in choices if c not in param.choices]
        if outside:
            raise TypeError(
                f"variable {variable!r} allows {outside}, which {param.name} does not take; "
                f"its values are {list(param.choices)}"
            )


def apply(
    params: Mapping[str, Parameter], values: Mapping[str, Any], init_kwargs: Mapping[str, Any], settings_lm: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor kwargs, compile kwargs) with each mapped value in place; derived names copy the LM they set."""
    init = dict(init_kwargs)
    compile_kwargs: dict[str, Any] = {}
    lm_settings: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        param = params[name]
        if param.stage == "init":
            init[name] = value
        elif param.stage == "compile":
            compile_kwargs[name] = value
        else:
            assert param.role is not None and param.lm_kwarg is not None
            lm_settings.setdefault(param.role, {})[param.lm_kwarg] = value
    for role, settings in lm_settings.items():
        holder = init.get(role)
        if role == "teacher_settings":
            teacher = dict(holder or {})
            teacher["lm"] = _copied(teacher.get("lm") or settings_lm, settings, role)
            init[role] = teacher
        else:
            init[role] = _copied(holder or settings_lm, settings, role)
    return init, compile_kwargs


def _copied(lm: Any, settings: dict[str, Any], role: str) -> Any:
    if lm is None:
        names = ", ".join(f"{_LM_ROLES[role]}_{k}" for k in settings)
        given = "teacher_settings={'lm': ...}" if role == "teacher_settings" else f"{role}=..."
        raise ValueError(
            f"{names} sets an LM, and there is none: configure one (dspy.configure(lm=...)) or pass {given}"
        )
    return lm.copy(**settings)
