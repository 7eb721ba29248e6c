"""SessionContext's optimization methods: start/stop/status/history/wait, objectives, custom optimizers.

The loop runs in this client (`bridge.optimization._run`); leases, status and history are
the server's, so every client of the session sees the same run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._proto import bridge_pb2 as pb
from ..codec import decode_map, map_into
from ..errors import ValidationError
from ..limits import check_name, is_id
from ..optimization._objective import ObjectiveSpec
from ..optimization._protocol import DIRECTIONS
from ..optimization._registry import check_optimizer_class, resolve_optimizer
from ..optimization._run import DEFAULT_PATIENCE, RUN_CONFIG_KEYS, RunLoop, RunSettings
from ..optimization._space import Trial, search_space
from ._cache import VariableCache
from ._convert import to_datetime

log = logging.getLogger("dspex.optimization")

_STATUS_KEYS = (
    "is_optimizing",
    "optimization_id",
    "iteration",
    "best_value",
    "best_metrics",
    "started_at",
    "last_update",
    "state",
    "optimizer_type",
    "best_score",
    "best_candidate",
    "best_iteration",
    "variables",
    "max_iterations",
    "direction",
    "metric",
    "config",
    "seed",
    "error",
    "stop_requested",
    "elapsed_seconds",
    "lease_expires_at",
    "initial_values",
    "runner_session_id",
)
#: How long close() lets this client's runs finish their iteration before cancelling them.
CLOSE_GRACE_SECONDS = 10.0
#: The longest one WaitOptimization call waits on the server; wait_optimization loops for longer.
WAIT_SLICE_SECONDS = 60.0


@dataclass(slots=True)
class _LocalRun:
    """A run whose loop is a task of this client."""

    optimization_id: str
    names: tuple[str, ...]
    ids: tuple[str, ...]
    loop: RunLoop
    task: asyncio.Task[None]


class _Calls:
    """The RunCalls of one run, over this session's channel.

    The run's writes are this client's too: each drops what the cache holds of the variables
    written, so this client reads the candidates (and the best values) it wrote.
    """

    def __init__(self, session: OptimizationMethods, optimization_id: str, names: Sequence[str]) -> None:
        self.session = session
        self.optimization_id = optimization_id
        self.names = tuple(names)
        stub = session._stub
        self._write, self._report, self._renew, self._finish, self._record = (
            stub.WriteCandidate,
            stub.ReportTrial,
            stub.RenewOptimization,
            stub.FinishOptimization,
            stub.RecordEvaluation,
        )

    async def write_candidate(self, iteration: int, candidate: dict[str, Any]) -> bool:
        request = pb.WriteCandidateRequest(optimization_id=self.optimization_id, iteration=iteration)
        map_into(request.candidate, candidate)
        try:
            return (await self.session._call(self._write, request, "write_candidate")).stop_requested
        finally:
            self._written()

    async def report(
        self,
        iteration: int,
        score: float | None,
        metrics: dict[str, Any],
        error: str,
        next_candidate: dict[str, Any] | None,
    ) -> bool:
        request = pb.ReportTrialRequest(optimization_id=self.optimization_id, iteration=iteration, error=error)
        if score is not None:
            request.score = score
        map_into(request.metrics, metrics)
        map_into(request.next_candidate, next_candidate)
        try:
            return (await self.session._call(self._report, request, "report_trial")).stop_requested
        finally:
            if next_candidate:
                self._written()

    async def record_evaluation(
        self, iteration: int, evaluation: int, score: float | None, metrics: dict[str, Any]
    ) -> None:
        request = pb.RecordEvaluationRequest(
            optimization_id=self.optimization_id, iteration=iteration, evaluation=evaluation
        )
        if score is not None:
            request.score = score
        map_into(request.metrics, metrics)
        await self.session._call(self._record, request, "record_evaluation")

    async def renew(self) -> bool:
        request = pb.RenewOptimizationRequest(optimization_id=self.optimization_id)
        return (await self.session._call(self._renew, request, "renew_optimization")).stop_requested

    async def finish(self, state: str, error: str) -> None:
        request = pb.FinishOptimizationRequest(optimization_id=self.optimization_id, state=state, error=error)
        try:
            await self.session._call(self._finish, request, "finish_optimization")
        finally:
            self._written()

    def _written(self) -> None:
        for name in self.names:
            self.session._cache.written(name)


def _refs(variable: str | Sequence[str]) -> list[str]:
    refs = [variable] if isinstance(variable, str) else list(variable)
    if not refs or not all(isinstance(r, str) for r in refs):
        raise ValidationError(f"variable must be a name or ID, or a non-empty list of them; got {variable!r}")
    return refs


class OptimizationMethods:
    """Mixed into SessionContext; relies on its `_call`, `_stub`, `_cache` and `get_variables`."""

    _stub: Any
    _cache: VariableCache
    _call: Callable[..., Any]
    get_variables: Callable[..., Any]
    timeout: float | None

    def _init_optimization(self) -> None:
        self._optimizers: dict[str, type] = {}
        self._objectives: dict[tuple[str, ...], ObjectiveSpec] = {}
        self._local_runs: dict[str, _LocalRun] = {}  # variable name, variable ID and optimization ID -> run

    # ------------------------------------------------------------ registration

    async def register_python_optimizer(self, name: str, optimizer_class: type) -> None:
        """Makes a class implementing BaseOptimizer's protocol usable by `name` in this session's runs."""
        self._optimizers[check_name(name, "optimizer name")] = check_optimizer_class(name, optimizer_class)

    async def register_objective(
        self,
        variable: str | Sequence[str],
        fn: Callable[[Any], Any],
        *,
        direction: str = "maximize",
        metric: str | None = None,
    ) -> None:
        """The objective start_optimization uses for these variables when it is given none.

        `fn(candidate)` gets the value (or a dict name -> value for a list of variables) and
        returns a number, a (score, metrics) tuple, or a metrics dict (`metric` names the score).
        """
        spec = ObjectiveSpec(fn, direction, metric)
        infos = await self._infos(_refs(variable))
        self._objectives[tuple(info["id"] for info in infos)] = spec

    async def _infos(self, refs: list[str]) -> list[dict[str, Any]]:
        found = await self.get_variables(refs, include_metadata=True)
        return [found[ref] for ref in refs]

    # ------------------------------------------------------------ runs

    async def start_optimization(
        self,
        variable: str | Sequence[str],
        optimizer_type: str,
        optimizer_config: Mapping[str, Any] | None = None,
        max_iterations: int = 100,
        convergence_threshold: float = 0.001,
        callback: Callable[[int, Any, dict[str, Any]], Any] | None = None,
        *,
        objective: Callable[[Any], Any] | None = None,
        direction: str | None = None,
        metric: str | None = None,
        seed: int | None = None,
        lease_ttl: float | None = None,
        resume: bool | str = False,
        progress: bool = False,
    ) -> str:
        """Starts a run and returns its optimization ID at once; the loop runs as a task of this client.

        Everything is checked before the server is asked for leases, so a refused start
        changes nothing. See docs/optimization.md for each argument.
        """
        refs = _refs(variable)
        joint = not isinstance(variable, str)
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations <= 0:
            raise ValidationError(f"max_iterations must be a positive int, got {max_iterations!r}")
        if direction is not None and direction not in DIRECTIONS:
            raise ValidationError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
        infos = await self._infos(refs)
        ids = tuple(info["id"] for info in infos)
        label = ", ".join(info["name"] for info in infos)
        registered = self._objectives.get(ids)
        if objective is not None:
            spec: ObjectiveSpec | None = ObjectiveSpec(objective, direction or "maximize", metric)
        elif registered is not None:  # explicit direction/metric override the registered ones
            spec = ObjectiveSpec(registered.fn, direction or registered.direction, metric or registered.metric)
        else:
            spec = None
        if spec is None:
            raise ValidationError(
                f"no objective for {label}: pass objective=fn to start_optimization, or "
                f"`await session.register_objective({refs[0] if not joint else refs!r}, fn)` first "
                "(fn takes the candidate value and returns a score)",
                rule="objective",
            )
        cls = resolve_optimizer(optimizer_type, self._optimizers)
        config = dict(optimizer_config or {})
        run_config = {key: config.pop(key) for key in list(config) if key in RUN_CONFIG_KEYS}
        unknown = sorted(set(config) - set(cls.config_keys))
        if unknown:
            accepted = sorted({*cls.config_keys, *RUN_CONFIG_KEYS})
            raise ValidationError(
                f"unknown optimizer_config keys {unknown} for {optimizer_type!r}; accepted: {accepted}",
                rule="optimizer_config",
            )
        patience = run_config.get("patience", DEFAULT_PATIENCE)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValidationError(f"optimizer_config['patience'] must be a positive int, got {patience!r}")
        resume_id, trials, initial = await self._resumable(refs[0], resume)
        for info in infos:  # a resumed run replays its trials from where it first started
            info["value"] = initial.get(info["name"], info["value"])
        space = search_space(infos, run_config.get("bounds"))
        optimizer = await asyncio.to_thread(
            cls, space, config, seed=seed, direction=spec.direction, trials=trials
        )  # construction may import a library or fit a model: off the event loop
        request = pb.StartOptimizationRequest(
            refs=list(ids),
            optimizer_type=optimizer_type,
            max_iterations=max_iterations,
            convergence_threshold=convergence_threshold,
            direction=spec.direction,
            metric=spec.metric or "",
            seed=seed or 0,
            has_seed=seed is not None,
            lease_ttl_seconds=lease_ttl or 0.0,
            resume_optimization_id=resume_id,
        )
        map_into(request.config, optimizer_config or {})
        started = await self._call(self._stub.StartOptimization, request, "start_optimization", label)
        settings = RunSettings(
            max_iterations=max_iterations,
            convergence_threshold=convergence_threshold,
            patience=patience,
            callback=callback,
            progress=progress,
            description=f"{optimizer_type}: {label}",
            heartbeat_seconds=started.lease_ttl_seconds / 3,
        )
        loop = RunLoop(
            _Calls(self, started.optimization_id, started.variable_names),
            space,
            optimizer,
            spec,
            settings,
            joint=joint,
            optimizer_type=optimizer_type,
            trials=trials,
        )
        task = asyncio.create_task(loop.run(), name=f"optimization {started.optimization_id}")
        run = _LocalRun(started.optimization_id, tuple(started.variable_names), ids, loop, task)
        for key in (*run.names, *run.ids, run.optimization_id):
            self._local_runs[key] = run
        task.add_done_callback(lambda _: self._forget_run(run))
        return started.optimization_id

    def _forget_run(self, run: _LocalRun) -> None:
        for key in (*run.names, *run.ids, run.optimization_id):
            if self._local_runs.get(key) is run:
                del self._local_runs[key]

    async def _resumable(self, ref: str, resume: bool | str) -> tuple[str, list[Trial], dict[str, Any]]:
        """The run to resume (this variable's latest, or the one named), its trials so far, and the
        values it started from (its optimizer replays the trials from there)."""
        if resume is False:
            return "", [], {}
        status = await self.get_optimization_status(ref)
        if resume is True:
            if status["optimization_id"] is None:
                raise ValidationError(f"{ref!r} has no earlier run to resume", rule="resume")
            resume = status["optimization_id"]
        initial = status["initial_values"] if status["optimization_id"] == resume else {}
        entries = await self.get_optimization_history(ref, limit=1_000_000, optimizer_id=resume)
        trials = [Trial(e["iteration"], e["candidate"], e["score"], e["metrics"]) for e in entries]
        return resume, trials, initial or {}

    async def stop_optimization(self, variable: str) -> None:
        """Ends the run optimizing `variable` within one iteration, whichever client runs it."""
        await self._call(
            self._stub.StopOptimization, pb.StopOptimizationRequest(ref=variable), "stop_optimization", variable
        )
        local = self._local_runs.get(variable)
        if local is not None:
            local.loop.request_stop()

    async def get_optimization_status(self, variable: str) -> dict[str, Any]:
        """The variable's latest run as every client sees it (keys None before any run)."""
        request = pb.GetOptimizationStatusRequest(ref=variable)
        status = await self._call(self._stub.GetOptimizationStatus, request, "get_optimization_status", variable)
        return _status(status, variable)

    async def wait_optimization(self, variable: str, timeout: float | None = None) -> dict[str, Any]:
        """Waits until the variable's run ends and returns its final status; TimeoutError after `timeout` s."""
        local = self._local_runs.get(variable)
        if local is not None:
            await asyncio.wait_for(asyncio.shield(local.task), timeout)
            return await self.get_optimization_status(variable)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = 0.0 if deadline is None else deadline - loop.time()
            if deadline is not None and remaining <= 0:
                raise TimeoutError(f"the optimization of {variable!r} is still running after {timeout}s")
            # Each call waits on the server at most this long, and within this client's call deadline.
            wait = min(remaining or WAIT_SLICE_SECONDS, WAIT_SLICE_SECONDS)
            if self.timeout is not None:
                wait = min(wait, self.timeout * 0.8)
            request = pb.WaitOptimizationRequest(ref=variable, timeout_seconds=wait)
            status = _status(
                await self._call(self._stub.WaitOptimization, request, "wait_optimization", variable), variable
            )
            if not status["is_optimizing"]:
                return status

    async def get_optimization_history(
        self,
        variable: str,
        limit: int = 100,
        since: datetime | None = None,
        optimizer_id: str | None = None,
        include_evaluations: bool = False,
    ) -> list[dict[str, Any]]:
        """The variable's iterations over its runs, oldest first (the most recent `limit`).

        `include_evaluations` adds the evaluations objectives recorded inside iterations
        (`record_evaluation`: a teleprompter's candidates, say), each before its iteration's
        entry, with `kind` 'evaluation' (iterations: 'trial') and its `evaluation` number.
        """
        request = pb.GetOptimizationHistoryRequest(
            ref=variable, limit=limit, optimization_id=optimizer_id or "", include_evaluations=include_evaluations
        )
        if since is not None:
            request.since.FromDatetime(since)  # exact to the microsecond (a float would not be)
        response = await self._call(self._stub.GetOptimizationHistory, request, "get_optimization_history", variable)
        name = variable
        if is_id(variable):
            [info] = await self._infos([variable])
            name = info["name"]
        history = []
        for entry in response.entries:
            candidate = decode_map(entry.candidate)
            history.append(
                {
                    "iteration": entry.iteration,
                    "value": candidate.get(name),
                    "score": entry.score if entry.HasField("score") else None,
                    "metrics": decode_map(entry.metrics),
                    "timestamp": to_datetime(entry.timestamp),
                    "optimization_id": entry.optimization_id,
                    "state": entry.state,
                    "candidate": candidate,
                    "error": entry.error or None,
                    "kind": entry.kind or "trial",
                    "evaluation": entry.evaluation or None,
                }
            )
        return history

    async def _stop_local_runs(self, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Lets this client's runs end their iteration (state stopped), cancelling any still going after `grace`."""
        runs = {id(r): r for r in self._local_runs.values()}.values()
        if not runs:
            return
        for run in runs:
            run.loop.request_stop()
        tasks = [run.task for run in runs]
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _status(status: pb.OptimizationStatus, ref: str) -> dict[str, Any]:
    if not status.exists:
        return {key: (False if key == "is_optimizing" else None) for key in _STATUS_KEYS}
    names = list(status.variable_names)
    index = (
        names.index(ref) if ref in names else list(status.variable_ids).index(ref) if ref in status.variable_ids else 0
    )
    best = decode_map(status.best_candidate) or None
    return {
        "is_optimizing": status.is_optimizing,
        "optimization_id": status.optimization_id,
        "iteration": status.iteration,
        "best_value": best[names[index]] if best else None,
        "best_metrics": decode_map(status.best_metrics),
        "started_at": to_datetime(status.started_at),
        "last_update": to_datetime(status.last_update),
        "state": status.state,
        "optimizer_type": status.optimizer_type,
        "best_score": status.best_score if status.HasField("best_score") else None,
        "best_candidate": best,
        "best_iteration": status.best_iteration or None,
        "variables": names,
        "max_iterations": status.max_iterations,
        "direction": status.direction,
        "metric": status.metric or None,
        "config": decode_map(status.config),
        "seed": status.seed if status.has_seed else None,
        "error": status.error or None,
        "stop_requested": status.stop_requested,
        "elapsed_seconds": status.elapsed_seconds,
        "lease_expires_at": to_datetime(status.lease_expires_at),
        "initial_values": decode_map(status.initial_values),
        "runner_session_id": status.runner_session_id,
    }
