"""The embedded default store: everything in this process's memory, lost when it exits."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TypeVar

from ..errors import SessionNotFoundError
from ..limits import DEFAULT_LIMITS, Limits
from ._interface import Store, Transaction
from ._records import RUNNING, OptimizationRecord, SessionRecord, TrialRecord, VariableRecord, VariableStatsRecord

T = TypeVar("T")


@dataclass(slots=True)
class _History:
    entries: deque[VariableRecord] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)  # apart, so evicting never reads a cold record
    nbytes: int = 0


@dataclass(slots=True)
class _Session:
    record: SessionRecord
    by_name: dict[str, VariableRecord] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: A transaction is running (`lock` is held): single writes queue behind it. A plain
    #: attribute, read on every write, where `lock.locked()` would be a Python call.
    in_transaction: bool = False
    revision: int = 0


class _MemoryTransaction(Transaction):
    def __init__(self, session: _Session, ids: dict[str, VariableRecord]) -> None:
        self._session = session
        self._ids = ids
        self.revision = session.revision + 1
        self.now = time.time()
        self.staged: dict[str, VariableRecord | None] = {}  # variable ID -> new record; None: deleted
        self.originals: dict[str, VariableRecord | None] = {}
        self._staged_names: dict[str, str] = {}  # name -> variable ID, for staged records

    def _current(self, vid: str) -> VariableRecord | None:
        if vid in self.staged:
            return self.staged[vid]
        record = self._ids.get(vid)
        return record if record is not None and record.session_id == self._session.record.session_id else None

    async def get(self, ref: str) -> VariableRecord | None:
        vid = self._staged_names.get(ref)
        if vid is None:
            record = self._session.by_name.get(ref)
            vid = record.id if record is not None else ref
        return self._current(vid)

    async def variable_count(self) -> int:
        count = len(self._session.by_name)
        for vid, record in self.staged.items():
            count += (record is not None) - (self.originals[vid] is not None)
        return count

    def _stage(self, vid: str, record: VariableRecord | None) -> None:
        if vid not in self.originals:
            self.originals[vid] = self._ids.get(vid)
        self.staged[vid] = record

    def put(self, record: VariableRecord) -> None:
        self._stage(record.id, record)
        self._staged_names[record.name] = record.id

    def delete(self, record: VariableRecord) -> None:
        self._stage(record.id, None)
        self._staged_names[record.name] = record.id

    async def dependents(self, variable_id: str) -> list[str]:
        current = {r.id: r for r in self._session.by_name.values()}
        current.update(self.staged)
        return sorted(r.name for r in current.values() if r is not None and variable_id in r.dependencies)


class MemoryStore(Store):
    """Sessions in dicts; per-session locks make each transaction atomic."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._sessions: dict[str, _Session] = {}
        self._ids: dict[str, VariableRecord] = {}
        self._history: dict[str, _History] = {}
        self._reads: dict[str, int] = {}  # variable ID -> reads served (writes are its version)
        self._runs: dict[str, OptimizationRecord] = {}
        self._trials: dict[str, list[TrialRecord]] = {}  # optimization ID -> its iterations
        self._var_runs: dict[str, list[str]] = {}  # variable ID -> its runs' IDs, oldest first
        self._opt_time: dict[str, float] = {}  # variable ID -> seconds of ended runs over it

    # -- sessions

    async def create_session(self, record: SessionRecord) -> bool:
        if record.session_id in self._sessions:
            return False
        self._sessions[record.session_id] = _Session(record=record)
        return True

    async def get_session(self, session_id: str) -> SessionRecord | None:
        session = self._sessions.get(session_id)
        return session.record if session else None

    async def revision(self, session_id: str) -> int:
        session = self._sessions.get(session_id)
        return session.revision if session else 0

    async def touch_session(self, session_id: str, now: float) -> None:
        session = self._sessions.get(session_id)
        if session:
            session.record = session.record._replace(last_seen=now)

    async def delete_session(self, session_id: str) -> int:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return 0
        async with session.lock:
            for record in session.by_name.values():
                self._forget(record.id)
            for run_id in [r.id for r in self._runs.values() if r.session_id == session_id]:
                self._drop_run(run_id)
            return len(session.by_name)

    async def session_ids(self) -> list[str]:
        return list(self._sessions)

    def _forget(self, variable_id: str) -> None:
        self._ids.pop(variable_id, None)
        self._history.pop(variable_id, None)
        self._reads.pop(variable_id, None)
        self._opt_time.pop(variable_id, None)
        for run_id in self._var_runs.pop(variable_id, ()):
            self._drop_run(run_id)

    def _drop_run(self, run_id: str) -> None:
        run = self._runs.pop(run_id, None)
        self._trials.pop(run_id, None)
        if run is not None:
            for vid in run.variable_ids:
                runs = self._var_runs.get(vid)
                if runs is not None and run_id in runs:
                    runs.remove(run_id)

    # -- writes

    async def transact(self, session_id: str, body: Callable[[Transaction], Awaitable[T]]) -> tuple[T, int]:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        async with session.lock:
            session.in_transaction = True
            try:
                txn = _MemoryTransaction(session, self._ids)
                result = await body(txn)
                if txn.staged:
                    if self._sessions.get(session_id) is not session:
                        raise SessionNotFoundError(f"session {session_id!r} ended during the write", session=session_id)
                    self._commit(session, txn)
                    return result, txn.revision
                return result, txn.revision - 1
            finally:
                session.in_transaction = False

    def _commit(self, session: _Session, txn: _MemoryTransaction) -> None:
        revision = txn.revision
        session.revision = revision
        for vid, record in txn.staged.items():
            old = txn.originals[vid]
            if record is not None:
                self._apply(session, record)
                continue
            assert old is not None
            del session.by_name[old.name]
            self._forget(vid)

    def _apply(self, session: _Session, record: VariableRecord) -> None:
        """Stores a created or updated variable and appends it to its history, dropping the
        oldest versions past the count or byte budget (the current one is always kept)."""
        vid = record.id
        session.by_name[record.name] = record  # names never change, so this replaces the old version
        self._ids[vid] = record
        history = self._history.get(vid)
        if history is None:
            history = self._history[vid] = _History()
        entries, sizes = history.entries, history.sizes
        value = record.value  # record.nbytes, spelled out: this runs on every write
        size = len(value.head) + (len(value.data) if value.data is not None else 0) + record.metadata_bytes
        entries.append(record)
        sizes.append(size)
        history.nbytes += size
        limits = self.limits
        while len(entries) > 1 and (
            len(entries) > limits.max_history_per_variable or history.nbytes > limits.max_history_bytes
        ):
            entries.popleft()
            history.nbytes -= sizes.popleft()

    async def update(
        self, session_id: str, ref: str, make: Callable[[VariableRecord, int, float], VariableRecord]
    ) -> tuple[VariableRecord, int] | None:
        """One put without a transaction's bookkeeping. Nothing here awaits, so on the event loop
        it is as atomic as a transaction; while one is running, it queues behind it instead."""
        session = self._sessions.get(session_id)
        if session is None or session.in_transaction:
            return await super().update(session_id, ref, make)
        record = self._lookup(session, ref)
        if record is None:
            return None
        revision = session.revision + 1
        updated = make(record, revision, time.time())
        session.revision = revision
        self._apply(session, updated)
        return updated, revision

    # -- reads

    def _lookup(self, session: _Session, ref: str) -> VariableRecord | None:
        """The session's variable by name, else by ID."""
        record = session.by_name.get(ref)
        if record is None:
            record = self._ids.get(ref)
            if record is not None and record.session_id != session.record.session_id:
                return None
        return record

    async def get_variable(self, session_id: str, ref: str) -> VariableRecord | None:
        session = self._sessions.get(session_id)
        return self._lookup(session, ref) if session is not None else None

    async def get_variable_by_id(self, variable_id: str) -> VariableRecord | None:
        return self._ids.get(variable_id)

    async def count_reads(self, variable_ids: list[str]) -> None:
        for vid in variable_ids:
            if vid in self._ids:
                self._reads[vid] = self._reads.get(vid, 0) + 1

    async def list_variables(self, session_id: str, pattern: str = "") -> list[VariableRecord]:
        session = self._sessions.get(session_id)
        if session is None:
            return []
        return sorted(
            (r for r in session.by_name.values() if not pattern or fnmatchcase(r.name, pattern)),
            key=lambda r: r.name,
        )

    async def close(self) -> None:
        """Nothing to release: the data goes with the process."""

    async def stats(self, variable_id: str) -> VariableStatsRecord:
        record = self._ids.get(variable_id)
        optimizing = self._opt_time.get(variable_id, 0.0)
        runs = self._var_runs.get(variable_id)
        if runs:
            current = self._runs[runs[-1]]
            if current.ended_at is None:
                optimizing += current.elapsed(time.time())
        return VariableStatsRecord(
            self._reads.get(variable_id, 0), record.version if record is not None else 0, optimizing
        )

    # -- optimization runs (nothing here awaits: each call is atomic on the event loop)

    async def claim_optimization(self, record: OptimizationRecord, now: float) -> OptimizationRecord | None:
        for vid in record.variable_ids:
            runs = self._var_runs.get(vid)
            if runs:
                holder = self._runs[runs[-1]]
                if holder.live(now):
                    return holder
        self._runs[record.id] = record
        self._trials.setdefault(record.id, [])
        for vid in record.variable_ids:
            runs = self._var_runs.setdefault(vid, [])
            if record.id in runs:  # a resumed run becomes current again
                runs.remove(record.id)
            runs.append(record.id)
            while len(runs) > self.limits.max_optimization_runs:
                self._drop_run(runs[0])
        return None

    async def save_optimization(self, record: OptimizationRecord) -> None:
        previous = self._runs.get(record.id)
        if previous is None:
            return  # forgotten meanwhile (its variables or session were deleted)
        self._runs[record.id] = record
        if previous.ended_at is None and record.ended_at is not None:
            for vid in record.variable_ids:
                if vid in self._ids:
                    self._opt_time[vid] = self._opt_time.get(vid, 0.0) + record.elapsed(record.ended_at)

    async def get_optimization(self, optimization_id: str) -> OptimizationRecord | None:
        return self._runs.get(optimization_id)

    async def variable_optimizations(self, variable_id: str) -> list[OptimizationRecord]:
        return [self._runs[run_id] for run_id in self._var_runs.get(variable_id, ())]

    async def live_optimizations(self) -> list[OptimizationRecord]:
        return [run for run in self._runs.values() if run.state == RUNNING]

    async def add_trial(self, trial: TrialRecord) -> None:
        trials = self._trials.get(trial.optimization_id)
        if trials is not None:
            trials.append(trial)

    async def trials(self, optimization_id: str) -> list[TrialRecord]:
        return list(self._trials.get(optimization_id, ()))

    async def history(self, variable_id: str, limit: int = 100, offset: int = 0) -> list[VariableRecord]:
        history = self._history.get(variable_id)
        entries = list(reversed(history.entries)) if history else []
        return entries[offset : offset + limit]
