"""VariableUpdate: what a watch yields, and how wire events become updates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .._proto import bridge_pb2 as pb
from ..codec import decode, decode_map

#: initial: the value when the watch started; update: a write; delete: the variable was deleted;
#: resync: its current value after the watch lost track of history (see docs/watch.md);
#: dependency: a write of a variable that a watched one depends on (see `dependents`).
UpdateKind = Literal["initial", "update", "delete", "resync", "dependency"]


@dataclass(slots=True)
class VariableUpdate:
    """One change of a watched variable, as the spec's watch_variable yields it.

    `source` is the writer (a session ID, or an optimization ID for a run's candidates);
    `revision` the session revision of the write (for initial and resync: of the variable's
    last write); `version` the variable's version after it (the deleted version, for a delete).
    A `dependency` update is the write of a variable the watch does not name: `name`, `value`
    and `version` are the changed variable's, `source` names it too, and `dependents` lists
    the watched variables that depend on it, so derived values can be recomputed.
    Treat it as read-only: the watch keeps it to know the next update's old value. (Not a frozen
    dataclass: building one costs five times as much, on every update of every watcher.)
    """

    variable_id: str
    name: str
    value: Any
    old_value: Any
    metadata: dict[str, Any]
    timestamp: datetime
    source: str
    version: int
    revision: int
    kind: UpdateKind
    dependents: tuple[str, ...] = ()


def from_event(event: pb.VariableEvent, kind: UpdateKind, old_value: Any, revision: int) -> VariableUpdate:
    ts = event.timestamp
    return VariableUpdate(
        event.variable_id,
        event.name,
        None if event.deleted else decode(event.value),
        old_value,
        decode_map(event.metadata) if event.HasField("metadata") else {},
        datetime.fromtimestamp(ts.seconds + ts.nanos * 1e-9, UTC),
        event.writer,
        event.version,
        revision,
        kind,
    )
