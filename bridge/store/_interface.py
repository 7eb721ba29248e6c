"""The store contract every backend (memory, SQLite, Redis) keeps.

Writes go through `transact(session_id, body)`: the body reads through a `Transaction`,
stages puts and deletes, and the store commits them all under one new session revision,
or none of them if the body raises. It returns the body's result and the session's
revision after the call (unchanged when the body staged nothing). A backend with optimistic concurrency may run the
body more than once, so bodies must not have side effects outside the transaction.

Every committed write also appends one entry to the session's event log (`event_log`), which
watch streams read to resume, and is handed to the session's listeners (`listen`), which fan it
out live. Both see the same writes in the same order: revision order, each write whole.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from ..errors import BridgeError, RevisionCompactedError
from ..limits import DEFAULT_LIMITS, Limits
from ._records import (
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


class Transaction(ABC):
    """A session-scoped unit of work; reads see this transaction's own staged writes."""

    #: The revision the commit will take.
    revision: int
    #: The commit's timestamp (seconds since the epoch), shared by every staged write.
    now: float

    @abstractmethod
    async def get(self, ref: str) -> VariableRecord | None:
        """The session's variable with this name, or with this ID, or None."""

    @abstractmethod
    async def variable_count(self) -> int:
        """How many variables the session will hold if the transaction commits."""

    @abstractmethod
    def put(self, record: VariableRecord) -> None:
        """Stages a created (version 1) or updated variable."""

    @abstractmethod
    def restore(self, record: VariableRecord, history: Sequence[VariableRecord]) -> None:
        """Stages a variable the session does not hold together with earlier versions of it (an import
        restoring what an export kept), oldest first. Each joins the variable's history as if written in
        turn, within the retention; the event log records only the creation of `record`."""

    @abstractmethod
    def delete(self, record: VariableRecord, writer: str | None = None) -> None:
        """Stages the deletion of a variable; the event log names `writer` (default: the variable's session)."""

    @abstractmethod
    async def dependents(self, variable_id: str) -> list[str]:
        """Names of the session's variables that list this one as a dependency."""


def check_kept(session_id: str, from_revision: int, oldest: int, revision: int) -> None:
    """RevisionCompactedError when an event-log read asks for writes older than the log keeps (every store's)."""
    if from_revision < oldest:
        raise RevisionCompactedError(
            f"session {session_id!r}: revision {from_revision} is no longer in the event log "
            f"(it keeps revisions {oldest} to {revision}); take a fresh snapshot",
            session=session_id,
            revision=from_revision,
            oldest_revision=oldest,
        )


#: Called with each committed write of a session, or with None once the session has ended, or (a store
#: that feeds listeners from a shared log, which can outrun them) with the error that ended the feed.
Listener = Callable[[LogEntry | BridgeError | None], None]


