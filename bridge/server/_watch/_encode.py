"""Log entries and records -> Watch stream messages, each event encoded once however many watchers send it.

A WatchResponse is its small head (kind, revision) followed by its repeated `events`, and
protobuf reads concatenated fields as one message. So each change is serialized once into a
framed `events` field, and a watcher's message is the head joined with the fields it selects.
Stored values are already serialized `Value`s: they are framed in as they are, never re-encoded
(an array's bytes, kept apart, are framed as a second `array_value` occurrence, which protobuf
merges into the first).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from ..._framing import bytes_field_tag, varint
from ..._proto import bridge_pb2 as pb
from ...codec import map_into
from ...limits import Limits
from ...store import Change, LogEntry, StoredValue, VariableRecord

_EVENT = pb.VariableEvent.DESCRIPTOR.fields_by_name
#: The tags of the length-delimited fields framed here (they are constants: computed once).
_VALUE_TAG = bytes_field_tag(_EVENT["value"].number)
_OLD_VALUE_TAG = bytes_field_tag(_EVENT["old_value"].number)
_EVENTS_TAG = bytes_field_tag(pb.WatchResponse.DESCRIPTOR.fields_by_name["events"].number)
_ARRAY_TAG = bytes_field_tag(pb.Value.DESCRIPTOR.fields_by_name["array_value"].number)
_DATA_TAG = bytes_field_tag(pb.NDArray.DESCRIPTOR.fields_by_name["data"].number)
_ONE_BYTE = [bytes((n,)) for n in range(0x80)]  # the varint of every length below 128


def _prefix(tag: bytes, length: int) -> bytes:
    return tag + (_ONE_BYTE[length] if length < 0x80 else varint(length))


def _value_field(tag: bytes, value: StoredValue) -> bytes:
    head, data = value.head, value.data
    if data is None:
        return _prefix(tag, len(head)) + head
    inner = _prefix(_DATA_TAG, len(data))
    array = _prefix(_ARRAY_TAG, len(inner) + len(data))
    size = len(head) + len(array) + len(inner) + len(data)
    return b"".join((_prefix(tag, size), head, array, inner, data))


def _event(
    record: VariableRecord,
    revision: int,
    time: float,
    writer: str,
    limits: Limits,
    *,
    deleted: bool = False,
    old: VariableRecord | None = None,
) -> bytes:
    """One framed `events` field."""
    seconds = int(time)
    msg = pb.VariableEvent(
        variable_id=record.id,
        name=record.name,
        deleted=deleted,
        version=record.version,
        mod_revision=revision,
        writer=writer,
        timestamp=Timestamp(seconds=seconds, nanos=int((time - seconds) * 1e9)),
    )
    if not deleted and record.last_update_metadata:
        map_into(msg.metadata, record.last_update_metadata, limits)
    head = msg.SerializeToString()
    value = b"" if deleted else _value_field(_VALUE_TAG, record.value)
    old_value = b"" if old is None else _value_field(_OLD_VALUE_TAG, old.value)
    size = len(head) + len(value) + len(old_value)
    return b"".join((_prefix(_EVENTS_TAG, size), head, value, old_value))


def dependency_event(change: Change, entry: LogEntry, limits: Limits, dependents: Sequence[str]) -> bytes:
    """A change of a variable the watch does not name, framed with the watched names that depend on it."""
    event = change_event(change, entry, limits)
    extra = pb.VariableEvent(dependents=dependents).SerializeToString()
    inner = _unframed(event)
    return _prefix(_EVENTS_TAG, len(inner) + len(extra)) + inner + extra


def _unframed(field: bytes) -> bytes:
    """The message inside one framed `events` field (its tag, then its varint length, then it)."""
    position = len(_EVENTS_TAG)
    while field[position] & 0x80:
        position += 1
    return field[position + 1 :]


def change_event(change: Change, entry: LogEntry, limits: Limits) -> bytes:
    old, new = change.old, change.new
    if new is None:
        assert old is not None
        return _event(old, entry.revision, entry.time, change.writer, limits, deleted=True, old=old)
    return _event(new, entry.revision, entry.time, change.writer, limits, old=old)


def snapshot_event(record: VariableRecord, limits: Limits) -> bytes:
    return _event(record, record.mod_revision, record.updated_at, record.updated_by, limits)


def message(kind: pb.WatchMessageKind, revision: int, events: Sequence[bytes] = ()) -> bytes:
    head = pb.WatchResponse(kind=kind, revision=revision).SerializeToString()
    return head + b"".join(events) if events else head


def header(revision: int, header: pb.WatchHeader) -> bytes:
    return pb.WatchResponse(kind=pb.WATCH_HEADER, revision=revision, header=header).SerializeToString()


class Published:
    """One committed write as its subscribers share it: the entry, with its events encoded on first use."""

    __slots__ = ("_events", "_whole", "entry", "limits")

    def __init__(self, entry: LogEntry, limits: Limits) -> None:
        self.entry = entry
        self.limits = limits
        self._events: list[bytes] | None = None
        self._whole: bytes | None = None

    def event(self, index: int) -> bytes:
        """One change's framed `events` field."""
        events = self._events
        if events is None:
            events = self._events = [change_event(c, self.entry, self.limits) for c in self.entry.changes]
        return events[index]

    def message(self, picked: Sequence[int] | None) -> bytes:
        """The WATCH_CHANGE message with the changes at `picked` (None: all of them)."""
        if picked is None and self._whole is not None:
            return self._whole
        events = self._events
        if events is None:
            events = self._events = [change_event(c, self.entry, self.limits) for c in self.entry.changes]
        if picked is None:
            self._whole = message(pb.WATCH_CHANGE, self.entry.revision, events)
            return self._whole
        return message(pb.WATCH_CHANGE, self.entry.revision, [events[i] for i in picked])
