"""Broken streams: a cut network, a compacted log, an overflowed buffer, a restarted server.

The watcher resumes by itself, and its consumer sees every write once, in order; when the
history it needs is gone, it gets a fresh snapshot marked `resync` instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

import pytest
from watch_support import FAST_RECONNECT, WAIT, CuttableProxy, take, until

from bridge import BridgeServer, Limits, SessionContext, VariableUpdate, connect
from bridge.limits import DEFAULT_LIMITS
from bridge.store import MemoryStore


def gapless(updates: list[VariableUpdate], first: int, last: int) -> None:
    """The updates are exactly the values first..last, once each, in revision order, old values chained."""
    assert [u.value for u in updates] == list(range(first, last + 1))
    assert [u.revision for u in updates] == sorted({u.revision for u in updates})
    assert all(b.old_value == a.value for a, b in itertools.pairwise(updates))


#: The proxy, the watching session behind it, and a writer of that session connected directly.
Proxied = tuple[CuttableProxy, SessionContext, SessionContext]


@contextlib.asynccontextmanager
async def behind_proxy(limits: Limits = DEFAULT_LIMITS) -> AsyncIterator[Proxied]:
    """A server behind a proxy, a watching session through the proxy, and a writer of it connected directly."""
    server = await BridgeServer(limits=limits).start()
    proxy = await CuttableProxy(server.port).start()
    try:
        async with connect(proxy.address, **FAST_RECONNECT) as far, connect(server.address) as near:
            watcher = await SessionContext("proxied", far).initialize()
            writer = await SessionContext("proxied", near, token=watcher.token).initialize()
            await writer.register_variable("x", "integer", 0)
            yield proxy, watcher, writer
            await watcher.close()
    finally:
        await proxy.close()
        await server.stop(1)


@pytest.fixture
async def proxied() -> AsyncIterator[Proxied]:
    async with behind_proxy() as parts:
        yield parts


async def test_a_cut_connection_resumes_without_a_gap_or_a_repeat(proxied) -> None:
    proxy, watcher, writer = proxied
    watch = watcher.watch_variable("x", include_initial=False)
    await watch.started()
    written = asyncio.Event()
    total = 300

    async def write_all() -> None:
        for value in range(1, total + 1):
            await writer.set_variable("x", value)
            if value == 150:
                written.set()

    writing = asyncio.create_task(write_all())
    seen = await take(watch, 30)
    proxy.cut()  # mid-stream: the writer goes on
    await asyncio.wait_for(written.wait(), WAIT)
    proxy.restore()
    seen += await until(watch, lambda u: u.value == total)
    await writing
    gapless(seen, 1, total)
    assert proxy.connections >= 2  # it did reconnect


async def test_resuming_below_retention_gives_a_resync_snapshot() -> None:
    async with behind_proxy(Limits(max_event_log_entries=5)) as (proxy, watcher, writer):
        watch = watcher.watch_variable("x")
        [initial] = await take(watch, 1)
        await writer.set_variable("x", 1)
        [one] = await take(watch, 1)
        proxy.cut()
        for value in range(2, 21):  # 19 writes: the log keeps the last 5
            await writer.set_variable("x", value)
        proxy.restore()
        [resync] = await take(watch, 1)
        assert (resync.kind, resync.value, resync.old_value, resync.version) == ("resync", 20, 1, 21)
        await writer.set_variable("x", 21)
        [after] = await take(watch, 1)
        assert (after.kind, after.value, after.old_value) == ("update", 21, 20)
        assert (initial.kind, one.value) == ("initial", 1)


async def test_a_resync_reports_variables_deleted_meanwhile() -> None:
    async with behind_proxy(Limits(max_event_log_entries=5)) as (proxy, watcher, writer):
        await writer.register_variable("y", "integer", 0)
        watch = watcher.watch_variables(["x", "y"])
        await take(watch, 2)
        proxy.cut()
        await writer.delete_variable("y")
        for value in range(1, 21):
            await writer.set_variable("x", value)
        proxy.restore()
        updates = await take(watch, 2)
        assert [(u.kind, u.name, u.value, u.old_value) for u in updates] == [
            ("resync", "x", 20, 0),
            ("delete", "y", None, 0),
        ]


async def test_an_overflowed_buffer_ends_the_stream_and_the_watcher_resumes(caplog: pytest.LogCaptureFixture) -> None:
    server = await BridgeServer(limits=Limits(max_watch_buffer=3)).start()
    try:
        async with connect(server.address) as channel:
            session = await SessionContext("overflowing", channel).initialize()
            names = [f"v{i}" for i in range(10)]
            await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in names])
            watch = session.watch_variables(names, include_initial=False)
            await watch.started()
            with caplog.at_level(logging.INFO, logger="dspex.watch"):
                # Ten writes in one call, committed faster than any stream can send them: the buffer overflows.
                await session.update_variables({n: 1 for n in names}, atomic=False)
                updates = await take(watch, 10)
            assert [u.name for u in updates] == names
            assert [u.revision for u in updates] == list(range(2, 12))
            assert "resuming after overflow" in caplog.text
            await session.close()
    finally:
        await server.stop(1)


async def test_a_consumer_that_stops_reading_blocks_neither_writers_nor_other_watchers() -> None:
    server = await BridgeServer(limits=Limits(max_watch_buffer=16)).start()
    try:
        async with connect(server.address) as channel, connect(server.address) as other:
            session = await SessionContext("slow", channel).initialize()
            await session.register_variable("x", "integer", 0)
            stalled = session.watch_variable("x", include_initial=False)
            await stalled.started()
            fast_client = await SessionContext("slow", other, token=session.token).initialize()
            fast = fast_client.watch_variable("x", include_initial=False)
            await fast.started()

            async def writes() -> None:
                for value in range(1, 501):
                    await session.set_variable("x", value)

            await asyncio.wait_for(writes(), 5 * WAIT)  # nobody reads `stalled` meanwhile
            gapless(await until(fast, lambda u: u.value == 500), 1, 500)
            gapless(await until(stalled, lambda u: u.value == 500), 1, 500)  # late, but whole
            await fast_client.close()
            await session.close()
    finally:
        await server.stop(1)


async def test_a_restarted_server_with_its_data_is_resumed_seamlessly() -> None:
    store = MemoryStore()
    server = await BridgeServer(store=store).start()
    port = server.port
    async with connect(server.address, **FAST_RECONNECT) as channel:
        session = await SessionContext("restarted", channel).initialize()
        await session.register_variable("x", "integer", 0)
        watch = session.watch_variable("x", include_initial=False)
        await watch.started()
        for value in range(1, 6):
            await session.set_variable("x", value)
        seen = await take(watch, 5)
        await server.stop(1)
        server = await BridgeServer(port=port, store=store).start()  # same data: a durable store's restart
        try:
            for value in range(6, 11):
                await session.set_variable("x", value)
            seen += await until(watch, lambda u: u.value == 10)
            gapless(seen, 1, 10)
            await session.close()
        finally:
            await server.stop(1)


async def test_a_restarted_memory_server_loses_the_session_and_the_watcher_recreates_it() -> None:
    server = await BridgeServer().start()
    port = server.port
    async with connect(server.address, **FAST_RECONNECT) as channel:
        session = await SessionContext("forgotten", channel).initialize()
        old_token = session.token
        await session.register_variable("x", "integer", 7)
        watch = session.watch_variable("x")
        [initial] = await take(watch, 1)
        await server.stop(1)
        server = await BridgeServer(port=port).start()  # the memory store starts empty
        try:
            [gone] = await take(watch, 1)  # it reconnected, re-created the session, and resynced
            assert (gone.kind, gone.name, gone.old_value, gone.variable_id) == ("delete", "x", 7, initial.variable_id)
            assert session.token != old_token  # the session was created again, so every call works again
            await session.register_variable("x", "integer", 1)
            [again] = await take(watch, 1)
            assert (again.kind, again.value, again.version) == ("update", 1, 1)
            await session.close()
        finally:
            await server.stop(1)
