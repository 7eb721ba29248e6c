"""What a store holds: sessions, and variables (each version a record).

Records are immutable NamedTuples: a write makes a new one, and a tuple builds several
times faster than a frozen dataclass on the write path. Values are kept in their wire form
(`StoredValue`: serialized bytes, an array's bytes apart) so a read is answered without
re-encoding; a value that validation left unchanged keeps the client's bytes. A variable's
history is its past records.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._proto import bridge_pb2 as pb

_new_tuple = tuple.__new__


class StoredValue(NamedTuple):
    """A value as kept: its serialized wire `Value`, with a top-level array's bytes held apart.

    Keeping the bytes apart lets a read send them as `array_data` without copying them
    into a message first; `head` is then the Value with empty array data.
    """

    head: bytes
    data: bytes | memoryview | None = None

    @property
    def nbytes(self) -> int:
        return len(self.head) + (len(self.data) if self.data is not None else 0)

    def to_pb(self) -> pb.Value:
        value = pb.Value.FromString(self.head)
        if self.data is not None:
            value.array_value.data = bytes(self.data)
        return value


class SessionRecord(NamedTuple):
    """A session's identity and liveness. Its revision counter is kept apart (`Store.revision`):
    it changes on every write, these fields almost never."""

    session_id: str
    token_hash: str
    created_at: float
    last_seen: float
    ttl_seconds: float
    metadata: dict[str, str] = {}

    @property
    def expires_at(self) -> float:
        return self.last_seen + self.ttl_seconds


class AccessRuleRecord(NamedTuple):
    session_pattern: str
    permissions: tuple[str, ...]
    conditions: tuple[tuple[str, str], ...] = ()


class VariableRecord(NamedTuple):
    """One version of a variable."""

    id: str
    session_id: str
    name: str
    type: str
    value: StoredValue
    constraints: dict[str, Any]
    metadata: dict[str, Any]
    dependencies: tuple[str, ...]
    access_rules: tuple[AccessRuleRecord, ...]
    version: int
    create_revision: int
    mod_revision: int
    created_at: float
    updated_at: float
    updated_by: str
    last_update_metadata: dict[str, Any]
    #: Wire size of last_update_metadata: history budgets count it with the value.
    metadata_bytes: int = 0
    #: The edges among `dependencies` that are not plain 'data' edges without metadata:
    #: (target ID, dependency type, metadata items).
    dependency_kinds: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()

    def dependency_kind(self, target_id: str) -> tuple[str, dict[str, str]]:
        """The type and metadata of the edge to `target_id` ('data' and none unless recorded)."""
        for target, kind, metadata in self.dependency_kinds:
            if target == target_id:
                return kind, dict(metadata)
        return "data", {}

    @property
    def nbytes(self) -> int:
        """What keeping this version costs, roughly: its value and its write's metadata."""
        return self.value.nbytes + self.metadata_bytes

    def next_version(
        self,
        value: StoredValue,
        revision: int,
        now: float,
        writer: str,
        metadata: dict[str, Any],
        metadata_bytes: int = 0,
    ) -> VariableRecord:
        # tuple.__new__ directly: the generated __new__ binds 17 arguments in Python, on every write.
        return _new_tuple(
            VariableRecord,
            (
                self.id,
                self.session_id,
                self.name,
                self.type,
                value,
                self.constraints,
                self.metadata,
                self.dependencies,
                self.access_rules,
                self.version + 1,
                self.create_revision,
                revision,
                self.created_at,
                now,
                writer,
                metadata,
                metadata_bytes,
                self.dependency_kinds,
            ),
        )


def created_record(
    variable_id: str,
    session_id: str,
    writer: str,
    revision: int,
    now: float,
    fields: dict[str, Any],
    dependencies: tuple[str, ...] = (),
    last_update_metadata: dict[str, Any] | None = None,
    metadata_bytes: int = 0,
    dependency_kinds: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (),
    version: int = 1,
) -> VariableRecord:
    """A new variable's record, from what a registration validated (`fields`: name, type, value,
    constraints, and optionally metadata and access_rules), created at `revision`.

    Built with tuple.__new__, as `next_version`: an import or a batch registration makes
    thousands, and the generated __new__ bound each one's 18 arguments in Python.
    """
    return _new_tuple(
        VariableRecord,
        (
            variable_id,
            session_id,
            fields["name"],
            fields["type"],
            fields["value"],
            fields["constraints"],
            fields.get("metadata", {}),
            dependencies,
            fields.get("access_rules", ()),
            version,
            revision,
            revision,
            now,
            now,
            writer,
            {} if last_update_metadata is None else last_update_metadata,
            metadata_bytes,
            dependency_kinds,
        ),
    )


class VariableStatsRecord(NamedTuple):
    """Reads served, writes applied (which is the variable's version), and time spent optimizing it."""

    read_count: int = 0
    write_count: int = 0
    optimization_time_s: float = 0.0


