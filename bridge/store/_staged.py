"""A transaction that stages its writes in this process until its store commits them (SQLite, Redis).

Reads see the transaction's own staged writes first, then the committed state, which each store
reads its own way (`_committed`); committed records read are remembered in `known`, by ID.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from ._interface import Transaction
from ._records import VariableRecord


class StagedTransaction(Transaction):
    def __init__(self, base: int) -> None:
        self.revision = base + 1
        self.now = time.time()
        self.staged: dict[str, VariableRecord | None] = {}  # variable ID -> new record; None: deleted
        self.deleted_by: dict[str, str] = {}
        self.restored: dict[str, Sequence[VariableRecord]] = {}
        self._staged_names: dict[str, str] = {}  # name -> variable ID, for staged records
        self._by_ref: dict[str, VariableRecord | None] = {}  # committed lookups by name or ID
        #: Variable ID -> what the store read of its committed record (the record, or more).
        self.known: dict[str, Any] = {}

    @abstractmethod
    async def _committed(self, ref: str) -> VariableRecord | None:
        """The committed variable by name or ID (remembered in `_by_ref` and `known`)."""

    @abstractmethod
    async def _count_existing(self, vids: list[str]) -> tuple[int, set[str]]:
        """How many variables the session holds, and which of `vids` it holds, as committed."""

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
        count, existing = await self._count_existing(list(self.staged))
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
