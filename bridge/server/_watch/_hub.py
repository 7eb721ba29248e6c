"""The server's fan-out of committed writes: one hub per watched session, shared by every subscriber of it.

The store hands each write to the session's hub once (`Store.listen`); the hub hands it to each
subscriber, which must take it at once without blocking or raising (a watch stream buffers it,
within its bound). So a slow subscriber never holds up a writer or another subscriber. Watch
streams and the client caches' invalidation streams subscribe the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ...errors import BridgeError, SessionNotFoundError
from ...limits import Limits, check_count
from ...store import LogEntry, Store
from ._encode import Published

log = logging.getLogger("dspex.server")


class Subscriber(Protocol):
    """What a hub feeds."""

    #: The session whose client opened it: kept alive while it is open.
    observer: str

    def offer(self, item: Published) -> None:
        """Takes one committed write, in revision order. Must return at once, and not raise."""

    def end(self, error: BridgeError | None) -> None:
        """No more writes will come: the session ended (`error` says so), or the host is shutting down (None)."""


class SessionHub:
    """The subscribers of one session, fed from the store's listener."""

    def __init__(self, store: Store, session_id: str, limits: Limits, on_end: Callable[[SessionHub], None]) -> None:
        self.session_id = session_id
        self.limits = limits
        self.subscribers: dict[Subscriber, None] = {}  # insertion-ordered
        self._on_end = on_end
        self._stop = store.listen(session_id, self._publish)
        self._store_id = store.store_id

    def _publish(self, entry: LogEntry | BridgeError | None) -> None:
        if isinstance(entry, BridgeError):  # the store's feed ended (its subscribers resume from the log)
            self.end(entry)
            return
        if entry is None:
            self.end(
                SessionNotFoundError(
                    f"session {self.session_id!r} ended (cleaned up or expired)",
                    session=self.session_id,
                    store_id=self._store_id,
                )
            )
            return
        item = Published(entry, self.limits)
        for subscriber in self.subscribers:
            try:
                subscriber.offer(item)
            except Exception:  # a subscriber's bug must not fail the write that is being published
                log.exception("watch subscriber failed", extra={"session": self.session_id})

    def end(self, error: BridgeError | None) -> None:
        """Stops listening and ends every subscriber."""
        self._stop()
        self._on_end(self)
        for subscriber in list(self.subscribers):
            subscriber.end(error)


class WatchHubs:
    """Every hub of the server, with the watch limits and the counts tests and operators read.

    Watches and cache-invalidation streams each have their own hubs, counted against their
    own limits (`limit_names`: the server-wide one, then the per-session one).
    """

    def __init__(
        self,
        store: Store,
        limits: Limits,
        what: str = "watches",
        limit_names: tuple[str, str] = ("max_watches", "max_watches_per_session"),
    ) -> None:
        self.store = store
        self.limits = limits
        self.what = what
        self._limit_names = limit_names
        self._hubs: dict[str, SessionHub] = {}
        self._subscribers: dict[Subscriber, SessionHub] = {}
        self._opened_by: dict[str, int] = {}  # observer session -> its open subscriptions
        self._changed = asyncio.Event()

    @property
    def count(self) -> int:
        """Open subscriptions on this server."""
        return len(self._subscribers)

    def count_for(self, session_id: str) -> int:
        """Open subscriptions on one session's variables."""
        hub = self._hubs.get(session_id)
        return len(hub.subscribers) if hub is not None else 0

    def observers(self) -> set[str]:
        """The sessions whose clients hold subscriptions open."""
        return {subscriber.observer for subscriber in self._subscribers}

    def join(self, session_id: str, subscriber: Subscriber) -> None:
        """Subscribes to the session's writes from now on; RESOURCE_EXHAUSTED beyond the limits."""
        total, per_session = self._limit_names
        check_count(self.count + 1, getattr(self.limits, total), f"{self.what} on this server", total)
        observer = subscriber.observer  # counted against who opens it: nobody can use up another's quota
        check_count(
            self._opened_by.get(observer, 0) + 1,
            getattr(self.limits, per_session),
            f"{self.what} opened by session {observer!r}",
            per_session,
        )
        hub = self._hubs.get(session_id)
        if hub is None:
            hub = self._hubs[session_id] = SessionHub(self.store, session_id, self.limits, self._forget)
        hub.subscribers[subscriber] = None
        self._subscribers[subscriber] = hub
        self._opened_by[observer] = self._opened_by.get(observer, 0) + 1
        self._notify()

    def leave(self, subscriber: Subscriber) -> None:
        hub = self._subscribers.pop(subscriber, None)
        if hub is None:
            return
        left = self._opened_by.pop(subscriber.observer, 1) - 1
        if left:
            self._opened_by[subscriber.observer] = left
        hub.subscribers.pop(subscriber, None)
        if not hub.subscribers and self._hubs.get(hub.session_id) is hub:
            hub.end(None)  # nobody left: stop listening
        self._notify()

    def _forget(self, hub: SessionHub) -> None:
        if self._hubs.get(hub.session_id) is hub:
            del self._hubs[hub.session_id]

    def close(self) -> None:
        """Ends every subscription: the host is shutting down."""
        for hub in list(self._hubs.values()):
            hub.end(None)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_for_count(self, count: int) -> None:
        """Returns once exactly `count` subscriptions are open (for tests and tooling; wrap it in a timeout)."""
        while self.count != count:
            await self._changed.wait()
