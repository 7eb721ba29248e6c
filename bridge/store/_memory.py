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
from ._records import Event, HistoryEntry, SessionRecord, VariableRecord, VariableStatsRecord

T = TypeVar("T")


@dataclass(slots=True)
class _Session:
    record: SessionRecord
    by_name: dict[str, VariableRecord] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    events: deque[Event] = field(default_factory=deque)
    #: Revisions at or below this have been dropped from `events`.
    compacted: int = 0


class _MemoryTransaction(Transaction):
    def __init__(self, session: _Session, ids: dict[str, VariableRecord]) -> None:
        self._session = session
        self._ids = ids
        self.revision = session.record.revision + 1
        self.now = time.time()
        self.staged: dict[str, VariableRecord | None] = {}  # variable ID -> new record, None = delete
        self.originals: dict[str, VariableRecord | None] = {}

    def _current_by_name(self, name: str) -> VariableRecord | None:
        for record in self.staged.values():
            if record is not None and record.name == name:
                return record
        record = self._session.by_name.get(name)
        if record is not None and record.id in self.staged:
            return self.staged[record.id]
        return record

    async def get(self, ref: str) -> VariableRecord | None:
        record = self._current_by_name(ref)
        if record is not None:
            return record
        if ref in self.staged:
            return self.staged[ref]
        record = self._ids.get(ref)
        return record if record is not None and record.session_id == self._session.record.session_id else None

    async def variable_count(self) -> int:
        count = len(self._session.by_name)
        for vid, record in self.staged.items():
            existed = self.originals[vid] is not None
            count += (record is not None) - existed
        return count

    def _stage(self, vid: str, record: VariableRecord | None) -> None:
        if vid not in self.originals:
            self.originals[vid] = self._ids.get(vid)
        self.staged[vid] = record

    def put(self, record: VariableRecord) -> None:
        self._stage(record.id, record)

    def delete(self, record: VariableRecord) -> None:
        self._stage(record.id, None)

    async def dependents(self, variable_id: str) -> list[str]:
        names = {r.name: r for r in self._session.by_name.values()}
        for record in self.staged.values():
            if record is not None:
                names[record.name] = record
        return sorted(
            n for n, r in names.items() if variable_id in r.dependencies and self.staged.get(r.id, r) is not None
        )


class MemoryStore(Store):
    """Sessions in dicts; per-session locks make each transaction atomic."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._sessions: dict[str, _Session] = {}
        self._ids: dict[str, VariableRecord] = {}
        self._history: dict[str, deque[HistoryEntry]] = {}
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

    async def touch_session(self, session_id: str, now: float) -> None:
        session = self._sessions.get(session_id)
        if session:
            session.record = session.record.with_changes(last_seen=now)

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

    async def transact(self, session_id: str, body: Callable[[Transaction], Awaitable[T]]) -> T:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        async with session.lock:
            txn = _MemoryTransaction(session, self._ids)
            result = await body(txn)
            if txn.staged and self._sessions.get(session_id) is session:
                self._commit(session, txn)
            return result

    def _commit(self, session: _Session, txn: _MemoryTransaction) -> None:
        session.record = session.record.with_changes(revision=txn.revision)
        for vid, record in txn.staged.items():
            old = txn.originals[vid]
            if old is not None:
                del session.by_name[old.name]
            if record is None:
                assert old is not None
                self._forget(vid)
                self._log(
                    session, Event(txn.revision, "delete", vid, old.name, old.version, None, old.value, {}, txn.now, "")
                )
                continue
            session.by_name[record.name] = record
            self._ids[vid] = record
            history = self._history.setdefault(vid, deque(maxlen=self.limits.max_history_per_variable))
            history.append(HistoryEntry.of(record))
            self._stats.setdefault(vid, [0, 0])[1] += 1
            self._log(
                session,
                Event(
                    txn.revision,
                    "create" if old is None else "update",
                    vid,
                    record.name,
                    record.version,
                    record.value,
                    old.value if old is not None else None,
                    record.last_update_metadata,
                    txn.now,
                    record.updated_by,
                ),
            )

    def _log(self, session: _Session, event: Event) -> None:
        events = session.events
        events.append(event)
        # Compact whole revisions only, so a batch's events are never split.
        while len(events) > self.limits.max_events_per_session and events[0].revision < event.revision:
            dropped = events[0].revision
            while events and events[0].revision == dropped:
                events.popleft()
            session.compacted = dropped

    # -- reads

    def _count_read(self, record: VariableRecord | None) -> VariableRecord | None:
        if record is not None:
            self._stats.setdefault(record.id, [0, 0])[0] += 1
        return record

    async def get_variable(self, session_id: str, ref: str) -> VariableRecord | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        record = session.by_name.get(ref)
        if record is None:
            record = self._ids.get(ref)
            if record is not None and record.session_id != session_id:
                record = None
        return self._count_read(record)

    async def get_variable_by_id(self, variable_id: str) -> VariableRecord | None:
        return self._count_read(self._ids.get(variable_id))

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

    async def history(self, variable_id: str, limit: int = 100, offset: int = 0) -> list[HistoryEntry]:
        entries = list(reversed(self._history.get(variable_id, ())))
        return entries[offset : offset + limit]

    async def events_since(self, session_id: str, revision: int) -> tuple[list[Event], int]:
        session = self._sessions.get(session_id)
        if session is None:
            return [], 0
        return [e for e in session.events if e.revision > revision], session.compacted + 1
