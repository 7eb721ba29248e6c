"""One Watch RPC: a hub subscriber that sends its session's writes to one client, in order, bounded.

It subscribes before it reads anything, so every write after that reaches its buffer; what
came before is read from the store (a snapshot, or the event log from the resume revision),
and buffered writes the read already covered are skipped by revision. A write is taken into
the buffer by the hub at once; when the buffer is full the stream ends with a resumable
error, so the writer never waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc

from ..._proto import bridge_pb2 as pb
from ...errors import BridgeError, LimitExceededError, RevisionCompactedError, ValidationError, WatchOverflowError
from ...limits import Limits
from ...store import Change, LogEntry, Store, VariableRecord
from .._access import allowed
from ._encode import Published, dependency_event, header, message, snapshot_event
from ._hub import WatchHubs

#: Writes read from the event log per page while catching up.
CATCH_UP_PAGE = 256
#: Most writes of other variables a stream lets pass before telling its client how far it has read.
MAX_PROGRESS_EVERY = 128


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """What a watch watches: names in one session; `observer` is set when the caller is another session."""

    session_id: str
    names: tuple[str, ...]
    observer: str | None


class _Ended(Exception):
    """The hub ended the subscription: the host is shutting down."""


class _Framed(NamedTuple):
    """A write's message built for this watch alone (it carries dependency events)."""

    revision: int
    data: bytes


