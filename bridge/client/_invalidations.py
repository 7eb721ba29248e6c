"""The client end of the Invalidations stream: keeps a SessionContext's cache coherent with the server.

Opened lazily by the first read that could be cached, and kept open while the SessionContext
is. While it is up, reads carry its tracking ID and the server pushes an invalidation for
every later write of what they read (see bridge.proto, "Client-side caching"). When it
breaks, the cache is flushed (writes made meanwhile are not replayed) and nothing is cached
until it is back: it reconnects with backoff and jitter. A session the server no longer
knows (ended, or lost in a restart) is not re-opened by it: the next read tries again, once
the backoff allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

import grpc

from .._proto import bridge_pb2 as pb
from ._backoff import Backoff
from ._cache import VariableCache
from ._watch_stream import RESUMABLE_CODES, SERVICE

log = logging.getLogger("dspex.cache")

#: How long the first cacheable read waits for the stream to open before it reads uncached.
FIRST_OPEN_SECONDS = 5.0

_REASONS = {
    pb.INVALIDATION_WRITTEN: "written",
    pb.INVALIDATION_DELETED: "deleted",
    pb.INVALIDATION_TRACKING_LIMIT: "tracking_limit",
}


class CachingSession(Protocol):
    """What the stream needs of its SessionContext."""

    channel: grpc.aio.Channel
    _token: str


class InvalidationStream:
    """One SessionContext's invalidation stream, across reconnects."""

    def __init__(self, session: CachingSession, cache: VariableCache, backoff: Backoff | None = None) -> None:
        self.session = session
        self.cache = cache
        self.backoff = backoff or Backoff()
        #: The open stream's tracking ID, for reads; None while it is down.
        self.tracking_id: str | None = None
        #: Times the cache was flushed because the stream broke.
        self.losses = 0
        self._rpc: Callable[..., grpc.aio.UnaryStreamCall] = session.channel.unary_stream(
            f"/{SERVICE}/Invalidations",
            request_serializer=pb.InvalidationsRequest.SerializeToString,
            response_deserializer=pb.InvalidationsResponse.FromString,
        )
        self._task: asyncio.Task[None] | None = None
        self._call: grpc.aio.UnaryStreamCall | None = None
        self._closed = False
        self._retry_at = 0.0  # after a stream that could not be kept: the earliest a read may open it again
        self._changed = asyncio.Event()

    async def current(self) -> str | None:
        """The tracking ID to read with: opens the stream if it is not running (the first time, waiting for it)."""
        if self.tracking_id is not None or self._closed:
            return self.tracking_id
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                return None
            first = self._task is None
            self._task = loop.create_task(self._run(), name="dspex-invalidations")
            if first:  # later reopens don't hold reads up: those read uncached meanwhile
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait_settled(), FIRST_OPEN_SECONDS)
        return self.tracking_id

    async def _wait_settled(self) -> None:
        while self.tracking_id is None and self._task is not None and not self._task.done():
            await self._changed.wait()

    async def wait_until(self, up: bool) -> None:
        """Returns once the stream is up (or down): for tests and tools; wrap it in a timeout."""
        while (self.tracking_id is not None) != up:
            await self._changed.wait()

    def reopen(self) -> None:
        """After close(): the SessionContext was initialized again, so reads may open a stream again."""
        if self._closed:
            self._closed, self._task, self._retry_at = False, None, 0.0

    def close(self) -> None:
        """Ends the stream and flushes the cache: the SessionContext is closing."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        if self._task is not None:
            self._task.cancel()
        self._lost()

    # ------------------------------------------------------------ the stream's task

    async def _run(self) -> None:
        reconnecting = False
        while not self._closed:
            token = self.session._token
            if not token:
                return
            call = self._call = self._rpc(pb.InvalidationsRequest(session_token=token), wait_for_ready=reconnecting)
            try:
                first = await call.read()
                if first is grpc.aio.EOF:
                    raise ConnectionError("the invalidation stream ended before it opened")
                self.cache.clear()  # whatever was filled before could have missed writes
                self.tracking_id = first.tracking_id
                self.backoff.reset()
                self._notify()
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        break
                    await self._apply(message)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RESUMABLE_CODES:
                    log.info("cache invalidation stream ended (%s: %s)", exc.code().name, exc.details())
                    self._retry_at = asyncio.get_running_loop().time() + self.backoff.next_delay()
                    return
                log.info("cache invalidation stream reconnecting after %s", exc.code().name)
            except ConnectionError as exc:
                log.info("cache invalidation stream reconnecting: %s", exc)
            finally:
                self._call = None
                self._lost()
            reconnecting = True
            await asyncio.sleep(self.backoff.next_delay())

    async def _apply(self, message: pb.InvalidationsResponse) -> None:
        for item in message.invalidations:
            reason = _REASONS.get(item.reason, "invalidated")
            try:
                if item.reason == pb.INVALIDATION_WRITTEN:
                    await self.cache.invalidate(item.variable_id, reason, version=item.version, name=item.name)
                else:
                    await self.cache.invalidate(item.variable_id or item.name, reason, name=item.name)
            except Exception:  # a subscriber's callback failed: the entry is dropped all the same
                log.exception("cache invalidation callback failed", extra={"variable": item.name})

    def _lost(self) -> None:
        if self.tracking_id is not None:
            self.tracking_id = None
            self.losses += 1
        self.cache.clear()
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
