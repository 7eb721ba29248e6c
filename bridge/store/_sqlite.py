"""The durable embedded store: one SQLite file (WAL), which outlives the server process.

Everything the memory store holds is in the file: sessions with their token hashes, every
variable with every field and every retained version, read and write counts, each session's
revision and event log (with its history ID), optimization runs and their iterations, and the
store's own ID, made with the file, so that a restarted server is recognised as the same store.

The server process is the file's only user (see `_sqlite_schema.lock`). SQLite calls run off
the event loop: writes on one writer thread with its own connection, reads on a reader thread
with another, which WAL lets read while the writer commits. A transaction's body runs on the
event loop holding its session's lock; its staged writes then commit as one SQLite transaction
under one new revision, and only then are they published to listeners, in revision order.
Sessions (bounded by `Limits.max_sessions`) and their revisions are also kept in memory, so
that authenticating a call costs no query, and so are recently used variables' current records
(`_sqlite_cache`), so that a read or a write's look at the record it replaces usually costs none.

Read counts are the one thing written late (`_read_counts`): a read costs no commit; a crash may
lose the last second's counts, never a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SessionNotFoundError
from ..limits import DEFAULT_LIMITS, Limits
from . import _sqlite_reads as reads
from ._interface import Listener, Store, Transaction, check_kept
from ._read_counts import PendingReads
from ._records import (
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
from ._sqlite_cache import RecordCache
from ._sqlite_schema import check_synchronous, connect, lock, prepare
from ._sqlite_thread import After, ConnectionThread
from ._sqlite_transaction import SQLiteTransaction
from ._sqlite_writes import Published, Writes

T = TypeVar("T")
log = logging.getLogger("dspex.store")
_new_tuple = tuple.__new__

#: `PRAGMA synchronous` when none is given: an acknowledged write survives power loss (docs/stores.md).
DEFAULT_SYNCHRONOUS = "full"


@dataclass(slots=True, eq=False)
class _Session:
    """A session as the file has it (kept here too: the store is the file's only writer)."""

    record: SessionRecord
    revision: int
    #: Its event log's history ID and oldest revision kept.
    log_id: str
    log_oldest: int
    #: Held by a transaction from its body's start until its commit is published.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    listeners: list[Listener] = field(default_factory=list)


class SQLiteStore(Store):
    """Sessions, variables, history, event logs and optimization runs in one SQLite file at `path`.

    `synchronous` is SQLite's `PRAGMA synchronous` for commits: "full" (the default) syncs the
    write-ahead log on every commit, so an acknowledged write survives power loss; "normal" syncs
    only at checkpoints, so it survives the process dying (SIGKILL included) but a power loss may
    take the last writes. Raises DatabaseInUseError if another process has the file open.
    """

    def __init__(
        self, path: str | os.PathLike[str], limits: Limits = DEFAULT_LIMITS, synchronous: str = DEFAULT_SYNCHRONOUS
    ) -> None:
        super().__init__(limits)
        self.path = Path(path)
        self.synchronous = check_synchronous(synchronous)
        self._lock_fd = lock(self.path)
        writer = reader = None
        try:
            self.store_id = prepare(self.path)
            writer = ConnectionThread("dspex-sqlite-writer", lambda: connect(self.path, synchronous))
            reader = ConnectionThread("dspex-sqlite-reader", lambda: connect(self.path, "normal", read_only=True))
            loaded = reader.call(reads.sessions)
        except BaseException as exc:
            for thread in (writer, reader):
                if thread is not None:
                    thread.stop()
            os.close(self._lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise OSError(f"SQLite store {str(self.path)!r}: {exc}") from exc
            raise
        self._writer, self._reader = writer, reader
        self._writes = Writes(limits)
        self._cache = RecordCache()
        self._sessions = {record.session_id: _Session(record, *state) for record, *state in loaded}
        self._deleting: dict[str, asyncio.Event] = {}  # session ID -> set once its deletion is done
        self._reads = PendingReads(lambda counts: self._write(self._writes.count_reads, counts))
        self._closed = False

    def _stop_threads(self) -> None:
        self._writer.stop()
        self._reader.stop()

    def _write(self, fn: Callable[..., T], *args: Any, after: After | None = None) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError(f"SQLite store {str(self.path)!r} is closed")
        return self._writer.submit(fn, *args, after=after)

    def read(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Runs a query of `_sqlite_reads` on the reader thread."""
        if self._closed:
            raise RuntimeError(f"SQLite store {str(self.path)!r} is closed")
        return self._reader.submit(fn, *args)

    # -- sessions

    async def create_session(self, record: SessionRecord) -> bool:
        session_id = record.session_id
        deleting = self._deleting.get(session_id)
        if deleting is not None:  # the file still has the session a deletion is taking away: wait for it
            await deleting.wait()
        if session_id in self._sessions:
            return False
        session = _Session(record, 0, secrets.token_hex(8), 1)
        self._sessions[session_id] = session  # taken now: a concurrent create gets False
        try:
            await self._write(self._writes.create_session, record, session.log_id)
        except BaseException:
            if self._sessions.get(session_id) is session:
                del self._sessions[session_id]
            raise
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
            session.record = record = session.record._replace(last_seen=now)
            await self._write(self._writes.save_session, record)

    async def delete_session(self, session_id: str) -> int:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return 0
        done = self._deleting[session_id] = asyncio.Event()
        try:
            async with session.lock:
                try:
                    deleted = await self._write(self._writes.delete_session, session_id)
                except BaseException:
                    self._sessions.setdefault(session_id, session)  # still in the file: keep serving it
                    raise
                self._cache.writes += 1
                self._cache.drop_session(session_id)
                listeners, session.listeners = session.listeners, []
                for listener in listeners:
                    listener(None)
                return deleted
        finally:
            del self._deleting[session_id]
            done.set()

    async def session_ids(self) -> list[str]:
        return list(self._sessions)

    def _session(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        return session

    # -- writes

    async def transact(self, session_id: str, body: Callable[[Transaction], Awaitable[T]]) -> tuple[T, int]:
        session = self._session(session_id)
        await session.lock.acquire()
        committing: asyncio.Future[tuple[list[Published], int]] | None = None
        try:
            txn = SQLiteTransaction(self, session_id, session.revision)
            result = await body(txn)
            if not txn.staged:
                return result, txn.revision - 1
            if self._sessions.get(session_id) is not session:
                raise SessionNotFoundError(f"session {session_id!r} ended during the write", session=session_id)
            committing = self._write(
                self._writes.commit,
                session_id,
                txn.revision,
                txn.now,
                txn.items(),
                txn.known,
                after=lambda committed, error: self._committed(session, txn, committed, error),
            )
        finally:
            if committing is None:
                session.lock.release()
        await committing  # cancelled or not, `_committed` publishes the write and releases the session
        return result, txn.revision

    def _committed(
        self,
        session: _Session,
        txn: SQLiteTransaction,
        committed: tuple[list[Published], int] | None,
        error: BaseException | None,
    ) -> None:
        """On the event loop, once a commit is done: the revision, the log's start and the cache move on and
        listeners get the write, before the next transaction of the session may start."""
        try:
            if error is not None or committed is None:
                return
            published, session.log_oldest = committed
            session.revision = txn.revision
            cache = self._cache
            cache.writes += 1
            for vid, record in txn.staged.items():
                if record is None:
                    cache.drop(vid)
                    self._reads.forget(vid)
                else:
                    cache.put(record)
            if session.listeners:
                entry = _new_tuple(
                    LogEntry, (txn.revision, txn.now, tuple([_new_tuple(Change, change) for change in published]))
                )
                for listener in list(session.listeners):
                    try:
                        listener(entry)
                    except Exception:  # a listener's bug must not fail the write, nor hold the session
                        log.exception("store listener failed", extra={"session": session.record.session_id})
        finally:
            session.lock.release()

    # -- reads

    async def get_variable(self, session_id: str, ref: str) -> VariableRecord | None:
        cached = self._cache.get(session_id, ref)
        if cached is not None:
            return cached
        writes = self._cache.writes
        record = await self.read(reads.get_variable, session_id, ref)
        if record is not None and self._cache.writes == writes:  # no write landed meanwhile: still current
            self._cache.put(record)
        return record

    async def get_variable_by_id(self, variable_id: str) -> VariableRecord | None:
        cached = self._cache.get_by_id(variable_id)
        if cached is not None:
            return cached
        writes = self._cache.writes
        record = await self.read(reads.get_variable_by_id, variable_id)
        if record is not None and self._cache.writes == writes:
            self._cache.put(record)
        return record

    async def get_variables(self, session_id: str, refs: list[str]) -> dict[str, VariableRecord]:
        cache = self._cache
        found = {ref: record for ref in refs if (record := cache.get(session_id, ref)) is not None}
        missing = [ref for ref in refs if ref not in found]
        if missing:
            writes = cache.writes
            read = await self.read(reads.get_variables, session_id, missing)
            if cache.writes == writes:
                for record in read.values():
                    cache.put(record)
            found.update(read)
        return {ref: found[ref] for ref in refs if ref in found}

    async def snapshot(self, session_id: str, names: Iterable[str]) -> tuple[int, dict[str, VariableRecord]]:
        session = self._session(session_id)
        names = list(names)
        cached = {name: record for name in names if (record := self._cache.get(session_id, name)) is not None}
        if len(cached) == len(set(names)):  # the cache and the revision move together: one state
            return session.revision, cached
        found = await self.read(reads.snapshot, session_id, names)
        if found is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        return found

    async def export_snapshot(
        self, session_id: str, select: Callable[[str], bool] | None = None, include_history: bool = False
    ) -> SessionSnapshot:
        self._session(session_id)
        snap = await self.read(reads.export_snapshot, session_id, select, include_history)
        if snap is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        return snap

    async def list_variables(self, session_id: str, pattern: str = "") -> list[VariableRecord]:
        return await self.read(reads.list_variables, session_id, pattern)

    async def history(self, variable_id: str, limit: int = 100, offset: int = 0) -> list[VariableRecord]:
        return await self.read(reads.history, variable_id, limit, offset)

    async def count_reads(self, variable_ids: list[str]) -> None:
        self._reads.add(variable_ids)

    async def stats(self, variable_id: str) -> VariableStatsRecord:
        found = await self.read(reads.stats, variable_id)
        reads_served = found.read_count + (self._reads.pending(variable_id) if found.version else 0)
        optimizing = found.optimization_time_s
        run = found.current_run
        if run is not None and run.ended_at is None:
            optimizing += time.time() - run.segment_start
        return VariableStatsRecord(reads_served, found.version, optimizing)

    # -- the event log

    async def event_log(self, session_id: str, from_revision: int, limit: int) -> EventLog:
        session = self._session(session_id)
        if limit <= 0 or from_revision > session.revision:  # no entries to read: what the log is, from memory
            check_kept(session.record.session_id, from_revision, session.log_oldest, session.revision)
            return EventLog(session.log_id, session.log_oldest, session.revision, [])
        found = await self.read(reads.event_log, session_id, from_revision, limit)
        if found is None:
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        history_id, oldest, revision, entries = found
        check_kept(session.record.session_id, from_revision, oldest, revision)
        return EventLog(history_id, oldest, revision, entries)

    def listen(self, session_id: str, listener: Listener) -> Callable[[], None]:
        session = self._session(session_id)
        session.listeners.append(listener)

        def stop() -> None:
            with contextlib.suppress(ValueError):  # already gone with its session
                session.listeners.remove(listener)

        return stop

    # -- optimization runs

    async def claim_optimization(self, record: OptimizationRecord, now: float) -> OptimizationRecord | None:
        return await self._write(self._writes.claim_optimization, record, now)

    async def update_optimization(
        self, optimization_id: str, change: Callable[[OptimizationRecord], OptimizationRecord]
    ) -> OptimizationRecord | None:
        """Compare-and-set: `change` is applied to the run as read, and stored only if no other change
        came in between; else it is applied again to the newer record."""
        while True:
            found = await self.read(reads.get_run, optimization_id)
            if found is None:
                return None  # forgotten meanwhile (its variables or session were deleted)
            seq, previous = found
            record = change(previous)
            ended = previous.ended_at is None and record.ended_at is not None
            segment = record.ended_at - record.segment_start if ended else None  # type: ignore[operator]
            if await self._write(self._writes.update_optimization, record, seq, segment):
                return record

    async def get_optimization(self, optimization_id: str) -> OptimizationRecord | None:
        found = await self.read(reads.get_run, optimization_id)
        return None if found is None else found[1]

    async def variable_optimizations(self, variable_id: str) -> list[OptimizationRecord]:
        return await self.read(reads.variable_runs, variable_id)

    async def live_optimizations(self) -> list[OptimizationRecord]:
        return await self.read(reads.running)

    async def add_trial(self, trial: TrialRecord) -> None:
        await self._write(self._writes.add_trial, trial)

    async def trials(self, optimization_id: str) -> list[TrialRecord]:
        return await self.read(reads.get_trials, optimization_id)

    async def close(self) -> None:
        """Writes the read counts still gathered, then closes both connections and the lock file."""
        if self._closed:
            return
        await self._reads.close()
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._stop_threads)
        os.close(self._lock_fd)