#: States of an optimization run; only "running" holds leases.
RUNNING = "running"
FINISH_STATES = ("completed", "converged", "stopped", "failed")
RUN_STATES = (RUNNING, *FINISH_STATES, "expired")


class OptimizationRecord(NamedTuple):
    """One optimization run over variables of one session: its lease, status and best result.

    Candidates and metrics are plain data (optimized variables are numbers and choices).
    """

    id: str
    session_id: str
    optimizer_type: str
    variable_ids: tuple[str, ...]
    variable_names: tuple[str, ...]
    config: dict[str, Any]
    max_iterations: int
    convergence_threshold: float
    direction: str
    metric: str
    seed: int | None
    state: str
    started_at: float
    last_update: float
    lease_ttl: float
    lease_expires_at: float
    #: The values the run started from, restored if no iteration ever scores.
    initial_values: dict[str, Any]
    iteration: int = 0
    best_candidate: dict[str, Any] | None = None
    best_score: float | None = None
    best_metrics: dict[str, Any] = {}
    best_iteration: int = 0
    #: The last candidate written, and its iteration: what the next report scores.
    candidate: dict[str, Any] | None = None
    candidate_iteration: int = 0
    stop_requested: bool = False
    error: str = ""
    ended_at: float | None = None
    #: The session whose client drives the run ("" when it is the owner, `session_id`): another
    #: session may optimize a variable its access rules let it optimize.
    runner_session_id: str = ""
    #: Seconds the run was active before its current segment (a resumed run has several).
    active_seconds: float = 0.0
    #: When the current segment began (0: at started_at).
    segment_started_at: float = 0.0
    #: Bytes of its trials so far (bounded by Limits.max_optimization_history_bytes).
    trial_bytes: int = 0

    @property
    def runner(self) -> str:
        return self.runner_session_id or self.session_id

    @property
    def segment_start(self) -> float:
        return self.segment_started_at or self.started_at

    def live(self, now: float) -> bool:
        """Running with its lease unexpired: it holds its variables."""
        return self.state == RUNNING and now <= self.lease_expires_at

    def elapsed(self, now: float) -> float:
        """Active seconds: earlier segments plus the current one, up to its end (or `now`)."""
        return self.active_seconds + (self.ended_at if self.ended_at is not None else now) - self.segment_start


class TrialRecord(NamedTuple):
    """One finished iteration of a run."""

    optimization_id: str
    iteration: int
    candidate: dict[str, Any]
    score: float | None
    metrics: dict[str, Any]
    timestamp: float
    error: str = ""
    #: "trial" (an iteration), or "evaluation": one the objective ran itself inside iteration `iteration`.
    kind: str = "trial"
    #: An evaluation's number within its iteration (1, 2, ...); 0 for a trial.
    evaluation: int = 0

    @property
    def state(self) -> str:
        return "ok" if self.score is not None else "failed"


class Change(NamedTuple):
    """One variable's part of a logged write: its record before and after."""

    #: None when the write created the variable.
    old: VariableRecord | None
    #: None when the write deleted it.
    new: VariableRecord | None
    #: Who wrote it: a session ID, or an optimization ID for a run's candidates.
    writer: str

    @property
    def record(self) -> VariableRecord:
        """The record that names the variable: the new one, or for a deletion the last one."""
        return self.new if self.new is not None else self.old  # type: ignore[return-value]


class LogEntry(NamedTuple):
    """One write of a session's event log: one revision, its time, and every variable it changed (a batch: several)."""

    revision: int
    time: float
    changes: tuple[Change, ...]


class EventLog(NamedTuple):
    """A read of a session's event log (`Store.event_log`)."""

    #: Names this history: a session re-created under the same ID, or a store that lost it, has another.
    history_id: str
    #: The oldest revision still held (the current revision + 1 when the log is empty).
    oldest_revision: int
    #: The session's revision when read.
    revision: int
    #: Writes from the asked revision on, oldest first.
    entries: list[LogEntry]


class SessionSnapshot(NamedTuple):
    """Some of a session's variables as one state (`Store.export_snapshot`): what an export is made from."""

    #: The session's revision the snapshot is at.
    revision: int
    #: The selected variables, sorted by name.
    variables: list[VariableRecord]
    #: ID -> name of every variable of the session: dependencies are IDs, an export names them.
    names: dict[str, str]
    #: Variable ID -> its retained versions before the current one, oldest first (with include_history).
    history: dict[str, list[VariableRecord]]
    #: The runs over the selected variables, each once: by variable in name order, each variable's
    #: runs oldest first (with include_history).
    runs: list[OptimizationRecord]
    #: Optimization ID -> its iterations, oldest first.
    trials: dict[str, list[TrialRecord]]
