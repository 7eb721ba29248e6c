"""VariableAwareOptimizer: a DSPy teleprompter whose parameters live in session variables.

`compile` is an optimization run of the mapped variables (`session.start_optimization`
with this teleprompter's `dspy_<name>` optimizer), so a compile takes the variables'
leases, streams every trial into their history and status, and ends with the variables
on the best trial's values, exactly like any run. Each trial reads its parameter values
from the candidate the run wrote into the variables, builds and compiles the teleprompter
in a worker thread (the event loop keeps serving watchers and heartbeats), and scores it.
One trial at the current values is a plain compile; more trials search.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dspy

from bridge import SessionContext
from bridge.optimization import TrialContext, current_trial

from ._inner import InnerEvaluation
from ._parameters import Parameter
from ._search import DEFAULT_SAMPLER, optimizer_name
from ._trial import TrialResult, TrialSpec, run_trial

#: Trials of a search when `search=` is given without `n_trials`.
DEFAULT_TRIALS = 10
_NUMERIC = ("float", "integer")


class VariableAwareOptimizer:
    """Compiles DSPy programs with a teleprompter whose mapped parameters are read from (and written to) variables.

    Made by `DSPyOptimizationBridge.create_variable_aware_optimizer`. After a compile,
    `trials` holds each trial's values, score, metrics and program, and `best` the best one.
    """

    def __init__(
        self,
        session: SessionContext,
        teleprompter: type,
        params: Mapping[str, Parameter],
        variables: Mapping[str, str],
        init_kwargs: Mapping[str, Any],
        metric: Callable[..., Any] | None,
        infos: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.session = session
        self.teleprompter = teleprompter
        self.params = dict(params)
        #: teleprompter parameter -> variable name (IDs given in the mapping are resolved to names).
        self.variable_mappings = dict(variables)
        self.variables = list(dict.fromkeys(variables.values()))
        self.init_kwargs = dict(init_kwargs)
        self.metric = metric
        #: variable name -> its type and constraints, read at creation (fixed for a variable's lifetime).
        self._infos = {info["name"]: info for info in infos.values()}
        self.optimizer_type = optimizer_name(teleprompter.__name__)
        self.trials: list[TrialResult] = []
        self.best: TrialResult | None = None
        self.last_status: dict[str, Any] | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        return f"VariableAwareOptimizer({self.teleprompter.__name__}, {self.variable_mappings})"

    # ------------------------------------------------------------ the objective

    def objective(
        self,
        student: dspy.Module,
        *,
        trainset: Sequence[dspy.Example],
        valset: Sequence[dspy.Example] | None = None,
        teacher: dspy.Module | None = None,
        num_threads: int | None = None,
        on_evaluation: Callable[[InnerEvaluation], Any] | None = None,
        observe: bool | None = None,
        **compile_kwargs: Any,
    ) -> Callable[[Any], Any]:
        """The run objective: compile with the candidate's values, score; returns (score, metrics).

        Give it to `session.start_optimization(optimizer.variables, <any optimizer>, objective=...)`
        to drive compiles with any optimizer (see `register_objective`). `on_evaluation` is called
        on the event loop for each evaluation the teleprompter runs itself, as it ends. `observe`
        watches the compile through DSPy's callbacks (evaluations, LM calls, nested compiles);
        None: unless the teleprompter evaluates nothing itself (BootstrapFewShot, LabeledFewShot).
        """
        _check_data(student, trainset, valset)
        spec = TrialSpec(
            teleprompter=self.teleprompter,
            params=self.params,
            init_kwargs=self.init_kwargs,
            metric=self.metric,
            student=student,
            trainset=list(trainset),
            valset=None if valset is None else list(valset),
            teacher=teacher,
            compile_kwargs=compile_kwargs,
            num_threads=num_threads if num_threads is not None else self.init_kwargs.get("num_threads"),
            observe=observe,
        )
        if valset and self.metric is None:
            raise ValueError(f"scoring on a valset needs metric=...; {self.teleprompter.__name__} was given none")

        async def compile_and_score(candidate: Any) -> tuple[float, dict[str, Any]]:
            if not isinstance(candidate, Mapping):  # a run over one variable given by name, not as a list
                candidate = {self.variables[0]: candidate}
            values = {param: candidate[variable] for param, variable in self.variable_mappings.items()}
            relay = _relay(asyncio.get_running_loop(), current_trial(), on_evaluation)
            try:
                result = await asyncio.to_thread(run_trial, spec, values, relay)
            except Exception as exc:
                self._error = exc
                raise
            self.trials.append(result)
            if self.best is None or result.score > self.best.score:
                self.best = result
            return result.score, result.metrics

        return compile_and_score

    async def register_objective(self, student: dspy.Module, **kwargs: Any) -> None:
        """Registers `objective(student, **kwargs)` for the mapped variables, so a plain
        `session.start_optimization(optimizer.variables, optimizer.optimizer_type, ...)` compiles."""
        await self.session.register_objective(self.variables, self.objective(student, **kwargs), metric="score")

    # ------------------------------------------------------------ compile

    async def compile(
        self,
        student: dspy.Module,
        *,
        trainset: Sequence[dspy.Example],
        valset: Sequence[dspy.Example] | None = None,
        teacher: dspy.Module | None = None,
        search: Mapping[str, Sequence[float]] | None = None,
        n_trials: int | None = None,
        sampler: str = DEFAULT_SAMPLER,
        sampler_config: Mapping[str, Any] | None = None,
        seed: int | None = None,
        progress: bool = False,
        callback: Callable[[int, Any, dict[str, Any]], Any] | None = None,
        on_evaluation: Callable[[InnerEvaluation], Any] | None = None,
        observe: bool | None = None,
        num_threads: int | None = None,
        lease_ttl: float | None = None,
        **compile_kwargs: Any,
    ) -> dspy.Module:
        """Compiles `student` and returns the (best) compiled program.

        Without `search`/`n_trials`: one trial with the variables' current values. With them: a
        search of `n_trials` (default 10), the first at the current values, then `sampler`'s
        proposals within `search` ({parameter: (low, high)}) or the variables' constraints; each
        trial is scored on `valset` with the metric, and the variables end on the best values.
        `compile_kwargs` go to the teleprompter's compile.
        """
        trials = (DEFAULT_TRIALS if search else 1) if n_trials is None else n_trials
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
        if trials > 1 and not valset:
            raise ValueError(f"a search of {trials} trials compares them on a valset: pass valset=[...]")
        objective = self.objective(
            student,
            trainset=trainset,
            valset=valset,
            teacher=teacher,
            num_threads=num_threads,
            on_evaluation=on_evaluation,
            observe=observe,
            **compile_kwargs,
        )
        # One trial is a plain compile: no sampler (its config is checked all the same when one is given).
        config: dict[str, Any] = {"sampler": sampler if trials > 1 or sampler_config else None}
        if sampler_config:
            config["sampler_config"] = dict(sampler_config)
        bounds = await self._bounds(search, trials)
        if bounds:
            config["bounds"] = bounds
        self.trials, self.best, self._error = [], None, None
        await self.session.start_optimization(
            self.variables,
            self.optimizer_type,
            config,
            max_iterations=trials,
            convergence_threshold=0.0,
            callback=callback,
            objective=objective,
            metric="score",
            seed=seed,
            lease_ttl=lease_ttl,
            progress=progress,
        )
        try:
            self.last_status = await self.session.wait_optimization(self.variables[0])
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.session.stop_optimization(self.variables[0]))
            raise
        if self.best is None:
            if self._error is not None:
                raise self._error
            raise RuntimeError(f"the compile ended {self.last_status['state']}: {self.last_status['error']}")
        return self.best.program

    @property
    def best_values(self) -> dict[str, Any] | None:
        """The best trial's parameter values (teleprompter parameter -> value)."""
        return None if self.best is None else dict(self.best.values)

    async def _bounds(self, search: Mapping[str, Sequence[float]] | None, trials: int) -> dict[str, list[float]]:
        """The run's `bounds`: the searched ranges, and for a one-trial compile the current value of any
        numeric variable without min/max (so that every mapped variable is part of the run)."""
        bounds: dict[str, list[float]] = {}
        for param, given in (search or {}).items():
            bounds_of = self._searched(param, given)
            variable = self.variable_mappings[param]
            if variable in bounds and bounds[variable] != bounds_of:
                raise ValueError(f"search gives variable {variable!r} two ranges: {bounds[variable]} and {bounds_of}")
            bounds[variable] = bounds_of
        unbounded = {}
        for param, variable in self.variable_mappings.items():
            info = self._infos[variable]
            if info["type"] in _NUMERIC and variable not in bounds and not _bounded(info.get("constraints") or {}):
                unbounded[variable] = param
        if unbounded and trials > 1:
            variable, param = next(iter(unbounded.items()))
            raise ValueError(
                f"{param} -> {variable!r} has no range to search: pass search={{{param!r}: (low, high)}} "
                f"or register {variable!r} with constraints={{'min': ..., 'max': ...}}"
            )
        # A one-trial compile runs at the current values: pin each unbounded variable's range to its value,
        # and refuse None (a nullable variable), which no teleprompter parameter takes.
        nullable = [v for v in self.variables if (self._infos[v].get("constraints") or {}).get("nullable")]
        read = [v for v in self.variables if v in unbounded or v in nullable] if trials == 1 else []
        if read:
            for variable, value in (await self.session.get_variables(read)).items():
                if value is None:
                    raise ValueError(f"variable {variable!r} holds None; set it to a value to compile with it")
                if variable in unbounded:
                    bounds[variable] = [value, value]
        return bounds

    def _searched(self, param: str, given: Any) -> list[float]:
        if param not in self.params:
            raise ValueError(
                f"search names {param!r}, which is not mapped to a variable; mapped: {sorted(self.variable_mappings)}"
            )
        if self.params[param].kind not in _NUMERIC:
            raise ValueError(
                f"search ranges are for numbers; {param} is a {self.params[param].kind}, "
                "searched over its variable's choices"
            )
        try:
            low, high = (float(x) for x in given)
        except (TypeError, ValueError):
            raise ValueError(f"search[{param!r}] must be a (low, high) pair of numbers, got {given!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"search[{param!r}] = {given!r} is not a finite range with low <= high")
        return [low, high]


def _relay(
    loop: asyncio.AbstractEventLoop,
    trial: TrialContext | None,
    on_evaluation: Callable[[InnerEvaluation], Any] | None,
) -> Callable[[InnerEvaluation], None] | None:
    """What DSPy's threads call for each inner evaluation: it becomes its own entry in the run's
    history (when a run is evaluating), and `on_evaluation` runs on the event loop."""
    if trial is None and on_evaluation is None:
        return None

    def relay(evaluation: InnerEvaluation) -> None:
        if trial is not None:
            metrics: dict[str, Any] = {
                "description": evaluation.program,
                "examples": evaluation.examples,
                "seconds": evaluation.seconds,
            }
            if evaluation.error:
                metrics["error"] = evaluation.error
            trial.record_evaluation(evaluation.score, metrics)
        if on_evaluation is not None:
            loop.call_soon_threadsafe(on_evaluation, evaluation)

    return relay


def _bounded(constraints: Mapping[str, Any]) -> bool:
    low, high = constraints.get("min"), constraints.get("max")
    return low is not None and high is not None and math.isfinite(low) and math.isfinite(high)


def _check_data(student: Any, trainset: Any, valset: Any) -> None:
    if not isinstance(student, dspy.Module):
        raise TypeError(f"student must be a dspy.Module, got {type(student).__name__}")
    for name, data in (("trainset", trainset), ("valset", valset)):
        if data is None and name == "valset":
            continue
        if isinstance(data, (str, bytes)) or not isinstance(data, Sequence) or not data:
            raise ValueError(f"{name} must be a non-empty list of dspy.Example, got {type(data).__name__}")
