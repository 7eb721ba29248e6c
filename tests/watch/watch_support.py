"""Shared helpers of the watch tests: a TCP proxy that can cut the connection, and update collectors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from bridge import VariableUpdate

#: Generous bound on any single wait of these tests: a wait that needs it has failed.
WAIT = 10.0


class CuttableProxy:
    """A loopback TCP proxy in this event loop: `cut()` drops every connection and refuses new ones
    (accepts and closes them at once) until `restore()`: a network outage between client and server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.connections = 0  # accepted while up
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._up = True

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            writer.close()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)

    def cut(self) -> None:
        self._up = False
        for writer in list(self._writers):
            writer.transport.abort()  # RST, like a dropped link: no orderly close
        self._writers.clear()

    def restore(self) -> None:
        self._up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def take(updates: AsyncIterator[VariableUpdate], n: int, timeout: float = WAIT) -> list[VariableUpdate]:
    """The next `n` updates of a watch, failing after `timeout` seconds."""

    async def collect() -> list[VariableUpdate]:
        return [await anext(updates) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout)


async def until(updates: AsyncIterator[VariableUpdate], done: Any, timeout: float = WAIT) -> list[VariableUpdate]:
    """Updates until one for which `done(update)` is true (included), failing after `timeout` seconds."""

    async def collect() -> list[VariableUpdate]:
        seen = []
        async for update in updates:
            seen.append(update)
            if done(update):
                return seen
        raise AssertionError(f"the watch ended after {seen}")

    return await asyncio.wait_for(collect(), timeout)


#: Channel options that make a test's reconnects quick (gRPC's own default waits a second, then longer).
FAST_RECONNECT = {
    "grpc.initial_reconnect_backoff_ms": 50,
    "grpc.max_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 1000,
}
