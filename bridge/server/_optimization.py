"""The optimization half of BridgeService: leases, status and per-iteration history of runs.

The objective runs in the client; the host is the coordinator every client of a session
agrees on. A run holds a lease on each of its variables while its client keeps calling;
when the client dies the lease lapses, the run ends as "expired" (its best candidate
written back) and the variables are free again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from .._proto import bridge_pb2 as pb
from ..codec import decode, encode, map_into
from ..errors import (
    AccessDeniedError,
    BridgeError,
    LimitExceededError,
    PreconditionFailedError,
    ValidationError,
    VariableNotFoundError,
)
from ..limits import check_count, check_name, check_ref
from ..optimization._protocol import DIRECTIONS
from ..optimization._space import SEARCHABLE
from ..store import FINISH_STATES, RUNNING, OptimizationRecord, Transaction, TrialRecord, VariableRecord
from ._access import allowed
from ._convert import timestamp
from ._ids import new_id
from ._servicer import VariableServicer
from ._sessions import Ctx
from ._values import decode_metadata

log = logging.getLogger("dspex.server")

#: Longest a WaitOptimization call blocks; clients loop for longer waits.
MAX_WAIT_SECONDS = 300.0
#: How often a parked WaitOptimization reads the run again on a store other servers write too (Redis):
#: a change made through another server does not set this server's events.
SHARED_STORE_RECHECK_SECONDS = 0.5


class OptimizationServicer(VariableServicer):
    """StartOptimization ... WaitOptimization (see bridge.proto)."""

    def __init__(self, *args: Any, lease_ttl: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lease_ttl = lease_ttl
        #: Per run, set (and dropped) when it changes, so WaitOptimization wakes without polling.
        self._run_events: dict[str, asyncio.Event] = {}
        #: WaitOptimization calls parked per session (bounded: each holds a call open).
        self._waits: dict[str, int] = {}

    # ------------------------------------------------------------ shared steps

    def _notify(self, run_id: str) -> None:
        event = self._run_events.pop(run_id, None)
        if event is not None:
            event.set()

    async def _change(
        self, run_id: str, change: Callable[[OptimizationRecord], OptimizationRecord], notify: bool = True
    ) -> OptimizationRecord:
        """Applies `change` to the latest stored run (atomically, see Store.update_optimization)."""
        updated = await self.store.update_optimization(run_id, change)
        if updated is None:
            raise PreconditionFailedError(f"optimization {run_id} is gone (its variables were deleted)")
        if notify:
            self._notify(run_id)
        return updated

    async def _current_run(self, variable: VariableRecord) -> OptimizationRecord | None:
        """The variable's latest run, ended as expired first if its lease lapsed."""
        runs = await self.store.variable_optimizations(variable.id)
        if not runs:
            return None
        return await self._expire_if_lapsed(runs[-1])

    async def _expire_if_lapsed(self, run: OptimizationRecord) -> OptimizationRecord:
        if run.state == RUNNING and self.clock() > run.lease_expires_at:
            log.info("optimization lease expired", extra={"optimization": run.id, "session": run.session_id})
            # It ended when its client last renewed, not when someone noticed.
            return await self._finish(
                run.id, "expired", "the optimizing client stopped renewing its lease", lapsed=True
            )
        return run

    async def expire_optimizations(self) -> list[str]:
        """Ends runs whose leases lapsed; run periodically by the server (reads do it lazily too)."""
        expired = []
        for run in await self.store.live_optimizations():
            if (await self._expire_if_lapsed(run)).state == "expired":
                expired.append(run.id)
        return expired

    async def _own_run(self, session_id: str, optimization_id: str) -> OptimizationRecord:
        """A running run this session drives, for the calls only its optimizing client makes."""
        run = await self.store.get_optimization(optimization_id)
        if run is None or run.runner != session_id:
            raise PreconditionFailedError(
                f"no optimization {optimization_id[:64]!r} in session {session_id!r}", rule="optimization_id"
            )
        run = await self._expire_if_lapsed(run)
        if run.state != RUNNING:
            raise PreconditionFailedError(
                f"optimization {run.id} is no longer running (state {run.state!r}"
                + (f": {run.error}" if run.error else "")
                + ")",
                rule="optimization_state",
            )
        return run

    def _renewal(self, **changes: Any) -> Callable[[OptimizationRecord], OptimizationRecord]:
        """A change that renews a still-running run's lease (and applies `changes`); refused once it ended."""
        now = self.clock()

        def renew(run: OptimizationRecord) -> OptimizationRecord:
            if run.state != RUNNING:
                raise PreconditionFailedError(f"optimization {run.id} ended meanwhile (state {run.state!r})")
            return run._replace(last_update=now, lease_expires_at=now + run.lease_ttl, **changes)

        return renew

    def _ack(self, run: OptimizationRecord, revision: int = 0) -> pb.OptimizationAck:
        return pb.OptimizationAck(
            stop_requested=run.stop_requested, revision=revision, lease_expires_at=timestamp(run.lease_expires_at)
        )

    async def _write_values(
        self, run: OptimizationRecord, values: dict[str, pb.Value], metadata: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """Writes name -> wire value into the run's variables as one atomic write by the run.

        Returns the values as stored (after coercion), as plain data, and the revision.
        """
        ids = dict(zip(run.variable_names, run.variable_ids, strict=True))
        runner = run.runner
        session = await self.store.get_session(runner) if runner != run.session_id else None
        runner_metadata = dict(session.metadata) if session is not None else None

        async def body(txn: Transaction) -> dict[str, Any]:
            stored: dict[str, Any] = {}
            for name, value in values.items():
                record = await txn.get(ids[name])
                if record is None:
                    raise VariableNotFoundError(f"variable {name!r} of {run.id} was deleted", variable=name)
                if record.access_rules and not allowed(record, runner, "optimize", runner_metadata):
                    raise AccessDeniedError(  # revoked, or expired, since the run started
                        f"session {runner!r} may no longer optimize variable {name!r}; {run.id} cannot write to it",
                        variable=name,
                        rule="optimize",
                    )
                updated = self._writer(value, run.id, metadata)(record, txn.revision, txn.now)
                txn.put(updated)
                stored[name] = decode(updated.value.to_pb())
            return stored

        return await self.store.transact(run.session_id, body)

    async def _finish(self, run_id: str, state: str, error: str = "", lapsed: bool = False) -> OptimizationRecord:
        """Ends a run: its leases go, its time is counted, and its variables get the best candidate
        (or, if nothing scored, the values it started from). The state changes first, atomically,
        so of two callers (an expiry and a finish, say) only one ends the run and writes."""

        def end(run: OptimizationRecord) -> OptimizationRecord:
            if run.state != RUNNING:
                raise _AlreadyEnded(run)
            at = max(run.last_update, run.segment_start) if lapsed else self.clock()
            return run._replace(state=state, error=error, ended_at=at, last_update=at, lease_expires_at=at)

        try:
            ended = await self._change(run_id, end)
        except _AlreadyEnded as already:
            return already.run
        final = ended.best_candidate if ended.best_candidate is not None else ended.initial_values
        reason = "best" if ended.best_candidate is not None else "restored"
        metadata = {"optimization_id": ended.id, "final": reason, "state": state}
        try:
            await self._write_values(ended, {k: encode(v) for k, v in final.items()}, metadata)
        except BridgeError as exc:  # e.g. a variable deleted meanwhile: the run still ends
            note = f"{error}; " if error else ""
            failure = f"{note}could not write the final values: {exc.message}"
            ended = await self._change(ended.id, lambda r: r._replace(error=failure))
        log.info("optimization ended", extra={"optimization": ended.id, "state": state, "iteration": ended.iteration})
        return ended

    async def _check_readable(self, run: OptimizationRecord | None, session_id: str) -> None:
        """A run's status and history carry the values of all its variables: the caller must read each."""
        if run is None or run.session_id == session_id:
            return
        for vid in run.variable_ids:
            record = await self.store.get_variable_by_id(vid)
            if record is not None and not allowed(
                record, session_id, "read", await self._metadata_for(record, session_id)
            ):
                raise AccessDeniedError(
                    f"session {session_id!r} may not read every variable of run {run.id} "
                    "(its status and history carry all their values)",
                    rule="read",
                )

    async def _variable(self, session_id: str, ref: str, permission: str) -> VariableRecord:
        [record] = await self._variables(session_id, [ref], permission)
        return record

    async def _variables(self, session_id: str, refs: Iterable[str], permission: str) -> list[VariableRecord]:
        records = []
        for ref in refs:
            record = await self._find(session_id, ref, permission)
            if record is None:
                raise self._not_found(ref, session_id)
            records.append(record)
        return records

    # ------------------------------------------------------------ the optimizing client's calls

    async def StartOptimization(
        self, request: pb.StartOptimizationRequest, context: Ctx
    ) -> pb.StartOptimizationResponse:
        session_id = await self._authenticate(request, context)
        refs = list(request.refs)
        if not refs:
            raise ValidationError("start_optimization needs at least one variable", rule="refs")
        check_count(len(refs), self.limits.max_batch_size, "variables in one run", "max_batch_size")
        for ref in refs:
            check_ref(ref, self.limits)
        optimizer_type = check_name(request.optimizer_type, "optimizer_type", self.limits)
        if request.direction not in DIRECTIONS:
            raise ValidationError(f"direction must be one of {list(DIRECTIONS)}, got {request.direction[:40]!r}")
        if not 0 < request.max_iterations <= self.limits.max_optimization_iterations:
            raise ValidationError(
                f"max_iterations must be between 1 and {self.limits.max_optimization_iterations}, "
                f"got {request.max_iterations}",
                rule="max_iterations",
            )
        lease_ttl = request.lease_ttl_seconds or self.lease_ttl
        if not (math.isfinite(lease_ttl) and 0 < lease_ttl <= self.limits.max_lease_ttl):
            raise ValidationError(
                f"lease_ttl_seconds must be in (0, {self.limits.max_lease_ttl}], got {lease_ttl}", rule="lease_ttl"
            )
        if not math.isfinite(request.convergence_threshold):
            raise ValidationError("convergence_threshold must be finite", rule="convergence_threshold")
        if request.metric:
            check_name(request.metric, "metric", self.limits)
        config = decode_metadata(request.config, "optimizer_config", self.limits, "optimizer_config")
        variables = await self._variables(session_id, refs, "optimize")
        owner = variables[0].session_id
        if any(v.session_id != owner for v in variables):
            raise ValidationError("the variables of one run must all belong to one session", rule="refs")
        if len({v.id for v in variables}) != len(variables):
            raise ValidationError(f"{refs} name one variable more than once", rule="refs")
        for v in variables:
            if v.type not in SEARCHABLE:
                raise ValidationError(
                    f"{v.name}: a {v.type!r} variable cannot be optimized; optimizable types: {', '.join(SEARCHABLE)}",
                    variable=v.name,
                    rule="search_space",
                )
        for v in variables:  # runs whose clients died free their variables before the claim below
            await self._current_run(v)
        live = [r for r in await self.store.live_optimizations() if r.runner == session_id and r.live(self.clock())]
        check_count(len(live) + 1, self.limits.max_live_optimizations, "live optimizations", "max_live_optimizations")
        now = self.clock()
        run = await self._resumed(request, session_id, variables, now, lease_ttl)
        if run is None:
            run = OptimizationRecord(
                id=new_id("opt_"),
                session_id=owner,
                optimizer_type=optimizer_type,
                variable_ids=tuple(v.id for v in variables),
                variable_names=tuple(v.name for v in variables),
                config=config,
                max_iterations=request.max_iterations,
                convergence_threshold=request.convergence_threshold,
                direction=request.direction,
                metric=request.metric,
                seed=request.seed if request.has_seed else None,
                state=RUNNING,
                started_at=now,
                last_update=now,
                lease_ttl=lease_ttl,
                lease_expires_at=now + lease_ttl,
                initial_values={v.name: decode(v.value.to_pb()) for v in variables},
                runner_session_id="" if session_id == owner else session_id,
            )
        holder = await self.store.claim_optimization(run, now)
        if holder is not None:
            names = [v.name for v in variables if v.id in holder.variable_ids]
            raise PreconditionFailedError(
                f"variable {names[0]!r} is already being optimized (optimization {holder.id}, "
                f"{holder.optimizer_type}, iteration {holder.iteration} of {holder.max_iterations}); "
                "stop it with stop_optimization() or wait for it with wait_optimization()",
                variable=names[0],
                rule="optimization_lease",
            )
        log.info("optimization started", extra={"optimization": run.id, "optimizer": optimizer_type})
        return pb.StartOptimizationResponse(
            optimization_id=run.id,
            lease_ttl_seconds=lease_ttl,
            variable_ids=run.variable_ids,
            variable_names=run.variable_names,
        )

    async def _resumed(
        self,
        request: pb.StartOptimizationRequest,
        runner: str,
        variables: list[VariableRecord],
        now: float,
        lease_ttl: float,
    ) -> OptimizationRecord | None:
        """The earlier run to continue, made running again; None for a new run."""
        if not request.resume_optimization_id:
            return None
        run = await self.store.get_optimization(request.resume_optimization_id)
        if run is None or run.runner != runner:
            raise PreconditionFailedError(
                f"no optimization {request.resume_optimization_id[:64]!r} of session {runner!r} to resume",
                rule="resume",
            )
        same = (run.variable_ids, run.optimizer_type, run.direction, run.metric) == (
            tuple(v.id for v in variables),
            request.optimizer_type,
            request.direction,
            request.metric,
        )
        if not same:
            raise ValidationError(
                f"{run.id} optimized {list(run.variable_names)} with {run.optimizer_type!r} "
                f"({run.direction}, metric {run.metric or 'score'!r}); resume it with the same variables, "
                "optimizer_type, direction and metric",
                rule="resume",
            )
        if run.state == RUNNING:
            return run  # live (a lapsed one was expired above): the claim refuses it
        if run.state not in ("stopped", "failed", "expired"):
            raise PreconditionFailedError(f"{run.id} ended {run.state!r}; only stopped, failed or expired runs resume")
        return run._replace(
            state=RUNNING,
            error="",
            stop_requested=False,
            ended_at=None,
            active_seconds=run.elapsed(run.ended_at or now),  # a new segment; the time so far is kept
            segment_started_at=now,
            last_update=now,
            lease_ttl=lease_ttl,
            lease_expires_at=now + lease_ttl,
            max_iterations=request.max_iterations,
        )

    async def WriteCandidate(self, request: pb.WriteCandidateRequest, context: Ctx) -> pb.OptimizationAck:
        session_id = await self._authenticate(request, context)
        run = await self._own_run(session_id, request.optimization_id)
        run, revision = await self._write_candidate(run, request.iteration, request.candidate)
        return self._ack(run, revision)

    async def _write_candidate(
        self, run: OptimizationRecord, iteration: int, candidate: pb.MapValue
    ) -> tuple[OptimizationRecord, int]:
        """Writes an iteration's candidate into the run's variables; returns the renewed run and the revision."""
        if not run.iteration < iteration <= run.max_iterations:
            raise ValidationError(
                f"{run.id}: iteration {iteration} is not after the last reported ({run.iteration}) "
                f"and within max_iterations ({run.max_iterations})",
                rule="iteration",
            )
        values = {entry.key: entry.value for entry in candidate.entries}
        if sorted(values) != sorted(run.variable_names) or len(values) != len(candidate.entries):
            raise ValidationError(
                f"{run.id}: a candidate names each of {list(run.variable_names)} once, got "
                f"{[e.key[:40] for e in candidate.entries][:10]}",
                rule="candidate",
            )
        stored, revision = await self._write_values(run, values, {"optimization_id": run.id, "iteration": iteration})
        renewed = await self._change(run.id, self._renewal(candidate=stored, candidate_iteration=iteration), False)
        return renewed, revision

    async def ReportTrial(self, request: pb.ReportTrialRequest, context: Ctx) -> pb.OptimizationAck:
        session_id = await self._authenticate(request, context)
        run = await self._own_run(session_id, request.optimization_id)
        iteration = request.iteration
        if iteration != run.candidate_iteration or run.candidate is None or iteration <= run.iteration:
            raise ValidationError(
                f"{run.id}: iteration {iteration} has no written candidate to report on "
                f"(last written: {run.candidate_iteration}, last reported: {run.iteration})",
                rule="iteration",
            )
        score = request.score if request.HasField("score") else None
        if score is not None and not math.isfinite(score):
            raise ValidationError(f"{run.id}: score {score} is not finite; report a failed iteration", rule="score")
        size = request.metrics.ByteSize() + len(request.error) + sum(len(str(v)) for v in run.candidate.values())
        self._check_entry(run, size, f"iteration {iteration}")
        metrics = dict(decode_metadata(request.metrics, f"{run.id} metrics", self.limits, "metrics"))
        error = request.error[:2000]
        candidate = run.candidate
        await self.store.add_trial(TrialRecord(run.id, iteration, candidate, score, metrics, self.clock(), error))
        changes: dict[str, Any] = {"iteration": iteration}
        if score is not None and (run.best_score is None or _better(score, run.best_score, run.direction)):
            changes.update(best_candidate=candidate, best_score=score, best_metrics=metrics, best_iteration=iteration)
        renew, budget = self._renewal(**changes), self.limits.max_optimization_history_bytes
        run = await self._change(run.id, lambda current: _charged(renew(current), size, budget))  # from the run now
        revision = 0
        if request.next_candidate.entries and not run.stop_requested:
            run, revision = await self._write_candidate(run, iteration + 1, request.next_candidate)
        return self._ack(run, revision)

    def _check_entry(self, run: OptimizationRecord, size: int, what: str) -> None:
        """One history entry's size against the per-entry limit and what is left of the run's budget."""
        if size > self.limits.max_trial_bytes:
            raise LimitExceededError(
                f"{run.id}: {what} carries {size} bytes of metrics, candidate and error text; "
                f"the limit is {self.limits.max_trial_bytes}",
                rule="max_trial_bytes",
            )
        if run.trial_bytes + size > self.limits.max_optimization_history_bytes:
            raise LimitExceededError(
                f"{run.id}: its history would exceed {self.limits.max_optimization_history_bytes} bytes",
                rule="max_optimization_history_bytes",
            )

    async def RecordEvaluation(self, request: pb.RecordEvaluationRequest, context: Ctx) -> pb.OptimizationAck:
        """An evaluation inside the iteration in progress: its own history entry, within the run's budgets."""
        session_id = await self._authenticate(request, context)
        run = await self._own_run(session_id, request.optimization_id)
        if request.iteration != run.candidate_iteration or request.iteration <= run.iteration:
            raise ValidationError(
                f"{run.id}: iteration {request.iteration} is not the one being evaluated "
                f"(last written: {run.candidate_iteration}, last reported: {run.iteration})",
                rule="iteration",
            )
        if request.evaluation < 1:
            raise ValidationError(
                f"{run.id}: evaluation numbers start at 1, got {request.evaluation}", rule="evaluation"
            )
        score = request.score if request.HasField("score") else None
        if score is not None and not math.isfinite(score):
            raise ValidationError(f"{run.id}: evaluation score {score} is not finite", rule="score")
        # Each entry costs its metrics, its candidate and a fixed overhead, so empty ones are bounded too.
        size = request.metrics.ByteSize() + sum(len(str(v)) for v in (run.candidate or {}).values()) + ENTRY_BYTES
        self._check_entry(run, size, f"evaluation {request.evaluation} of iteration {request.iteration}")
        metrics = dict(decode_metadata(request.metrics, f"{run.id} evaluation metrics", self.limits, "metrics"))
        evaluation = TrialRecord(
            run.id,
            request.iteration,
            run.candidate or {},
            score,
            metrics,
            self.clock(),
            "",
            "evaluation",
            request.evaluation,
        )
        renew = self._renewal()
        run = await self._change(  # from the run as it is now: concurrent evaluations add up, none is lost
            run.id, lambda current: _charged(renew(current), size, self.limits.max_optimization_history_bytes)
        )
        await self.store.add_trial(evaluation)
        return self._ack(run, 0)

    async def RenewOptimization(self, request: pb.RenewOptimizationRequest, context: Ctx) -> pb.OptimizationAck:
        session_id = await self._authenticate(request, context)
        run = await self._own_run(session_id, request.optimization_id)
        return self._ack(await self._change(run.id, self._renewal(), False))

    async def FinishOptimization(self, request: pb.FinishOptimizationRequest, context: Ctx) -> pb.OptimizationStatus:
        session_id = await self._authenticate(request, context)
        if request.state not in FINISH_STATES:
            raise ValidationError(f"state must be one of {list(FINISH_STATES)}, got {request.state[:40]!r}")
        run = await self._own_run(session_id, request.optimization_id)
        return self._status(await self._finish(run.id, request.state, request.error[:2000]))

    # ------------------------------------------------------------ any client's calls

    async def StopOptimization(self, request: pb.StopOptimizationRequest, context: Ctx) -> pb.OptimizationStatus:
        session_id = await self._authenticate(request, context)
        variable = await self._variable(session_id, request.ref, "optimize")
        run = await self._current_run(variable)
        if run is None or run.state != RUNNING:
            raise PreconditionFailedError(
                f"variable {variable.name!r} is not being optimized"
                + (f" (its last run {run.id} ended {run.state!r})" if run else ""),
                variable=variable.name,
                rule="optimization_state",
            )
        run = await self._change(run.id, lambda r: r._replace(stop_requested=True))
        log.info("optimization stop requested", extra={"optimization": run.id, "session": session_id})
        return self._status(run)

    async def GetOptimizationStatus(
        self, request: pb.GetOptimizationStatusRequest, context: Ctx
    ) -> pb.OptimizationStatus:
        session_id = await self._authenticate(request, context)
        run = await self._current_run(await self._variable(session_id, request.ref, "read"))
        await self._check_readable(run, session_id)
        return self._status(run)

    async def WaitOptimization(self, request: pb.WaitOptimizationRequest, context: Ctx) -> pb.OptimizationStatus:
        session_id = await self._authenticate(request, context)
        variable = await self._variable(session_id, request.ref, "read")
        timeout = request.timeout_seconds
        if not (math.isfinite(timeout) and timeout >= 0):
            raise ValidationError(f"timeout_seconds must be >= 0, got {timeout}", rule="timeout")
        check_count(
            self._waits.get(session_id, 0) + 1,
            self.limits.max_optimization_waits,
            "parked wait_optimization calls",
            "max_optimization_waits",
        )
        deadline = self.clock() + (min(timeout, MAX_WAIT_SECONDS) if timeout > 0 else MAX_WAIT_SECONDS)
        self._waits[session_id] = self._waits.get(session_id, 0) + 1
        try:
            while True:
                run = await self._current_run(variable)
                now = self.clock()
                if run is None or run.state != RUNNING or now >= deadline:
                    await self._check_readable(run, session_id)
                    return self._status(run)
                changed = self._run_events.setdefault(run.id, asyncio.Event())
                wake = min(deadline, run.lease_expires_at + 0.01) - now  # a lapsing lease ends the run
                if self.store.shared:
                    wake = min(wake, SHARED_STORE_RECHECK_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(wake, 0.001))
        finally:
            self._waits[session_id] -= 1
            if not self._waits[session_id]:
                del self._waits[session_id]

    async def GetOptimizationHistory(
        self, request: pb.GetOptimizationHistoryRequest, context: Ctx
    ) -> pb.GetOptimizationHistoryResponse:
        session_id = await self._authenticate(request, context)
        variable = await self._variable(session_id, request.ref, "read")
        if request.limit <= 0:
            raise ValidationError(f"limit must be positive, got {request.limit}", rule="limit")
        limit = min(request.limit, self.limits.max_optimization_iterations)
        since = None
        if request.HasField("since"):
            try:  # exclusive, at a datetime's resolution: an entry's own timestamp, given back, excludes it
                since = request.since.ToMicroseconds()
            except ValueError:
                raise ValidationError("since is not a representable time", rule="since") from None
        runs = await self.store.variable_optimizations(variable.id)
        if request.optimization_id:
            runs = [r for r in runs if r.id == request.optimization_id]
        for run in runs:
            await self._check_readable(run, session_id)
        entries: list[TrialRecord] = []
        for run in runs:
            entries.extend(
                t
                for t in await self.store.trials(run.id)
                if (since is None or timestamp(t.timestamp).ToMicroseconds() > since)
                and (request.include_evaluations or t.kind == "trial")
            )
        response = pb.GetOptimizationHistoryResponse()
        for trial in entries[-limit:]:
            entry = response.entries.add(
                optimization_id=trial.optimization_id,
                iteration=trial.iteration,
                timestamp=timestamp(trial.timestamp),
                state=trial.state,
                error=trial.error,
                kind=trial.kind,
                evaluation=trial.evaluation,
            )
            map_into(entry.candidate, trial.candidate, self.limits)
            map_into(entry.metrics, trial.metrics, self.limits)
            if trial.score is not None:
                entry.score = trial.score
        return response

    async def DeleteVariable(self, request: pb.DeleteVariableRequest, context: Ctx) -> pb.DeleteVariableResponse:
        """Refused while a live run holds the variable: its run would lose a variable mid-write."""
        session_id = await self._authenticate(request, context)
        record = await self.store.get_variable(session_id, request.ref)  # only the owner deletes (see there)
        if record is not None:
            run = await self._current_run(record)
            if run is not None and run.state == RUNNING:
                raise PreconditionFailedError(
                    f"cannot delete {record.name!r} while {run.id} optimizes it; stop_optimization() it first",
                    variable=record.name,
                    rule="optimization_lease",
                )
        return await super().DeleteVariable(request, context)

    def _status(self, run: OptimizationRecord | None) -> pb.OptimizationStatus:
        if run is None:
            return pb.OptimizationStatus(exists=False)
        status = pb.OptimizationStatus(
            exists=True,
            optimization_id=run.id,
            optimizer_type=run.optimizer_type,
            state=run.state,
            is_optimizing=run.state == RUNNING,
            iteration=run.iteration,
            max_iterations=run.max_iterations,
            variable_ids=run.variable_ids,
            variable_names=run.variable_names,
            best_iteration=run.best_iteration,
            started_at=timestamp(run.started_at),
            last_update=timestamp(run.last_update),
            lease_expires_at=timestamp(run.lease_expires_at),
            direction=run.direction,
            metric=run.metric,
            convergence_threshold=run.convergence_threshold,
            stop_requested=run.stop_requested,
            error=run.error,
            elapsed_seconds=run.elapsed(self.clock()),
            seed=run.seed or 0,
            has_seed=run.seed is not None,
            session_id=run.session_id,
        )
        map_into(status.best_candidate, run.best_candidate, self.limits)
        map_into(status.best_metrics, run.best_metrics, self.limits)
        map_into(status.config, run.config, self.limits)
        map_into(status.initial_values, run.initial_values, self.limits)
        status.runner_session_id = run.runner
        if run.best_score is not None:
            status.best_score = run.best_score
        return status


#: What one history entry costs beyond its metrics and candidate, counted against the run's budget.
ENTRY_BYTES = 64


def _charged(run: OptimizationRecord, size: int, budget: int) -> OptimizationRecord:
    if run.trial_bytes + size > budget:
        raise LimitExceededError(
            f"{run.id}: its history would exceed {budget} bytes", rule="max_optimization_history_bytes"
        )
    return run._replace(trial_bytes=run.trial_bytes + size)


def _better(score: float, best: float, direction: str) -> bool:
    return score > best if direction == "maximize" else score < best


class _AlreadyEnded(Exception):
    """Raised inside a change when another caller ended the run first."""

    def __init__(self, run: OptimizationRecord) -> None:
        super().__init__(run.id)
        self.run = run
