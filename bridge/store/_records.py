"""What a store holds: sessions, variables, their history and the session event log.

Values are kept in their wire form (`pb.Value`) so that a read is answered without
re-encoding, and so that every backend stores exactly the bytes a client sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .._proto import bridge_pb2 as pb


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """Immutable: a store replaces the record to touch it or advance its revision."""

    session_id: str
    token_hash: str
    created_at: float
    last_seen: float
    ttl_seconds: float
    metadata: dict[str, str] = field(default_factory=dict)
    revision: int = 0

    @property
    def expires_at(self) -> float:
        return self.last_seen + self.ttl_seconds

    def with_changes(self, *, last_seen: float | None = None, revision: int | None = None) -> SessionRecord:
        return SessionRecord(
            self.session_id,
            self.token_hash,
            self.created_at,
            self.last_seen if last_seen is None else last_seen,
            self.ttl_seconds,
            self.metadata,
            self.revision if revision is None else revision,
        )


@dataclass(frozen=True, slots=True)
class AccessRuleRecord:
    session_pattern: str
    permissions: tuple[str, ...]
    conditions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class VariableRecord:
    """One version of a variable. Records are immutable: a write makes a new one."""

    id: str
    session_id: str
    name: str
    type: str
    value: pb.Value
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

    def next_version(
        self, value: pb.Value, revision: int, now: float, writer: str, metadata: dict[str, Any]
    ) -> VariableRecord:
        # Spelled out: dataclasses.replace introspects fields on every call, on the hot write path.
        return VariableRecord(
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
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    version: int
    revision: int
    value: pb.Value
    updated_at: float
    updated_by: str
    metadata: dict[str, Any]

    @classmethod
    def of(cls, record: VariableRecord) -> HistoryEntry:
        return cls(
            version=record.version,
            revision=record.mod_revision,
            value=record.value,
            updated_at=record.updated_at,
            updated_by=record.updated_by,
            metadata=record.last_update_metadata,
        )


EventKind = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Event:
    """One change in a session's event log; the events of one write share its revision."""

    revision: int
    kind: EventKind
    variable_id: str
    name: str
    version: int
    value: pb.Value | None
    old_value: pb.Value | None
    metadata: dict[str, Any]
    timestamp: float
    writer: str


@dataclass(frozen=True, slots=True)
class VariableStatsRecord:
    read_count: int = 0
    write_count: int = 0
