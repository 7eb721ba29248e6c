"""A transaction of the Redis store: optimistic, checked by the commit script against the session's revision.

The body reads at one revision (`base`): records this server knows to be current at that
revision come from its cache, the rest from Redis, each read answering with the revision it saw.
A read that sees another revision, or a commit that finds the session moved on (another server
wrote it), ends the attempt with `Conflict`, and the store runs the body again on fresh reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._records import VariableRecord
from ._staged import StagedTransaction

if TYPE_CHECKING:
    from ._redis import RedisStore, _Local


class Conflict(BaseException):
    """The session moved on under this attempt. A BaseException, so that a body's own `except Exception`
    cannot swallow it: the attempt must end, and the store retries it."""


class RedisTransaction(StagedTransaction):
    def __init__(self, store: RedisStore, local: _Local, base: int, generation: bytes | None) -> None:
        super().__init__(base)
        self._store = store
        self._local = local
        self.base = base
        #: The session's generation it reads in (see `_Local.generation`).
        self.generation = generation
        #: Whether a read from Redis confirmed `base` (else only this server's copy vouches for it).
        self.verified = False
        #: Variable ID -> (its committed record, the version as stored) for every committed record read.
        self.known: dict[str, tuple[VariableRecord, bytes]] = {}
        #: Names the session did not hold at `base`.
        self.absent: set[str] = set()

    def check(self, revision: int) -> None:
        """A read's revision: another than `base` (or another generation) means the session moved on."""
        if revision != self.base or self._local.generation != self.generation:
            raise Conflict
        self.verified = True

    async def _committed(self, ref: str) -> VariableRecord | None:
        if ref in self._by_ref:
            return self._by_ref[ref]
        local = self._local
        found = local.cached(ref) if local.revision == self.base and local.generation == self.generation else None
        if found is None:
            revision, found = await self._store.read_variable(local, ref)
            self.check(revision)
        if found is None:
            self.absent.add(ref)
            self._by_ref[ref] = None
            return None
        record = found[0]
        self._by_ref[ref] = record
        self.known[record.id] = found
        return record

    async def _count_existing(self, vids: list[str]) -> tuple[int, set[str]]:
        revision, count, existing = await self._store.count_variables(self._local, vids)
        self.check(revision)
        return count, existing

    async def dependents(self, variable_id: str) -> list[str]:
        revision, records = await self._store.all_variables(self._local)
        self.check(revision)
        current: dict[str, VariableRecord | None] = {r.id: r for r in records}
        current.update(self.staged)
        return sorted(r.name for r in current.values() if r is not None and variable_id in r.dependencies)

    def original_known(self, vid: str) -> bool:
        """Whether this transaction knows the variable's committed record (or that there is none)."""
        if vid in self.known or (vid in self._by_ref and self._by_ref[vid] is None):
            return True
        record = self.staged[vid]
        return record is not None and record.name in self.absent
