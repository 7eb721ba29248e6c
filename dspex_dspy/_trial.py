"""One trial: build the teleprompter with the values of its variables, compile, score. Runs in a worker thread.

The teleprompter is constructed and compiled exactly as bare DSPy would be with those
arguments; the only addition is a callback (through `dspy.context`) that watches its own
evaluations. It is left out for teleprompters that evaluate nothing themselves
(BootstrapFewShot, LabeledFewShot), because any callback makes DSPy record the arguments
and a call ID of every module, adapter and LM call: some 20% of a compile on a DummyLM.

Scoring: `dspy.Evaluate` on the valset with the user's metric when there is one;
otherwise the best score the teleprompter's own evaluations reached; otherwise (a compile
that evaluates nothing, e.g. BootstrapFewShot without a valset) the number of demos the
compiled program holds, so the history still says what the run produced.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.teleprompt import BootstrapFewShot, LabeledFewShot

from ._inner import InnerEvaluation, InnerEvaluations
from ._parameters import Parameter, apply

#: Teleprompters that run no evaluation of their own (exactly these classes; a subclass might).
_EVALUATES_NOTHING = (BootstrapFewShot, LabeledFewShot)


@dataclass(frozen=True, slots=True)
class TrialSpec:
    """What every trial of one compile shares."""

    teleprompter: type
    params: Mapping[str, Parameter]
    init_kwargs: Mapping[str, Any]
    metric: Callable[..., Any] | None
    student: Any
    trainset: Sequence[Any]
    valset: Sequence[Any] | None
    teacher: Any = None
    compile_kwargs: Mapping[str, Any] = field(default_factory=dict)
    num_threads: int | None = None
    #: Watch the teleprompter's own evaluations (None: unless it is one that runs none).
    observe: bool | None = None

    @property
    def observed(self) -> bool:
        return self.observe if self.observe is not None else self.teleprompter not in _EVALUATES_NOTHING


@dataclass(slots=True)
class TrialResult:
    """A finished trial: the parameter values it used, its score and metrics, the compiled program, and the
    teleprompter that compiled it (e.g. RandomSearch's `candidate_programs`, GEPA's `detailed_results`)."""

    values: dict[str, Any]
    score: float
    metrics: dict[str, Any]
    program: Any
    evaluations: list[InnerEvaluation]
    teleprompter: Any


def demos_kept(program: Any) -> int:
    return sum(len(p.demos) for _, p in program.named_predictors())


def run_trial(
    spec: TrialSpec, values: Mapping[str, Any], on_evaluation: Callable[[InnerEvaluation], Any] | None = None
) -> TrialResult:
    init_kwargs, mapped_compile = apply(spec.params, values, spec.init_kwargs, dspy.settings.lm)
    teleprompter = spec.teleprompter(**init_kwargs)
    compile_kwargs = {**spec.compile_kwargs, **mapped_compile}
    if spec.teacher is not None:
        compile_kwargs["teacher"] = spec.teacher
    if spec.valset is not None and _takes(spec.teleprompter.compile, "valset"):
        compile_kwargs["valset"] = list(spec.valset)
    inner = InnerEvaluations(on_evaluation)
    started = time.perf_counter()
    if spec.observed:
        with dspy.context(callbacks=[*dspy.settings.get("callbacks", []), inner]):
            program = teleprompter.compile(spec.student, trainset=list(spec.trainset), **compile_kwargs)
    else:
        program = teleprompter.compile(spec.student, trainset=list(spec.trainset), **compile_kwargs)
    compile_seconds = time.perf_counter() - started
    metrics: dict[str, Any] = {"demos": demos_kept(program), "compile_seconds": compile_seconds}
    metrics.update(inner.metrics() if spec.observed else inner.evaluation_metrics())
    if spec.valset:
        started = time.perf_counter()
        evaluate = dspy.Evaluate(devset=list(spec.valset), metric=spec.metric, num_threads=spec.num_threads)
        score, source = float(evaluate(program).score), "valset"
        metrics["evaluate_seconds"] = time.perf_counter() - started
    elif inner.best is not None:
        score, source = inner.best, "teleprompter"
    else:
        score, source = float(metrics["demos"]), "demos"
    metrics.update(score=score, score_source=source)
    return TrialResult(dict(values), score, metrics, program, list(inner.evaluations), teleprompter)


def _takes(fn: Callable[..., Any], name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
