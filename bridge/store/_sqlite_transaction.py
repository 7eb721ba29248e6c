"""A transaction of the SQLite store: its body's reads and staged writes, until the writer commits them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import _sqlite_reads as reads
from ._interface import Transaction
from ._records import VariableRecord
from ._sqlite_writes import Staged

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore


class SQLiteTransaction(Transaction):
    """Reads go through the store (its cache, else the file), and each committed record read is remembered:
    nothing else writes the session while the transaction holds it. Writes are staged here until the commit."""

    def __init__(self, store: SQLiteStore, session_id: str, revision: int) -> None:
        self._store = store
        self._session_id = session_id
        self.revision = revision + 1
        self.now = time.time()
        self.staged: dict[str, VariableRecord | None] = {}  # variable ID -> new record; None: deleted
        self.deleted_by: dict[str, str] = {}
        self.restored: dict[str, Sequence[VariableRecord]] = {}
        self._staged_names: dict[str, str] = {}  # name -> variable ID, for staged records
        self._by_ref: dict[str, VariableRecord | None] = {}  # committed lookups by name or ID
        self.known: dict[str, VariableRecord] = {}  # variable ID -> its committed record, as read

    async def _committed(self, ref: str) -> VariableRecord | None:
        if ref in self._by_ref:
            return self._by_ref[ref]
        record = await self._store.get_variable(self._session_id, ref)
        self._by_ref[ref] = record
        if record is not None:
            self.known[record.id] = record
        return record

    async def get(self, ref: str) -> VariableRecord | None:
        vid = self._staged_names.get(ref)
        if vid is not None:
            return self.staged[vid]
        if ref in self.staged:
            return self.staged[ref]
        record = await self._committed(ref)
        if record is not None and record.id in self.staged:
            return self.staged[record.id]
        return record

    async def variable_count(self) -> int:
        count, existing = await self._store.read(reads.count_variables, self._session_id, list(self.staged))
        for vid, record in self.staged.items():
            count += (record is not None) - (vid in existing)
        return count

    def put(self, record: VariableRecord) -> None:
        self.staged[record.id] = record
        self._staged_names[record.name] = record.id

    def restore(self, record: VariableRecord, history: Sequence[VariableRecord]) -> None:
        vid = record.id
        exists = self.staged[vid] is not None if vid in self.staged else vid in self.known
        if exists:  # a variable this transaction has not looked at is checked again at commit
            raise ValueError(f"restore() creates variables; {record.name!r} exists")
        self.put(record)
        self.restored[vid] = history

    def delete(self, record: VariableRecord, writer: str | None = None) -> None:
        self.restored.pop(record.id, None)
        self.staged[record.id] = None
        self._staged_names[record.name] = record.id
        self.deleted_by[record.id] = writer if writer is not None else record.session_id

    async def dependents(self, variable_id: str) -> list[str]:
        current = await self._store.read(reads.dependents, self._session_id, variable_id)
        current.update(self.staged)
        return sorted(r.name for r in current.values() if r is not None and variable_id in r.dependencies)

    def items(self) -> list[Staged]:
        """What the writer applies, in staging order."""
        return [
            Staged(vid, record, self.deleted_by.get(vid, ""), self.restored.get(vid, ()), vid in self.restored)
            for vid, record in self.staged.items()
        ]