class WatchStream:
    """Sends one watch: header, snapshot or backlog, then live writes (see bridge.proto, "Watch")."""

    def __init__(
        self,
        store: Store,
        hubs: WatchHubs,
        limits: Limits,
        caller: str,
        target: WatchTarget,
        request: pb.WatchRequest,
        context: grpc.aio.ServicerContext,
    ) -> None:
        self.store = store
        self.hubs = hubs
        self.limits = limits
        self.observer = caller  # the session kept alive while this stream is open
        self.target = target
        self.names = frozenset(target.names)
        self.request = request
        self.context = context
        #: Selected writes (with the indices of their selected changes, None for all), writes framed for
        #: this watch alone, and progress revisions.
        self.buffer: deque[tuple[Published, tuple[int, ...] | None] | _Framed | int] = deque()
        #: Variable ID -> the watched names that depend on it directly; and each watched name's dependencies.
        self.sources: dict[str, set[str]] = {}
        self._depends_on: dict[str, tuple[str, ...]] = {}
        self.observer_metadata: dict[str, Any] | None = None
        self._latest: dict[str, VariableRecord | None] = {}  # each watched name's latest record, as last seen
        self._visible_now: set[str] = set()  # watched names observable when the stream opened
        self._catching_up = False
        self.overflowed = False
        self.ended: BridgeError | _Ended | None = None
        self.wake = asyncio.Event()
        self.position = 0  # the next revision this stream has not yet passed on
        self._skipped = 0
        self._progress_every = max(1, min(MAX_PROGRESS_EVERY, limits.max_event_log_entries // 8))

    # ------------------------------------------------------------ the hub's side (never blocks, never raises)

    def offer(self, item: Published) -> None:
        if self.overflowed or self.ended is not None:
            return
        picked = self._select(item.entry)
        self._retrack(item.entry)  # a watched variable's edges change even in versions it may not be shown
        if self.sources:
            framed = self._with_dependencies(item, picked)
            if framed is not None:
                self._push(framed)
                return
        if picked is False:
            self._skipped += 1
            if self._skipped < self._progress_every:
                return
            self._skipped = 0
            self._push(item.entry.revision)
            return
        self._push((item, picked))

    def _push(self, element: tuple[Published, tuple[int, ...] | None] | _Framed | int) -> None:
        if len(self.buffer) >= self.limits.max_watch_buffer:
            self.overflowed = True
            self.buffer.clear()  # the event log still has them: the client resumes from there
        else:
            self.buffer.append(element)
        self.wake.set()

    def end(self, error: BridgeError | None) -> None:
        self.ended = error if error is not None else _Ended()
        self.wake.set()

    def _select(self, entry: LogEntry) -> tuple[int, ...] | bool | None:
        """The indices of the entry's changes this watch sends; None for all of them; False for none."""
        changes = entry.changes
        if len(changes) == 1:  # the commonest write: one variable
            return None if self._shows(changes[0]) else False
        picked = tuple(i for i, change in enumerate(changes) if self._shows(change))
        if not picked:
            return False
        return None if len(picked) == len(changes) else picked

    def _shows(self, change: Change) -> bool:
        record = change.record
        return record.name in self.names and self._observable(record)

    def _observable(self, record: VariableRecord) -> bool:
        observer = self.target.observer
        if observer is None:  # the owner's own watch: only its own rules can restrict it
            return not record.access_rules or allowed(record, record.session_id, "observe")
        if self._catching_up and record.name in self.names and record.name not in self._visible_now:
            return False
        return allowed(record, observer, "observe", self.observer_metadata)

    # ------------------------------------------------------------ dependency events

    def _track(self, name: str, dependencies: tuple[str, ...]) -> None:
        """Follows a watched variable's edges: its dependencies' changes are sent as dependency events."""
        old = self._depends_on.get(name, ())
        if old == dependencies:
            return
        for vid in old:
            names = self.sources.get(vid)
            if names is not None:
                names.discard(name)
                if not names:
                    del self.sources[vid]
        for vid in dependencies:
            self.sources.setdefault(vid, set()).add(name)
        self._depends_on[name] = dependencies

    def _retrack(self, entry: LogEntry) -> None:
        for change in entry.changes:
            name = change.record.name
            if name in self.names:
                self._latest[name] = change.new
                if change.new is not None and self._observable(change.new):
                    self._visible_now.add(name)  # granted (again) live: older replayed writes stay judged by then
                self._track(name, change.new.dependencies if change.new is not None else ())

    def _with_dependencies(self, item: Published, picked: tuple[int, ...] | bool | None) -> _Framed | None:
        """The write's message for this watch when it changed a variable a watched one depends on, else None."""
        entry = item.entry
        extra: dict[int, list[str]] = {}
        for i, change in enumerate(entry.changes):
            record = change.record
            dependents = self.sources.get(record.id)
            if dependents and record.name not in self.names and self._observable(record):
                shown = sorted(d for d in dependents if self._dependent_observable(d))  # never reveal a hidden one
                if shown:
                    extra[i] = shown
        if not extra:
            return None
        events = []
        for i, change in enumerate(entry.changes):
            if i in extra:
                events.append(dependency_event(change, entry, self.limits, extra[i]))
            elif picked is None or (picked is not False and i in picked):  # type: ignore[operator]
                events.append(item.event(i))
        return _Framed(entry.revision, message(pb.WATCH_CHANGE, entry.revision, events))

    # ------------------------------------------------------------ the RPC's side

    async def run(self) -> None:
        self.hubs.join(self.target.session_id, self)
        try:
            await self._load_dependencies()
            if self.request.from_revision > 0:
                await self._resume()
            else:
                await self._open()
            await self._live()
        finally:
            self.hubs.leave(self)

    async def _load_dependencies(self) -> None:
        """The watched variables as they are now: their edges, which of them the observer may observe
        now (a resumed watch replays only those), and the observer's metadata for conditional rules."""
        _, records = await self.store.snapshot(self.target.session_id, self.target.names)
        if self.target.observer is not None:
            session = await self.store.get_session(self.target.observer)
            self.observer_metadata = dict(session.metadata) if session is not None else None
        for name, record in records.items():
            self._latest[name] = record
            self._track(name, record.dependencies)
        self._visible_now = {name for name, record in records.items() if self._observable(record)}

    def _dependent_observable(self, name: str) -> bool:
        record = self._latest.get(name)
        return record is not None and self._observable(record)

    def _header(self, history_id: str, oldest: int, missing: Sequence[str] = ()) -> pb.WatchHeader:
        return pb.WatchHeader(
            session_id=self.target.session_id,
            names=self.target.names,
            missing=missing,
            history_id=history_id,
            store_id=self.store.store_id,
            oldest_revision=oldest,
        )

    async def _open(self) -> None:
        """A fresh watch: the header (with the names that do not exist) and, if asked, the snapshot."""
        session_id = self.target.session_id
        revision, records = await self.store.snapshot(session_id, self.target.names)
        log = await self.store.event_log(session_id, revision + 1, 0)
        visible = [records[name] for name in self.target.names if name in records and self._observable(records[name])]
        shown = {r.name for r in visible}
        missing = [name for name in self.target.names if name not in shown]
        await self.context.write(header(revision, self._header(log.history_id, log.oldest_revision, missing)))
        if self.request.include_initial:
            events = [snapshot_event(record, self.limits) for record in visible]
            await self._send(message(pb.WATCH_SNAPSHOT, revision, events), revision)
        self.position = revision + 1

    async def _resume(self) -> None:
        """A resumed watch: the header, then every write from `from_revision` read from the event log."""
        session_id, start = self.target.session_id, self.request.from_revision
        log = await self.store.event_log(session_id, start, 0)  # RevisionCompactedError when too old
        if self.request.history_id and self.request.history_id != log.history_id:
            raise RevisionCompactedError(
                f"session {session_id!r} is not the history this watch read (it was re-created, or the host "
                "lost its data); take a fresh snapshot",
                session=session_id,
                revision=start,
                oldest_revision=log.oldest_revision,
                reason="history_changed",
            )
        if start > log.revision + 1:
            raise ValidationError(
                f"from_revision {start} is ahead of session {session_id!r}, which is at revision {log.revision}",
                rule="from_revision",
            )
        await self.context.write(header(log.revision, self._header(log.history_id, log.oldest_revision)))
        self.position = start
        while True:
            page = await self.store.event_log(session_id, self.position, CATCH_UP_PAGE)
            for entry in page.entries:
                await self._send_logged(entry)
            if len(page.entries) < CATCH_UP_PAGE:
                if not self.overflowed:
                    return  # every later write is in the buffer
                self.overflowed = False  # the buffer lost writes while we caught up: read on from the log

    async def _send_logged(self, entry: LogEntry) -> None:
        """A replayed write: shown only if the observer may observe it now as well as then (decided before
        any await, so live writes offered meanwhile are judged by their own rules alone)."""
        self._catching_up = True
        try:
            picked = self._select(entry)
            framed = self._with_dependencies(Published(entry, self.limits), picked) if self.sources else None
        finally:
            self._catching_up = False
        if framed is not None:
            await self._send(framed.data, entry.revision)
            self.position = entry.revision + 1
            return
        if picked is False:
            self._skipped += 1
            if self._skipped >= self._progress_every:
                self._skipped = 0
                await self.context.write(message(pb.WATCH_PROGRESS, entry.revision))
        else:
            await self._send(Published(entry, self.limits).message(picked), entry.revision)
        self.position = entry.revision + 1

    async def _live(self) -> None:
        buffer, write = self.buffer, self.context.write
        while True:
            while not buffer:
                if self.overflowed:
                    raise WatchOverflowError(
                        f"watch of {list(self.target.names)[:10]} fell {self.limits.max_watch_buffer} writes behind "
                        f"(max_watch_buffer); resume from revision {self.position}",
                        session=self.target.session_id,
                        resume_revision=self.position,
                        limit=self.limits.max_watch_buffer,
                    )
                if isinstance(self.ended, _Ended):
                    await self._shutting_down()
                    return
                if isinstance(self.ended, WatchOverflowError):  # the store's feed fell behind: resume from here
                    raise WatchOverflowError(
                        self.ended.message, **{**self.ended.details, "resume_revision": self.position}
                    )
                if self.ended is not None:
                    raise self.ended
                self.wake.clear()
                await self.wake.wait()
            element = buffer.popleft()
            if isinstance(element, int):
                if element >= self.position:
                    await write(message(pb.WATCH_PROGRESS, element))
                    self.position = element + 1
                continue
            if isinstance(element, _Framed):
                if element.revision >= self.position:
                    await self._send(element.data, element.revision)
                    self.position = element.revision + 1
                continue
            item, picked = element
            revision = item.entry.revision
            if revision < self.position:  # already read from the store
                continue
            await self._send(item.message(picked), revision)
            self.position = revision + 1

    async def _shutting_down(self) -> None:
        """Ends the stream with UNAVAILABLE, which the client answers by reconnecting, unless it is gone already."""
        if self.context.done() or self.context.cancelled():
            return
        try:
            await self.context.abort(
                grpc.StatusCode.UNAVAILABLE, f"the server is shutting down; resume from revision {self.position}"
            )
        except grpc.aio.AbortError:
            raise
        except Exception:  # the client went away while the server stopped: there is nobody to tell
            return

    async def _send(self, data: bytes, revision: int) -> None:
        """Writes a change, refused with a clear error if it is larger than a message may be."""
        if len(data) > self.limits.max_message_bytes:
            raise LimitExceededError(
                f"watch of {list(self.target.names)[:10]}: the write at revision {revision} is {len(data)} bytes "
                f"with its values and old values; the limit is {self.limits.max_message_bytes} (max_message_bytes)",
                session=self.target.session_id,
                revision=revision,
                rule="max_message_bytes",
                limit=self.limits.max_message_bytes,
            )
        await self.context.write(data)
