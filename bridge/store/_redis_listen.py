"""Listeners of the Redis store: one task per listened session on each server reads its event log stream.

Every server's listeners, the writing server's included, are fed from the stream, so each sees
every write of the session, whichever server made it, in revision order, each write whole. A
write this server commits goes to its listeners at once, before the call returns, when it is the
next revision they expect (the reader then skips it); otherwise the reader brings it in order.
A reader starts at the session's revision in Redis when it begins (`ready`): snapshots, log
reads and commits of the session on this server wait for that, so a watch that subscribes and
then reads misses nothing in between.
It ends its listeners with None when the session ends (the delete script's `end` marker, or a
log of another history: the session was re-created), and with WatchOverflowError if it fell
so far behind that the log dropped writes it had not read (the watcher then resumes from the
log, or takes a fresh snapshot). A Redis outage pauses it; it reads on from where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import redis

from ..errors import BridgeError, WatchOverflowError
from ._records import LogEntry
from ._redis_codec import log_entry

if TYPE_CHECKING:
    from ._redis import _Local

T = TypeVar("T")

log = logging.getLogger("dspex.store")

#: How long one read waits for new writes (ms) before it checks the session is still the same one.
BLOCK_MS = 2_000
#: Entries taken per read.
READ_COUNT = 256
#: Seconds between attempts while Redis cannot be reached.
RETRY_SECONDS = 0.5


class StreamReader:
    """Reads one session's log and hands each write to the session's listeners on this server."""

    def __init__(self, client: Any, local: _Local) -> None:
        self._client = client
        self._local = local
        #: Set once the reader knows where it starts.
        self.ready = asyncio.Event()
        #: The last revision handed to the listeners (None until the reader has read where it starts).
        self.last: int | None = None
        self._stopped = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"dspex-redis-log-{local.sid}")

    def stop(self) -> None:
        self._stopped = True  # redis-py's cluster client may turn a cancellation into a connection error
        if asyncio.current_task() is not self._task:
            self._task.cancel()
        self.ready.set()  # nobody waits on a reader that is gone

    async def wait(self) -> None:
        await asyncio.gather(self._task, return_exceptions=True)

    def committed(self, entry: LogEntry) -> None:
        """A write this server just committed: handed over now if it is the next one due."""
        if self.last is not None and entry.revision == self.last + 1 and not self._task.done():
            self.last = entry.revision
            self._deliver(entry)

    def _deliver(self, entry: LogEntry | BridgeError | None) -> None:
        for listener in list(self._local.listeners):
            try:
                listener(entry)
            except Exception:  # a listener's bug must not stop the others
                log.exception("store listener failed", extra={"session": self._local.sid})

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """The call's reply, once Redis answers it."""
        while True:
            try:
                return await call()
            except redis.RedisError as exc:
                if self._stopped:
                    raise asyncio.CancelledError from exc
                log.warning("reading the event log of %r: %s; retrying", self._local.sid, exc)
                await asyncio.sleep(RETRY_SECONDS)

    async def _run(self) -> None:
        client = self._client
        meta, key = self._local.base + ":meta", self._local.base + ":log"
        revision, history_id = await self._retrying(lambda: client.hmget(meta, "rev", "log_id"))
        self.last = int(revision or 0)
        self.ready.set()
        if history_id is None:
            self._deliver(None)
            return
        while not self._stopped:
            after = {key: f"{self.last}-1"}
            reply = await self._retrying(partial(client.xread, after, count=READ_COUNT, block=BLOCK_MS))
            if not reply:
                if await self._retrying(lambda: client.hget(meta, "log_id")) != history_id:
                    self._deliver(None)
                    return
                continue
            for entry_id, fields in reply[0][1]:
                if b"end" in fields or fields.get(b"h") != history_id:
                    self._deliver(None)
                    return
                revision = int(entry_id.split(b"-")[0])
                last = self.last
                if revision <= last:  # handed over when this server committed it
                    continue
                if revision != last + 1:
                    self._deliver(
                        WatchOverflowError(
                            f"session {self._local.sid!r}: this server fell behind the event log, which dropped "
                            f"revisions {last + 1} to {revision - 1} before they were read; resume from the log",
                            session=self._local.sid,
                            resume_revision=last + 1,
                        )
                    )
                    return
                self.last = revision
                self._deliver(log_entry(entry_id, fields))
