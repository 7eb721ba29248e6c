"""Records as the Redis store keeps them: one binary string per version, and a write's changes as one frame.

A version is a fixed header (three lengths), its record's JSON (every field but the value,
`_codec.VARIABLES`), then the value's wire bytes as they came, an array's bytes apart. Reading
one back slices the string, so an array's bytes are not copied. Sessions, runs and trials are
their JSON alone.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ._codec import VARIABLES
from ._records import Change, LogEntry, StoredValue, VariableRecord

_HEAD = struct.Struct("<IIi")  # JSON bytes, value head bytes, array bytes (-1: none)
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<i")
_new_tuple = tuple.__new__


def dump_variable(record: VariableRecord) -> bytes:
    text = VARIABLES.dumps(record).encode()
    head, data = record.value
    if data is None:
        return b"".join((_HEAD.pack(len(text), len(head), -1), text, head))
    return b"".join((_HEAD.pack(len(text), len(head), len(data)), text, head, data))


def load_variable(blob: bytes) -> VariableRecord:
    text_len, head_len, data_len = _HEAD.unpack_from(blob)
    start = _HEAD.size
    view = memoryview(blob)
    text = view[start : start + text_len]
    head_start = start + text_len
    head = bytes(view[head_start : head_start + head_len])
    data: bytes | memoryview | None = None
    if data_len >= 0:
        data = view[head_start + head_len : head_start + head_len + data_len]
        if 2 * data_len < len(blob):  # a small array must not keep a large record (its metadata) alive
            data = bytes(data)
    return VARIABLES.loads(bytes(text), value=_new_tuple(StoredValue, (head, data)))


def dump_frames(parts: Sequence[bytes | None]) -> bytes:
    """Several byte strings (or None) as one: what a logged write's changes travel as."""
    out = [_COUNT.pack(len(parts))]
    out.extend(_LENGTH.pack(-1 if part is None else len(part)) for part in parts)
    out.extend(part for part in parts if part is not None)
    return b"".join(out)


def load_frames(blob: bytes) -> list[bytes | None]:
    (count,) = _COUNT.unpack_from(blob)
    lengths = struct.unpack_from(f"<{count}i", blob, _COUNT.size)
    view = memoryview(blob)
    position = _COUNT.size + 4 * count
    parts: list[bytes | None] = []
    for length in lengths:
        if length < 0:
            parts.append(None)
        else:
            parts.append(bytes(view[position : position + length]))
            position += length
    return parts


def log_entry(entry_id: bytes, fields: dict[bytes, bytes] | list[bytes]) -> LogEntry:
    """A stream entry of the event log as the entry it records (its fields as a dict, or as a script's flat list)."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    parts = load_frames(fields[b"c"])
    changes = []
    for i in range(0, len(parts), 3):
        old, new, writer = parts[i : i + 3]
        changes.append(
            _new_tuple(
                Change,
                (
                    load_variable(old) if old is not None else None,
                    load_variable(new) if new is not None else None,
                    writer.decode() if writer is not None else "",
                ),
            )
        )
    return _new_tuple(LogEntry, (int(entry_id.split(b"-")[0]), float(fields[b"t"]), tuple(changes)))
