"""Ending watches: cancel_watch, close, the session's close and cleanup; an open watch keeps its session alive."""

from __future__ import annotations

import asyncio

import pytest
from watch_support import WAIT, take

from bridge import BridgeServer, SessionContext, connect
from bridge.errors import AuthenticationError, SessionNotFoundError


async def open_watches(server: BridgeServer, count: int) -> None:
    await asyncio.wait_for(server.servicer.watches.wait_for_count(count), WAIT)


async def test_cancel_watch_of_a_task_awaiting_the_watch_releases_the_stream(
    server: BridgeServer, session: SessionContext
) -> None:
    await session.register_variable("temperature", "float", 0.7)
    watch_task = asyncio.create_task(session.watch_variable("temperature"))  # the spec's form
    await open_watches(server, 1)
    await session.set_variable("temperature", 0.8)
    session.cancel_watch(watch_task)
    await open_watches(server, 0)
    with pytest.raises(asyncio.CancelledError):
        await watch_task
    assert session.active_watches == ()


async def test_cancel_watch_of_a_task_iterating_a_watch(server: BridgeServer, session: SessionContext) -> None:
    await session.register_variable("x", "integer", 0)
    seen = []

    async def watcher() -> None:
        async for update in session.watch_variable("x"):
            seen.append(update.value)

    task = asyncio.create_task(watcher())
    await open_watches(server, 1)
    session.cancel_watch(task)
    await open_watches(server, 0)
    assert task.cancelled() or task.done()


async def test_a_watch_closed_from_elsewhere_ends_its_iteration(server: BridgeServer, session: SessionContext) -> None:
    await session.register_variable("x", "integer", 0)
    watch = session.watch_variable("x")
    consumed = []

    async def consume() -> None:
        async for update in watch:
            consumed.append(update)

    task = asyncio.create_task(consume())
    await open_watches(server, 1)
    session.cancel_watch(watch)
    await asyncio.wait_for(task, WAIT)  # ends normally: StopAsyncIteration
    await open_watches(server, 0)
    assert watch.closed
    with pytest.raises(StopAsyncIteration):
        await anext(watch)


async def test_cancelling_the_consumer_ends_the_watch_as_for_an_async_generator(
    server: BridgeServer, session: SessionContext
) -> None:
    await session.register_variable("x", "integer", 0)
    watch = session.watch_variable("x", include_initial=False)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(watch), 0.01)
    assert watch.closed
    await open_watches(server, 0)


async def test_close_and_cleanup_end_the_sessions_watches(server: BridgeServer, channel) -> None:
    session = await SessionContext("closing", channel).initialize()
    await session.register_variable("x", "integer", 0)
    watches = [session.watch_variable("x"), session.watch_variables(["x"])]
    for watch in watches:
        await take(watch, 1)
    await open_watches(server, 2)
    await session.cleanup()
    await open_watches(server, 0)
    for watch in watches:
        with pytest.raises(StopAsyncIteration):
            await anext(watch)
    with pytest.raises(AuthenticationError, match="not initialized"):
        session.watch_variable("x")


async def test_a_watch_ends_with_its_session_ended_by_another_client(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 0)
    watch = session.watch_variable("x")
    await take(watch, 1)
    other = await SessionContext(session.session_id, session.channel, token=session.token).initialize()
    await other.cleanup()
    with pytest.raises(SessionNotFoundError, match="ended"):
        await take(watch, 1)


async def test_started_gives_the_revision_a_watch_starts_from(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 0)
    await session.set_variable("x", 1)
    watch = session.watch_variable("x", include_initial=False)
    assert await watch.started() == 2
    await session.set_variable("x", 2)
    [update] = await take(watch, 1)
    assert update.revision == 3
    watch.close()
    assert await watch.started() == 2  # known, even closed
    never = session.watch_variable("x")
    never.close()
    with pytest.raises(RuntimeError, match="closed"):
        await never.started()


async def test_a_task_awaiting_a_watch_ends_normally_when_the_watch_is_closed(
    server: BridgeServer, session: SessionContext
) -> None:
    await session.register_variable("x", "integer", 5)
    task = asyncio.create_task(session.watch_variable("x"))
    await open_watches(server, 1)
    await session.close()
    last = await asyncio.wait_for(task, WAIT)  # the last update it saw (None if the initial had not arrived)
    assert last is None or last.value == 5
    await open_watches(server, 0)


async def test_a_watch_is_either_iterated_or_awaited(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 5)
    iterated = session.watch_variable("x")
    aiter(iterated)
    with pytest.raises(RuntimeError, match="iterated"):
        await iterated
    iterated.close()


async def test_an_open_watch_keeps_its_session_alive() -> None:
    now = [1000.0]
    server = await BridgeServer(session_ttl=60, clock=lambda: now[0]).start()
    try:
        async with connect(server.address) as channel:
            watching = await SessionContext("watching", channel).initialize()
            idle = await SessionContext("idle", channel).initialize()
            await watching.register_variable("x", "integer", 0)
            watch = watching.watch_variable("x")
            await take(watch, 1)
            for _ in range(3):  # three TTLs pass, with the reaper running as the server runs it
                now[0] += 50
                await server.servicer.touch_watching_sessions()
                await server.servicer.expire_sessions()
            assert await server.store.get_session("watching") is not None
            assert await server.store.get_session("idle") is None
            watch.close()
            await idle.close()
    finally:
        await server.stop(1)


async def test_stopping_a_server_ends_its_watch_streams_at_once() -> None:
    server = await BridgeServer().start()
    async with connect(server.address) as channel:
        session = await SessionContext("s", channel).initialize()
        await session.register_variable("x", "integer", 0)
        watch = session.watch_variable("x")
        await take(watch, 1)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await server.stop(grace=30)  # would take 30 s if the stream were left to finish
        assert loop.time() - started < 10
        watch.close()
