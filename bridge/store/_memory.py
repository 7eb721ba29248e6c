"""The embedded default store: everything in this process's memory, lost when it exits."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TypeVar

from ..errors import SessionNotFoundError
from ..limits import DEFAULT_LIMITS, Limits
from ._interface import Listener, Store, Transaction, check_kept
from ._records import (
    RUNNING,
    Change,
    EventLog,
    LogEntry,
    OptimizationRecord,
    SessionRecord,
    SessionSnapshot,
    TrialRecord,
    VariableRecord,
    VariableStatsRecord,
)

T = TypeVar("T")
_new_tuple = tuple.__new__

#: What one logged change costs beyond its value and metadata (its record and the tuples holding it),
#: roughly, for the log's byte budget.
CHANGE_OVERHEAD_BYTES = 512

#: A logged write as kept: (revision, time, ((old, new, writer), ...), byte cost).
_RawEntry = tuple[int, float, tuple[tuple[VariableRecord | None, VariableRecord | None, str], ...], int]


def _entry(raw: _RawEntry) -> LogEntry:
    revision, when, changes, _ = raw
    return _new_tuple(LogEntry, (revision, when, tuple([_new_tuple(Change, change) for change in changes])))


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
    #: The event log, one entry per write, oldest first: plain tuples (see `_RawEntry`), made
    #: into LogEntry records only when read, because the write path pays for every allocation.
    log: deque[_RawEntry] = field(default_factory=deque)
    log_bytes: int = 0
    log_id: str = field(default_factory=lambda: secrets.token_hex(8))
    listeners: list[Listener] = field(default_factory=list)


class _MemoryTransaction(Transaction):
    def __init__(self, session: _Session, ids: dict[str, VariableRecord]) -> None:
        self._session = session
        self._ids = ids
        self.revision = session.revision + 1
        self.now = time.time()
        self.staged: dict[str, VariableRecord | None] = {}  # variable ID -> new record; None: deleted
        self.originals: dict[str, VariableRecord | None] = {}
        self.deleted_by: dict[str, str] = {}  # variable ID -> who deleted it
        self.restored: dict[str, Sequence[VariableRecord]] = {}  # variable ID -> earlier versions, oldest first
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

    def restore(self, record: VariableRecord, history: Sequence[VariableRecord]) -> None:
        if self._current(record.id) is not None:
            raise ValueError(f"restore() creates variables; {record.name!r} exists")
        self.put(record)
        self.restored[record.id] = history

    def delete(self, record: VariableRecord, writer: str | None = None) -> None:
        self.restored.pop(record.id, None)
        self._stage(record.id, None)
        self._staged_names[record.name] = record.id
        self.deleted_by[record.id] = writer if writer is not None else record.session_id

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
        self._max_log_entries = limits.max_event_log_entries
        self._max_log_bytes = limits.max_event_log_bytes

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
            listeners, session.listeners = session.listeners, []
            for listener in listeners:
                listener(None)
            return len(session.by_name)

    async def session_ids(self) -> list[str]:
        return list(self._sessions)

    def _forget(self, variable_id: str) -> None:
        self._ids.pop(variable_id, None)
        self._history.pop(variable_id, None)
        self._reads.pop(variable_id, None)
        self._opt_time.pop(variable_id, None)
        for run_id in self._var_runs.pop(variable_id, ()):
            self._release_run(run_id)

    def _release_run(self, run_id: str, variable_id: str | None = None) -> None:
        """A variable stops keeping a run; the run goes when no variable keeps it."""
        if variable_id is not None:
            runs = self._var_runs.get(variable_id)
            if runs is not None and run_id in runs:
                runs.remove(run_id)
        run = self._runs.get(run_id)
        if run is not None and not any(run_id in self._var_runs.get(vid, ()) for vid in run.variable_ids):
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
        changes = []
        nbytes = 0
        for vid, record in txn.staged.items():
            old = txn.originals[vid]
            if record is not None:
                for earlier in txn.restored.get(vid, ()):
                    self._apply(session, earlier)
                nbytes += self._apply(session, record)
                changes.append((old, record, record.updated_by))
                continue
            if old is None:  # created and deleted within the transaction: nothing happened
                continue
            del session.by_name[old.name]
            self._forget(vid)
            nbytes += CHANGE_OVERHEAD_BYTES
            changes.append((old, None, txn.deleted_by[vid]))
        self._log(session, (revision, txn.now, tuple(changes), nbytes))

    def _log(self, session: _Session, raw: _RawEntry) -> None:
        """Appends a write to the session's event log; `_logged` then keeps it within budget and publishes it."""
        session.log.append(raw)
        session.log_bytes += raw[3]
        if len(session.log) > self._max_log_entries or session.log_bytes > self._max_log_bytes or session.listeners:
            self._logged(session)

    def _logged(self, session: _Session) -> None:
        """Drops the oldest writes past the count or byte budget (the latest is always kept), then hands the
        latest write to the session's listeners."""
        log = session.log
        while len(log) > 1 and (len(log) > self._max_log_entries or session.log_bytes > self._max_log_bytes):
            session.log_bytes -= log.popleft()[3]
        if session.listeners:
            entry = _entry(log[-1])
            for listener in session.listeners:
                listener(entry)

    def _apply(self, session: _Session, record: VariableRecord) -> int:
        """Stores a created or updated variable and appends it to its history, dropping the
        oldest versions past the count or byte budget (the current one is always kept).
        Returns what the version costs the event log."""
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
        if limits.max_history_age_seconds:
            oldest_kept = record.updated_at - limits.max_history_age_seconds
            while len(entries) > 1 and entries[0].updated_at < oldest_kept:
                entries.popleft()
                history.nbytes -= sizes.popleft()
        return size + CHANGE_OVERHEAD_BYTES

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
        now = time.time()
        updated = make(record, revision, now)
        session.revision = revision
        self._log(session, (revision, now, ((record, updated, updated.updated_by),), self._apply(session, updated)))
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

    async def snapshot(self, session_id: str, names: Iterable[str]) -> tuple[int, dict[str, VariableRecord]]:
        session = self._session(session_id)
        by_name = session.by_name
        return session.revision, {name: by_name[name] for name in names if name in by_name}

    async def export_snapshot(
        self, session_id: str, select: Callable[[str], bool] | None = None, include_history: bool = False
    ) -> SessionSnapshot:
        session = self._session(session_id)  # nothing below awaits: one consistent state
        every = session.by_name.values()
        records = sorted((r for r in every if select is None or select(r.name)), key=lambda r: r.name)
        history: dict[str, list[VariableRecord]] = {}
        runs: list[OptimizationRecord] = []
        trials: dict[str, list[TrialRecord]] = {}
        if include_history:
            for record in records:
                kept = self._history.get(record.id)
                history[record.id] = list(kept.entries)[:-1] if kept else []  # the last is the current one
                for run_id in self._var_runs.get(record.id, ()):
                    if run_id not in trials:
                        runs.append(self._runs[run_id])
                        trials[run_id] = list(self._trials.get(run_id, ()))
        return SessionSnapshot(session.revision, records, {r.id: r.name for r in every}, history, runs, trials)

    # -- the event log (nothing here awaits: each read is one consistent state)

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        return session

    async def event_log(self, session_id: str, from_revision: int, limit: int) -> EventLog:
        session = self._session(session_id)
        log = session.log
        oldest = log[0][0] if log else session.revision + 1
        check_kept(session_id, from_revision, oldest, session.revision)
        start = from_revision - oldest
        entries = [_entry(log[i]) for i in range(start, min(len(log), start + max(limit, 0)))]
        return EventLog(session.log_id, oldest, session.revision, entries)

    def listen(self, session_id: str, listener: Listener) -> Callable[[], None]:
        session = self._session(session_id)
        session.listeners.append(listener)

        def stop() -> None:
            with contextlib.suppress(ValueError):  # already gone with its session
                session.listeners.remove(listener)

        return stop

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
                optimizing += time.time() - current.segment_start
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
                self._release_run(runs[0], vid)
        return None

    async def update_optimization(
        self, optimization_id: str, change: Callable[[OptimizationRecord], OptimizationRecord]
    ) -> OptimizationRecord | None:
        previous = self._runs.get(optimization_id)
        if previous is None:
            return None  # forgotten meanwhile (its variables or session were deleted)
        record = change(previous)
        self._runs[optimization_id] = record
        if previous.ended_at is None and record.ended_at is not None:
            segment = record.ended_at - record.segment_start
            for vid in record.variable_ids:
                if vid in self._ids:
                    self._opt_time[vid] = self._opt_time.get(vid, 0.0) + segment
        return record

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
