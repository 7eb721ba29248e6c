"""The store contract every backend (memory now; sqlite, redis later) keeps.

Writes go through `transact(session_id, body)`: the body reads through a `Transaction`,
stages puts and deletes, and the store commits them all under one new session revision,
or none of them if the body raises. It returns the body's result and the session's
revision after the call (unchanged when the body staged nothing). A backend with optimistic concurrency may run the
body more than once, so bodies must not have side effects outside the transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..limits import DEFAULT_LIMITS, Limits
from ._records import OptimizationRecord, SessionRecord, TrialRecord, VariableRecord, VariableStatsRecord

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
    def delete(self, record: VariableRecord) -> None:
        """Stages the deletion of a variable."""

    @abstractmethod
    async def dependents(self, variable_id: str) -> list[str]:
        """Names of the session's variables that list this one as a dependency."""


class Store(ABC):
    """Sessions, variables and their history. Backends differ only in where they keep them.

    The session event log that watch needs (resume from a revision, OUT_OF_RANGE once
    compacted) arrives with the watch issue; it hooks in where a commit applies its records.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits

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
        this one), nothing changes and that run is returned. Runs beyond the per-variable
        retention (`Limits.max_optimization_runs`) are forgotten with their trials.
        """

    @abstractmethod
    async def save_optimization(self, record: OptimizationRecord) -> None:
        """Replaces a stored run (its status changed). When it ends (ended_at set), its time is
        added to each variable's `optimization_time_s`."""

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
