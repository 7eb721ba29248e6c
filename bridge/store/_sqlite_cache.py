"""The SQLite store's cache of variables' current records, so that most reads and a write's read of the
record it replaces cost no trip to the reader thread.

It stays exact because the store is its file's only writer: every commit puts the records it
wrote (and drops those it deleted) once it is durable. A record read from the file is put only
if no write landed while it was being read (`writes` did not move), so an older read can never
replace a newer commit. Bounded in records and bytes (least recently used go first); a record
with a large value is read from the file each time rather than crowding the cache.
"""

from __future__ import annotations

from collections import OrderedDict

from ._records import VariableRecord

MAX_RECORDS = 100_000
MAX_BYTES = 256 * 1024 * 1024
#: A value bigger than this is not cached.
MAX_RECORD_BYTES = 1024 * 1024


def _size(record: VariableRecord) -> int:
    value = record.value
    return len(value.head) + (len(value.data) if value.data is not None else 0) + record.metadata_bytes


class RecordCache:
    def __init__(self) -> None:
        self._by_id: OrderedDict[str, tuple[VariableRecord, int]] = OrderedDict()  # oldest use first
        self._by_name: dict[str, dict[str, str]] = {}  # session ID -> name -> variable ID
        self._bytes = 0
        #: Bumped by every change of the file's variables: a read that saw it move is not cached.
        self.writes = 0

    def get(self, session_id: str, ref: str) -> VariableRecord | None:
        """The session's variable by name, else by ID, if cached."""
        vid = self._by_name.get(session_id, {}).get(ref, ref)
        found = self._by_id.get(vid)
        if found is None or found[0].session_id != session_id:
            return None
        self._by_id.move_to_end(vid)
        return found[0]

    def get_by_id(self, variable_id: str) -> VariableRecord | None:
        found = self._by_id.get(variable_id)
        if found is None:
            return None
        self._by_id.move_to_end(variable_id)
        return found[0]

    def put(self, record: VariableRecord) -> None:
        self.drop(record.id)
        size = _size(record)
        if size > MAX_RECORD_BYTES:
            return
        self._by_id[record.id] = (record, size)
        self._by_name.setdefault(record.session_id, {})[record.name] = record.id
        self._bytes += size
        while len(self._by_id) > MAX_RECORDS or self._bytes > MAX_BYTES:
            self.drop(next(iter(self._by_id)))

    def drop(self, variable_id: str) -> None:
        found = self._by_id.pop(variable_id, None)
        if found is None:
            return
        record, size = found
        self._bytes -= size
        names = self._by_name.get(record.session_id)
        if names is not None and names.get(record.name) == variable_id:
            del names[record.name]
            if not names:
                del self._by_name[record.session_id]

    def drop_session(self, session_id: str) -> None:
        for vid in list(self._by_name.get(session_id, {}).values()):
            self.drop(vid)
