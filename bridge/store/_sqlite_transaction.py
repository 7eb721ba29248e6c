"""A transaction of the SQLite store: its body's reads and staged writes, until the writer commits them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _sqlite_reads as reads
from ._records import VariableRecord
from ._sqlite_writes import Staged
from ._staged import StagedTransaction

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore


class SQLiteTransaction(StagedTransaction):
    """Reads go through the store (its cache, else the file), and each committed record read is remembered:
    nothing else writes the session while the transaction holds it. Writes are staged here until the commit."""

    def __init__(self, store: SQLiteStore, session_id: str, revision: int) -> None:
        super().__init__(revision)
        self._store = store
        self._session_id = session_id
        self.known: dict[str, VariableRecord] = {}  # variable ID -> its committed record, as read

    async def _committed(self, ref: str) -> VariableRecord | None:
        if ref in self._by_ref:
            return self._by_ref[ref]
        record = await self._store.get_variable(self._session_id, ref)
        self._by_ref[ref] = record
        if record is not None:
            self.known[record.id] = record
        return record

    async def _count_existing(self, vids: list[str]) -> tuple[int, set[str]]:
        return await self._store.read(reads.count_variables, self._session_id, vids)

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
