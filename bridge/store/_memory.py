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
from ._records import Event, SessionRecord, VariableRecord, VariableStatsRecord

T = TypeVar("T")


@dataclass(slots=True)
class _History:
    entries: deque[VariableRecord] = field(default_factory=deque)
    nbytes: int = 0


@dataclass(slots=True)
class _Session:
    record: SessionRecord
    by_name: dict[str, VariableRecord] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    revision: int = 0
    events: deque[Event] = field(default_factory=deque)
    event_bytes: int = 0
    #: Revisions at or below this have been dropped from `events`.
    compacted: int = 0


class _MemoryTransaction(Transaction):
    def __init__(self, session: _Session, ids: dict[str, VariableRecord]) -> None:
        self._session = session
        self._ids = ids
        self.revision = session.revision + 1
        self.now = time.time()
        self.staged: dict[str, VariableRecord | None] = {}  # variable ID -> new record; None: deleted
        self.originals: dict[str, VariableRecord | None] = {}
        self._staged_names: dict[str, str] = {}  # name -> variable ID, for staged records

    @property
    def pending(self) -> bool:
        return bool(self.staged)

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
        self._stats: dict[str, list[int]] = {}

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
            return len(session.by_name)

    async def session_ids(self) -> list[str]:
        return list(self._sessions)

    def _forget(self, variable_id: str) -> None:
        self._ids.pop(variable_id, None)
        self._history.pop(variable_id, None)
        self._stats.pop(variable_id, None)

    # -- writes

    async def transact(self, session_id: str, body: Callable[[Transaction], Awaitable[T]]) -> tuple[T, int]:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        async with session.lock:
            txn = _MemoryTransaction(session, self._ids)
            result = await body(txn)
            if txn.staged:
                if self._sessions.get(session_id) is not session:
                    raise SessionNotFoundError(f"session {session_id!r} ended during the write", session=session_id)
                self._commit(session, txn)
                return result, txn.revision
            return result, txn.revision - 1

    def _commit(self, session: _Session, txn: _MemoryTransaction) -> None:
        revision = txn.revision
        session.revision = revision
        for vid, record in txn.staged.items():
            old = txn.originals[vid]
            if record is not None:
                self._apply(session, revision, record, old)
                continue
            assert old is not None
            del session.by_name[old.name]
            self._forget(vid)
            self._log(session, Event(revision, "delete", None, old, old.value.nbytes))

    def _apply(self, session: _Session, revision: int, record: VariableRecord, old: VariableRecord | None) -> None:
        """Stores a created or updated variable, with its history, stats and event."""
        vid = record.id
        session.by_name[record.name] = record  # names never change, so this replaces `old`
        self._ids[vid] = record
        size = record.value.nbytes
        self._remember(vid, record, size)
        counts = self._stats.get(vid)
        if counts is None:
            self._stats[vid] = [0, 1]
        else:
            counts[1] += 1
        self._log(session, Event(revision, "update" if old is not None else "create", record, old, size))

    async def update(
        self, session_id: str, ref: str, make: Callable[[VariableRecord, int, float], VariableRecord]
    ) -> tuple[VariableRecord, int] | None:
        """One put without a transaction's bookkeeping. Nothing here awaits, so on the event loop
        it is as atomic as a transaction; while one is running, it queues behind it instead."""
        session = self._sessions.get(session_id)
        if session is None or session.lock.locked():
            return await super().update(session_id, ref, make)
        record = session.by_name.get(ref)
        if record is None:
            record = self._ids.get(ref)
            if record is None or record.session_id != session_id:
                return None
        revision = session.revision + 1
        updated = make(record, revision, time.time())
        session.revision = revision
        self._apply(session, revision, updated, record)
        return updated, revision

    def _remember(self, vid: str, record: VariableRecord, size: int) -> None:
        """Appends to the variable's history, dropping its oldest versions past the count or byte budget."""
        history = self._history.get(vid)
        if history is None:
            history = self._history[vid] = _History()
        entries = history.entries
        entries.append(record)
        history.nbytes += size
        limits = self.limits
        while len(entries) > 1 and (
            len(entries) > limits.max_history_per_variable or history.nbytes > limits.max_history_bytes
        ):
            history.nbytes -= entries.popleft().value.nbytes

    def _log(self, session: _Session, event: Event) -> None:
        """Appends to the event log; an event's value is shared with history, so it is counted once."""
        events = session.events
        events.append(event)
        session.event_bytes += event.nbytes
        limits = self.limits
        # Compact whole revisions only, so a batch's events are never split; the newest stays.
        while events[0].revision < event.revision and (
            len(events) > limits.max_events_per_session or session.event_bytes > limits.max_event_bytes
        ):
            dropped = events[0].revision
            while events and events[0].revision == dropped:
                session.event_bytes -= events.popleft().nbytes
            session.compacted = dropped

    # -- reads

    async def get_variable(self, session_id: str, ref: str) -> VariableRecord | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        record = session.by_name.get(ref)
        if record is None:
            record = self._ids.get(ref)
            if record is not None and record.session_id != session_id:
                record = None
        return record

    async def get_variable_by_id(self, variable_id: str) -> VariableRecord | None:
        return self._ids.get(variable_id)

    async def count_reads(self, variable_ids: list[str]) -> None:
        for vid in variable_ids:
            if vid in self._ids:
                self._stats.setdefault(vid, [0, 0])[0] += 1

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
        reads, writes = self._stats.get(variable_id, (0, 0))
        return VariableStatsRecord(read_count=reads, write_count=writes)

    async def history(self, variable_id: str, limit: int = 100, offset: int = 0) -> list[VariableRecord]:
        history = self._history.get(variable_id)
        entries = list(reversed(history.entries)) if history else []
        return entries[offset : offset + limit]

    async def events_since(self, session_id: str, revision: int) -> tuple[list[Event], int]:
        session = self._sessions.get(session_id)
        if session is None:
            return [], 0
        return [e for e in session.events if e.revision > revision], session.compacted + 1
