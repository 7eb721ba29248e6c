"""Read counts gathered in memory and written late, so that a served read costs no write.

A store that keeps its data outside this process counts reads here and writes them at most
`FLUSH_SECONDS` later (sooner once `MAX_PENDING` variables wait, and on close). A crash may lose
the last second's counts, never a value. A failed write gathers its counts again for the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("dspex.store")

#: Seconds a served read may wait before its count is written.
FLUSH_SECONDS = 1.0
#: Variables whose read counts wait at once before a write is forced.
MAX_PENDING = 10_000


class PendingReads:
    """Counts waiting to be written by `write(counts)` (variable ID -> reads)."""

    def __init__(self, write: Callable[[dict[str, int]], Awaitable[None]]) -> None:
        self._write = write
        self.counts: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._writing: set[asyncio.Task[None]] = set()

    def add(self, variable_ids: list[str]) -> None:
        counts = self.counts
        for vid in variable_ids:
            counts[vid] = counts.get(vid, 0) + 1
        if len(counts) >= MAX_PENDING:
            self.flush()
        elif self._timer is None and counts:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def pending(self, variable_id: str) -> int:
        return self.counts.get(variable_id, 0)

    def forget(self, variable_id: str) -> None:
        """A deleted variable's counts go with it."""
        self.counts.pop(variable_id, None)

    def flush(self) -> asyncio.Task[None] | None:
        """Starts writing what is gathered; the task, or None when nothing waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        counts, self.counts = self.counts, {}
        if not counts:
            return None
        task = asyncio.get_running_loop().create_task(self._flush(counts))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)
        return task

    async def _flush(self, counts: dict[str, int]) -> None:
        try:
            await self._write(counts)
        except Exception as exc:
            log.error("writing read counts failed: %s", exc)
            for vid, n in counts.items():
                self.counts[vid] = self.counts.get(vid, 0) + n

    async def close(self) -> None:
        """Writes what is gathered and waits for writes under way."""
        self.flush()
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)