class Store(ABC):
    """Sessions, variables, their history and each session's event log. Backends differ only in where they keep them."""

    #: Whether other servers write this store too (Redis): then a change this process did not make reaches
    #: it only through the store (its event log, or a fresh read), never through in-process notifications.
    shared = False

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        #: Names the data this store holds. A durable backend keeps its ID across restarts; a memory
        #: store gets a new one each time, so a client can tell "my session ended" from "the server
        #: lost everything" (and re-create its session).
        self.store_id = secrets.token_hex(8)

    # -- sessions

    @abstractmethod
    async def create_session(self, record: SessionRecord) -> bool:
        """Stores a new session; False (and nothing changed) if the ID is taken."""

    @abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abstractmethod
    async def revision(self, session_id: str) -> int:
        """The session's current revision (0 before its first write; 0 for an unknown session)."""

    @abstractmethod
    async def touch_session(self, session_id: str, now: float) -> None:
        """Records activity, which pushes back the session's expiry."""

    @abstractmethod
    async def delete_session(self, session_id: str) -> int:
        """Deletes a session with all its variables; returns how many variables went."""

    @abstractmethod
    async def session_ids(self) -> list[str]: ...

    # -- variables

    @abstractmethod
    async def transact(self, session_id: str, body: Callable[[Transaction], Awaitable[T]]) -> tuple[T, int]:
        """Runs `body` and commits its staged writes atomically under one new revision."""

    async def update(
        self, session_id: str, ref: str, make: Callable[[VariableRecord, int, float], VariableRecord]
    ) -> tuple[VariableRecord, int] | None:
        """Writes one existing variable: the commonest write, which backends may make cheaper.

        `make(record, revision, now)` returns the next version (or raises, and nothing
        changes). Returns the new record and its revision, or None if the session has no
        variable `ref`. Same guarantees as a transaction of one put.
        """

        async def body(txn: Transaction) -> VariableRecord | None:
            record = await txn.get(ref)
            if record is None:
                return None
            updated = make(record, txn.revision, txn.now)
            txn.put(updated)
            return updated

        updated, revision = await self.transact(session_id, body)
        return None if updated is None else (updated, revision)

    @abstractmethod
    async def get_variable(self, session_id: str, ref: str) -> VariableRecord | None:
        """The session's variable by name or ID."""

    @abstractmethod
    async def get_variable_by_id(self, variable_id: str) -> VariableRecord | None:
        """A variable of any session by ID (the caller checks access)."""

    async def get_variables(self, session_id: str, refs: list[str]) -> dict[str, VariableRecord]:
        """Found refs only; backends override this to fetch in one round trip."""
        found = {}
        for ref in refs:
            record = await self.get_variable(session_id, ref)
            if record is not None:
                found[ref] = record
        return found

    @abstractmethod
    async def snapshot(self, session_id: str, names: Iterable[str]) -> tuple[int, dict[str, VariableRecord]]:
        """The session's revision and those of its variables named in `names` that exist, read as one state."""

    @abstractmethod
    async def export_snapshot(
        self, session_id: str, select: Callable[[str], bool] | None = None, include_history: bool = False
    ) -> SessionSnapshot:
        """The session's variables whose names `select` accepts (all if None), read as one state at one
        revision; with `include_history`, their earlier versions and their optimization runs with every
        iteration. SessionNotFoundError for an unknown session."""

    # -- the event log

    @abstractmethod
    async def event_log(self, session_id: str, from_revision: int, limit: int) -> EventLog:
        """Logged writes with revision >= `from_revision`, oldest first, at most `limit` of them.

        Retention is bounded by `Limits.max_event_log_entries` and `max_event_log_bytes`; the
        oldest whole writes go first, and the latest is always kept. Raises RevisionCompactedError
        (details: oldest_revision) when `from_revision` is older than the oldest write kept, and
        SessionNotFoundError for an unknown session. `from_revision` = revision + 1 reads no entries.
        """

    @abstractmethod
    def listen(self, session_id: str, listener: Listener) -> Callable[[], None]:
        """Hands each write the session commits from now on to `listener`, on the event loop, in revision
        order, and None once the session ends (or an error that ends the feed, after which nothing
        more comes). Returns the call that stops it. SessionNotFoundError for an unknown session; a
        store that cannot tell at once reports it with None."""

    @abstractmethod
    async def count_reads(self, variable_ids: list[str]) -> None:
        """Counts one served read of each variable (called once access was granted and the call succeeded)."""

    @abstractmethod
    async def list_variables(self, session_id: str, pattern: str = "") -> list[VariableRecord]:
        """The session's variables whose names match a glob (all if empty), sorted by name."""

    @abstractmethod
    async def stats(self, variable_id: str) -> VariableStatsRecord: ...

    @abstractmethod
    async def history(self, variable_id: str, limit: int = 100, offset: int = 0) -> list[VariableRecord]:
        """Retained versions (each the variable's record as it was), newest first."""

    # -- optimization runs: leases, status, per-iteration history

    @abstractmethod
    async def claim_optimization(self, record: OptimizationRecord, now: float) -> OptimizationRecord | None:
        """Stores a running run and makes it the current run of each of its variables, atomically.

        If any variable's current run is still live at `now` (another run, or an earlier save of
        this one), nothing changes and that run is returned. Past the per-variable retention
        (`Limits.max_optimization_runs`) a variable forgets its oldest runs; a run and its
        trials go once no variable keeps it (deleting a variable does the same).
        """

    @abstractmethod
    async def update_optimization(
        self, optimization_id: str, change: Callable[[OptimizationRecord], OptimizationRecord]
    ) -> OptimizationRecord | None:
        """Applies `change` to the run as stored, atomically, and returns the result.

        `change` gets the latest record (a stop another client requested meanwhile, say) and
        returns the next one, or raises (nothing changes). None when the run is not stored.
        When the run ends (ended_at set), its current segment's time is added to each
        variable's `optimization_time_s`. A backend that retries must call `change` again.
        """

    @abstractmethod
    async def get_optimization(self, optimization_id: str) -> OptimizationRecord | None: ...

    @abstractmethod
    async def variable_optimizations(self, variable_id: str) -> list[OptimizationRecord]:
        """The retained runs over a variable, oldest first; the last is its current run."""

    @abstractmethod
    async def live_optimizations(self) -> list[OptimizationRecord]:
        """Runs in state running (their leases may have lapsed): what the reaper checks."""

    @abstractmethod
    async def add_trial(self, trial: TrialRecord) -> None:
        """Appends a finished iteration to its run's history."""

    @abstractmethod
    async def trials(self, optimization_id: str) -> list[TrialRecord]:
        """A run's iterations, oldest first."""

    @abstractmethod
    async def close(self) -> None:
        """Releases connections and files."""
