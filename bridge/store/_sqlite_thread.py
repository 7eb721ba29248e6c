"""A thread that owns one SQLite connection and runs calls on it in order, off the event loop.

SQLite blocks (disk reads, and with synchronous=full an fsync per commit), so the store's calls
run here; the event loop only waits for their results. One thread per connection, and one
connection per thread, as sqlite3 wants.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Runs on the event loop with the call's (result, error) once the call is done: what must follow a
#: commit (publishing it, releasing the session) happens there even if the awaiting task was cancelled.
After = Callable[[Any, BaseException | None], None]
#: Called on the connection's thread with a call's (result, error).
_Deliver = Callable[[Any, BaseException | None], None]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None, after: After | None) -> None:
    try:
        if after is not None:
            after(result, error)
    finally:
        if not future.done():  # done: its awaiter was cancelled
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


class ConnectionThread:
    """Calls `fn(connection, *args)` on its thread, one at a time, in the order they were submitted."""

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        #: (fn, args, deliver): `deliver(result, error)` is called on this thread when fn is done.
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], _Deliver] | None] = (
            queue.SimpleQueue()
        )
        opened: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(opened,), name=name, daemon=True)
        self._thread.start()
        error = opened.get()
        if error is not None:
            raise error

    def _run(self, opened: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            opened.put(exc)
            return
        opened.put(None)
        try:
            while (call := self._calls.get()) is not None:
                fn, args, deliver = call
                try:
                    result, error = fn(conn, *args), None
                except BaseException as exc:  # handed to whoever waits for it, whatever it is
                    result, error = None, exc
                deliver(result, error)
        finally:
            conn.close()

    def submit(self, fn: Callable[..., T], *args: Any, after: After | None = None) -> asyncio.Future[T]:
        """Queues `fn(connection, *args)`; the future resolves on the calling loop, after `after` ran there."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def deliver(result: Any, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error, after)

        self._calls.put((fn, args, deliver))
        return future

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs `fn(connection, *args)` on the thread and blocks until it is done: for opening and closing."""
        done: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
        self._calls.put((fn, args, lambda result, error: done.put((result, error))))
        result, error = done.get()
        if error is not None:
            raise error
        return result

    def stop(self) -> None:
        """Closes the connection once the calls queued before this one have run, and waits for the thread."""
        self._calls.put(None)
        self._thread.join()
