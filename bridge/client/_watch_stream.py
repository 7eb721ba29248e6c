"""The resumable Watch stream: opens it, reads it, and when it breaks, reconnects and resumes.

What the caller gets is a sequence of groups (a snapshot, or one write) with no write lost or
repeated across reconnects. It tracks the next revision it has not been given; a broken stream
(UNAVAILABLE, a cut connection, a restarted server, an overflowed server buffer) is reopened
from there with backoff and jitter. If the server no longer has that revision, or the history
is another (the session was re-created), the next group is a fresh snapshot marked `resync`.
If the server lost the session (a restarted memory store: another store_id), the session is
re-created first. The first open fails fast, as any call does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, Protocol

import grpc

from .._proto import bridge_pb2 as pb
from ..errors import (
    RevisionCompactedError,
    SessionNotFoundError,
    VariableNotFoundError,
    WatchOverflowError,
)
from ._backoff import Backoff
from ._rpc import translate

log = logging.getLogger("dspex.watch")

SERVICE = pb.DESCRIPTOR.services_by_name["BridgeService"].full_name

#: Transport failures after which the stream is reopened: the server or the network went away (a server
#: cancels its streams when its shutdown grace ends). INTERNAL is not among them: from a bridge host it
#: means a bug, which retrying would hide.
RESUMABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN})


class WatchClosed(Exception):
    """The watch was closed by its client (cancel_watch, close, cleanup)."""


class Group(NamedTuple):
    """A snapshot (`initial` on the first open, `resync` after history was lost) or one write (`change`)."""

    kind: Literal["initial", "resync", "change"]
    revision: int
    events: Sequence[pb.VariableEvent]


class WatchingSession(Protocol):
    """What the stream needs of its SessionContext."""

    session_id: str
    _token: str

    def _watch_rpc(self) -> Callable[..., grpc.aio.UnaryStreamCall]: ...

    async def _recover_session(self, stale_token: str) -> None: ...


class WatchStream:
    """One watch's stream, across as many calls as it takes."""

    def __init__(
        self, session: WatchingSession, refs: list[str], include_initial: bool, backoff: Backoff | None = None
    ) -> None:
        self.session = session
        self.refs = refs
        self.include_initial = include_initial
        self.backoff = backoff or Backoff()
        #: The watched session and names, from the first header; None until then.
        self.watched: str | None = None
        self.names: tuple[str, ...] = ()
        #: The next revision not yet given to the caller; None when the next open must take a snapshot.
        self.position: int | None = None
        #: The revision of the first header: the watch sends every write after it.
        self.start_revision: int | None = None
        self._history_id = ""
        self._store_id = ""
        self._call: grpc.aio.UnaryStreamCall | None = None
        self._request_sent = pb.WatchRequest()
        self._token_used = ""
        self._snapshot_expected = False  # the open call asked for a snapshot, which sets the position
        self._resync = False  # the next snapshot is a resync, not the initial one
        self._closed = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Ends the watch: the server's stream is released at once."""
        self._closed.set()
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _request(self) -> pb.WatchRequest:
        request = pb.WatchRequest()
        if self.watched is None:  # the first open: the caller's refs, as given
            request.refs.extend(self.refs)
            request.include_initial = self.include_initial
            return request
        request.refs.extend(self.names)
        if self.watched != self.session.session_id:
            request.session_id = self.watched
        if self.position is None:
            request.include_initial = True
        else:
            request.from_revision = self.position
            request.history_id = self._history_id
        return request

    def _open(self) -> grpc.aio.UnaryStreamCall:
        request = self._request()
        token = self.session._token
        if not token:
            raise WatchClosed  # the session was closed under the watch
        request.session_token = self._token_used = token
        self._request_sent = request
        self._snapshot_expected = request.include_initial
        # A reconnect waits for the channel to be ready again instead of failing fast.
        return self.session._watch_rpc()(request, wait_for_ready=self.watched is not None)

    def start(self) -> None:
        """Sends the first request now, so the watch starts at the server's next revision rather than at first use."""
        if self._call is None and not self.closed:
            self._call = self._open()

    async def started(self) -> int:
        """Waits for the first header; returns the revision the watch starts from (it sends every later write)."""
        while self.start_revision is None:
            if await self._read() is not None:
                raise AssertionError("a watch stream sent a group before its header")
        return self.start_revision

    async def next_group(self) -> Group:
        """The next snapshot or write, reconnecting as needed; WatchClosed once closed."""
        while True:
            group = await self._read()
            if group is not None:
                return group

    async def _read(self) -> Group | None:
        """Reads one message (a group, or None for one that is not), or recovers from a broken stream."""
        if self.closed:
            raise WatchClosed
        if self._call is None:
            self._call = self._open()
        try:
            response = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            self._call = None
            await self._recover(exc)
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.closed and (task is None or not task.cancelling()):
                raise WatchClosed from None  # close() cancelled the call under this read
            raise
        if response is grpc.aio.EOF:  # ended without a status: treat as a broken stream
            self._call = None
            await self._pause()
            return None
        return self._take(response)

    def _take(self, response: pb.WatchResponse) -> Group | None:
        kind = response.kind
        if kind == pb.WATCH_CHANGE:
            self.position = response.revision + 1
            return Group("change", response.revision, response.events)
        if kind == pb.WATCH_PROGRESS:
            self.position = response.revision + 1
            return None
        if kind == pb.WATCH_HEADER:
            self._take_header(response)
            return None
        if kind == pb.WATCH_SNAPSHOT:
            self.position = response.revision + 1
            snapshot = Group("resync" if self._resync else "initial", response.revision, response.events)
            self._resync = False
            return snapshot
        return None  # a kind newer than this client: nothing it must act on

    def _take_header(self, response: pb.WatchResponse) -> None:
        header = response.header
        first = self.watched is None
        if first and header.missing:
            self.close()
            missing = list(header.missing)
            raise VariableNotFoundError(
                f"cannot watch {missing}: not found in session {header.session_id!r}", variable=",".join(missing)
            )
        if first:
            self.start_revision = response.revision
        self.watched, self.names = header.session_id, tuple(header.names)
        self._history_id, self._store_id = header.history_id, header.store_id
        self.backoff.reset()
        if self.position is None and not self._snapshot_expected:
            self.position = response.revision + 1  # a fresh watch without a snapshot starts here

    async def _recover(self, exc: grpc.aio.AioRpcError) -> None:
        """Decides what a failed read means: resume, resync, re-create the session, or give up (raise)."""
        if self.closed:
            raise WatchClosed
        error = translate(exc, self._request_sent, "watch")
        if self.watched is None:  # the first open fails as any call does
            raise error
        if isinstance(error, RevisionCompactedError):
            log.info("watch resyncing: %s", error.message)
            self._start_resync()
            return
        if isinstance(error, WatchOverflowError):
            log.info("watch resuming after overflow: %s", error.message)
            return
        if isinstance(error, SessionNotFoundError):
            store_id = error.details.get("store_id")
            if not store_id or store_id == self._store_id:
                raise error  # the session ended (cleaned up or expired): so does the watch
            log.warning("the server lost session %r (it restarted without its data); re-creating it", self.watched)
            await self.session._recover_session(self._token_used)
            self._start_resync()
            return
        if error is exc and exc.code() in RESUMABLE_CODES:
            log.info("watch reconnecting after %s: %s", exc.code().name, exc.details())
            await self._pause()
            return
        raise error

    def _start_resync(self) -> None:
        self.position = None
        self._resync = True

    async def _pause(self) -> None:
        """Waits the next backoff delay, or less if the watch is closed meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), self.backoff.next_delay())
