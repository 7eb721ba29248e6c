"""Invalidations: the server side of client-side caching (see bridge.proto, "Client-side caching").

A client opens one stream and puts its tracking ID in its reads. A read tracks its ref
*before* the store is read, so no write can fall between the read and the tracking: every
later write of a tracked variable becomes an Invalidation on the stream. Pending
invalidations are kept by variable, latest version winning; the tracked set is bounded,
dropping (and invalidating) its least recently read ref. A client that stops reading its
stream while more than `max_tracked_variables` invalidations pile up has its stream ended
with UNAVAILABLE: it flushes its cache and reconnects, which costs it nothing it relied on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from ..._proto import bridge_pb2 as pb
from ...errors import BridgeError, SessionNotFoundError
from ...limits import Limits
from .._ids import new_id
from .._sessions import Ctx
from ._encode import Published
from ._hub import WatchHubs
from ._rpc import WatchServicer

#: Invalidations per message: a burst of writes is sent in a few messages, not one per write.
MAX_PER_MESSAGE = 512


class _Ended(Exception):
    """The hub ended the subscription: the host is shutting down."""


class _FellBehind(Exception):
    """More invalidations are pending than the stream may hold: the client must flush and reconnect."""


class Tracker:
    """One Invalidations stream: the refs it tracks, and the invalidations not yet sent. A hub subscriber."""

    def __init__(self, session_id: str, limits: Limits) -> None:
        self.observer = session_id
        self.tracking_id = new_id("trk_")
        self.limit = limits.max_tracked_variables
        self.keys: dict[str, None] = {}  # names and IDs, least recently read first
        self.pending: dict[str, pb.Invalidation] = {}  # variable ID (or dropped ref) -> its latest invalidation
        self.ended: BridgeError | _Ended | _FellBehind | None = None
        self.wake = asyncio.Event()

    def track(self, refs: list[str]) -> None:
        """Called by a read, before the store is read."""
        if self.ended is not None:
            return
        keys = self.keys
        for ref in refs:
            keys.pop(ref, None)
            keys[ref] = None
        while len(keys) > self.limit:
            dropped = next(iter(keys))
            del keys[dropped]
            self.pending[dropped] = pb.Invalidation(name=dropped, reason=pb.INVALIDATION_TRACKING_LIMIT)
            self._bound()
            self.wake.set()

    def _bound(self) -> None:
        if len(self.pending) > self.limit and self.ended is None:
            self.pending.clear()
            self.keys.clear()
            self.ended = _FellBehind()

    # ------------------------------------------------------------ the hub's side (never blocks, never raises)

    def offer(self, item: Published) -> None:
        if self.ended is not None:
            return
        keys = self.keys
        for change in item.entry.changes:
            record = change.record
            if record.name not in keys and record.id not in keys:
                continue
            if change.new is None:
                invalidation = pb.Invalidation(variable_id=record.id, name=record.name, reason=pb.INVALIDATION_DELETED)
            else:
                invalidation = pb.Invalidation(
                    variable_id=record.id, name=record.name, version=record.version, reason=pb.INVALIDATION_WRITTEN
                )
            self.pending.pop(record.id, None)  # re-inserted at the end: sent in the order of the writes
            self.pending[record.id] = invalidation
            self._bound()
            self.wake.set()

    def end(self, error: BridgeError | None) -> None:
        self.ended = error if error is not None else _Ended()
        self.wake.set()

    # ------------------------------------------------------------ the RPC's side

    async def run(self, context: Ctx, store_id: str) -> None:
        await context.write(pb.InvalidationsResponse(tracking_id=self.tracking_id, store_id=store_id))
        while True:
            while not self.pending:
                if isinstance(self.ended, _Ended):
                    await _shutting_down(context, "the server is shutting down; flush the cache and reconnect")
                    return
                if isinstance(self.ended, _FellBehind):
                    await _shutting_down(
                        context,
                        f"more than {self.limit} invalidations were waiting to be read (max_tracked_variables); "
                        "flush the cache and reconnect",
                    )
                    return
                if self.ended is not None:
                    raise self.ended
                self.wake.clear()
                await self.wake.wait()
            batch = []
            for key in list(self.pending)[:MAX_PER_MESSAGE]:
                batch.append(self.pending.pop(key))
            await context.write(pb.InvalidationsResponse(invalidations=batch))


async def _shutting_down(context: Ctx, why: str) -> None:
    """UNAVAILABLE, which the client answers by flushing its cache and reconnecting."""
    if context.done() or context.cancelled():
        return
    try:
        await context.abort(grpc.StatusCode.UNAVAILABLE, why)
    except grpc.aio.AbortError:
        raise
    except Exception:  # the client went away while the server stopped
        return


class InvalidationServicer(WatchServicer):
    """Watch plus the Invalidations RPC, and the tracking of reads that carry a tracking ID."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invalidation_hubs = WatchHubs(
            self.store,
            self.limits,
            "invalidation streams",
            ("max_invalidation_streams", "max_invalidation_streams_per_session"),
        )
        self._trackers: dict[str, Tracker] = {}

    async def Invalidations(self, request: pb.InvalidationsRequest, context: Ctx) -> None:
        try:
            caller = await self._authenticate(request, context)
        except SessionNotFoundError as exc:  # the store's ID tells a client "ended" from "the host lost it"
            raise SessionNotFoundError(exc.message, **{**exc.details, "store_id": self.store.store_id}) from None
        tracker = Tracker(caller, self.limits)
        self.invalidation_hubs.join(caller, tracker)
        self._trackers[tracker.tracking_id] = tracker
        try:
            await tracker.run(context, self.store.store_id)
        finally:
            del self._trackers[tracker.tracking_id]
            self.invalidation_hubs.leave(tracker)

    def _track(self, tracking_id: str, session_id: str, refs: list[str]) -> bool | None:
        if not tracking_id:
            return None
        tracker = self._trackers.get(tracking_id)
        if tracker is None or tracker.observer != session_id or tracker.ended is not None:  # tracks nothing
            return False
        tracker.track(refs)
        return True

    async def touch_watching_sessions(self) -> None:
        """An open watch or invalidation stream keeps its client's session alive (run before sessions expire)."""
        now = self.clock()
        for session_id in self.watches.observers() | self.invalidation_hubs.observers():
            await self.store.touch_session(session_id, now)

    def close_streams(self) -> None:
        """Ends every watch and invalidation stream: the host is shutting down."""
        self.watches.close()
        self.invalidation_hubs.close()
