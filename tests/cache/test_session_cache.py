"""The session cache through a real server: hits without calls, invalidations, read-your-writes, races, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
from helpers import other_client

from bridge import BridgeServer, SessionContext, connect
from bridge.client._cache import VariableCache
from bridge.limits import channel_options
from bridge.store import MemoryStore

WAIT = 5.0

#: Channel options that make a test's reconnects quick (gRPC's own default waits a second, then longer).
FAST_RECONNECT = {
    "grpc.initial_reconnect_backoff_ms": 50,
    "grpc.max_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 1000,
}


async def server_reads(server: BridgeServer, variable_id: str) -> int:
    return (await server.store.stats(variable_id)).read_count


def invalidated(session: SessionContext, variable_id: str) -> asyncio.Event:
    """Set when the session's cache hears that the variable changed."""
    event = asyncio.Event()
    session.cache.subscribe_invalidation(variable_id, lambda vid, reason: event.set())
    return event


async def test_a_cached_read_makes_no_call(server: BridgeServer, session: SessionContext) -> None:
    vid = await session.register_variable("temperature", "float", 0.7)
    assert await session.get_variable("temperature") == 0.7  # a miss: fetched, and now tracked
    before = await server_reads(server, vid)
    for _ in range(50):
        assert await session.get_variable("temperature") == 0.7
        assert await session.get_variable(vid) == 0.7  # its ID is the same entry
    assert await server_reads(server, vid) == before
    info = session.get_cache_info()
    assert info["size"] == 1 and info["hits"] == 100 and info["misses"] == 1
    assert info["hit_rate"] == pytest.approx(100 / 101)
    assert (info["ttl"], info["max_size"], info["eviction_policy"], info["eviction_count"]) == (1.0, 1000, "lru", 0)


async def test_bypass_cache_always_asks_the_server(server: BridgeServer, session: SessionContext) -> None:
    vid = await session.register_variable("temperature", "float", 0.7)
    await session.get_variable("temperature")
    before = await server_reads(server, vid)
    for _ in range(3):
        assert await session.get_variable("temperature", bypass_cache=True) == 0.7
    assert await server_reads(server, vid) == before + 3


async def test_ttl_zero_turns_caching_off(server: BridgeServer, session: SessionContext) -> None:
    vid = await session.register_variable("temperature", "float", 0.7)
    await session.get_variable("temperature")
    session.set_cache_config(ttl=0)
    assert session.get_cache_info()["size"] == 0  # what was cached is dropped at once
    before = await server_reads(server, vid)
    for _ in range(5):
        assert await session.get_variable("temperature") == 0.7
    assert await server_reads(server, vid) == before + 5
    assert session.get_cache_info()["size"] == 0


async def test_set_cache_config_changes_size_and_policy(session: SessionContext) -> None:
    await session.register_variables([{"name": f"v{i}", "type": "integer", "initial_value": i} for i in range(5)])
    session.set_cache_config(ttl=30.0, max_size=3, eviction_policy="fifo")
    for i in range(5):
        assert await session.get_variable(f"v{i}") == i
    info = session.get_cache_info()
    assert (info["size"], info["max_size"], info["eviction_policy"], info["eviction_count"]) == (3, 3, "fifo", 2)
    assert [name in session.cache for name in ("v0", "v1", "v2", "v3", "v4")] == [False, False, True, True, True]
    with pytest.raises(ValueError, match="eviction_policy must be one of"):
        session.set_cache_config(eviction_policy="random")
    with pytest.raises(ValueError, match="ttl must be a number"):
        session.set_cache_config(ttl=-1)


async def test_another_clients_write_invalidates_and_the_next_read_sees_it(session: SessionContext) -> None:
    vid = await session.register_variable("temperature", "float", 0.7)
    b = await other_client(session)  # B joined with A's token
    try:
        assert await session.get_variable("temperature") == 0.7
        assert "temperature" in session.cache
        seen = invalidated(session, vid)
        await b.set_variable("temperature", 0.9)
        await asyncio.wait_for(seen.wait(), WAIT)
        assert "temperature" not in session.cache and vid not in session.cache
        assert await session.get_variable("temperature") == 0.9
        assert await session.get_variable(vid) == 0.9
    finally:
        await b.close()


async def test_deletes_and_batches_of_another_client_invalidate(session: SessionContext) -> None:
    ids = await session.register_variables(
        [{"name": n, "type": "integer", "initial_value": 1} for n in ("a", "b", "gone")]
    )
    b = await other_client(session)
    try:
        assert await session.get_variables(["a", "b", "gone"]) == {"a": 1, "b": 1, "gone": 1}
        assert all(name in session.cache for name in ("a", "b", "gone"))
        events = [invalidated(session, ids[n]) for n in ("a", "b", "gone")]
        await b.update_variables({"a": 2, "b": 3})
        await b.delete_variable("gone")
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), WAIT)
        assert await session.get_variables(["a", "b"]) == {"a": 2, "b": 3}
        assert await session.get_variable("gone", default="missing") == "missing"
    finally:
        await b.close()


async def test_a_client_always_reads_its_own_writes(session: SessionContext) -> None:
    vid = await session.register_variable("x", "integer", 0)
    for value in range(1, 40):
        assert await session.get_variable("x") == value - 1  # cached (a hit from the second round on)
        ref = "x" if value % 2 else vid
        if value % 3:
            await session.set_variable(ref, value)
        else:
            await session.update_variables({"x": value})
        assert await session.get_variable("x") == value  # no wait for the server's invalidation
        assert await session.get_variable(vid) == value
    assert session.get_cache_info()["hits"] > 0


async def test_cached_values_are_not_shared_with_callers(session: SessionContext) -> None:
    await session.register_variable("items", "list", [1, [2, 3], {"k": 4.0}])
    await session.register_variable("emb", "embedding", np.arange(4, dtype=np.float32))
    first = await session.get_variable("items")
    first[1].append(99)  # the caller's own object
    assert await session.get_variable("items") == [1, [2, 3], {"k": 4.0}]
    emb = await session.get_variable("emb")
    cached = await session.get_variable("emb")
    assert not emb.flags.writeable and not cached.flags.writeable  # read-only, as the server's replies are
    np.testing.assert_array_equal(cached, np.arange(4, dtype=np.float32))
    assert session.get_cache_info()["hits"] == 2


class HoldReplies(grpc.aio.UnaryUnaryClientInterceptor):
    """Holds the next GetVariable reply after it arrived, until released: an invalidation can overtake it."""

    def __init__(self) -> None:
        self.armed = False
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        call = await continuation(details, request)
        if not (self.armed and details.method.endswith(b"/GetVariable")):
            return call
        self.armed = False
        response = await call
        self.arrived.set()
        await self.release.wait()
        return response


async def test_an_invalidation_that_overtakes_a_read_keeps_its_reply_out(server: BridgeServer) -> None:
    hold = HoldReplies()
    channel = grpc.aio.insecure_channel(server.address, options=channel_options(), interceptors=[hold])
    try:
        a = await SessionContext("race", channel).initialize()
        vid = await a.register_variable("x", "integer", 1)
        b = await other_client(a)
        await a._invalidations.current()  # the stream is up before the read, so the read is tracked
        hold.armed = True
        read = asyncio.create_task(a.get_variable("x"))
        await asyncio.wait_for(hold.arrived.wait(), WAIT)  # the server answered 1 ...
        seen = invalidated(a, vid)
        await b.set_variable("x", 2)  # ... then B wrote 2, and A heard of it before its reply was handled
        await asyncio.wait_for(seen.wait(), WAIT)
        hold.release.set()
        assert await asyncio.wait_for(read, WAIT) == 1  # the read began before the write: 1 is its answer
        assert "x" not in a.cache  # but it is not cached: it would shadow 2
        assert await a.get_variable("x") == 2
        assert "x" in a.cache
        await b.close()
        await a.close()
    finally:
        await channel.close()


async def test_an_invalidation_older_than_the_cached_version_is_ignored(session: SessionContext) -> None:
    vid = await session.register_variable("x", "integer", 1)
    await session.set_variable("x", 2)  # version 2
    assert await session.get_variable("x") == 2
    assert session.cache.version("x") == 2
    assert not await session.cache.invalidate(vid, "written", version=2, name="x")  # the version it holds
    assert await session.get_variable("x") == 2 and session.get_cache_info()["hits"] == 1


@pytest.fixture
async def restartable() -> AsyncIterator[tuple[MemoryStore, int]]:
    store = MemoryStore()
    first = await BridgeServer(store=store).start()
    port = first.port
    await first.stop(1)
    yield store, port


async def test_a_server_restart_flushes_the_cache_and_it_refills(restartable: tuple[MemoryStore, int]) -> None:
    store, port = restartable
    server = await BridgeServer(port=port, store=store).start()
    async with connect(server.address, **FAST_RECONNECT) as channel:
        a = await SessionContext("restart", channel).initialize()
        await a.register_variable("x", "integer", 1)
        assert await a.get_variable("x") == 1 and "x" in a.cache
        await server.stop(1)
        await asyncio.wait_for(a._invalidations.wait_until(up=False), WAIT)
        assert a.get_cache_info()["size"] == 0 and a._invalidations.losses == 1
        server = await BridgeServer(port=port, store=store).start()  # same data: a durable store's restart
        try:
            b = await other_client(a)
            await b.set_variable("x", 3)  # written while A was not told of writes: the flush is what saves A
            await asyncio.wait_for(a._invalidations.wait_until(up=True), WAIT)
            assert await a.get_variable("x") == 3
            assert "x" in a.cache  # refilled, tracked by the new stream
            seen = invalidated(a, a.cache._alias["x"])
            await b.set_variable("x", 4)
            await asyncio.wait_for(seen.wait(), WAIT)
            assert await a.get_variable("x") == 4
            await b.close()
            await a.close()
        finally:
            await server.stop(1)


async def test_nothing_is_cached_while_the_stream_is_down(restartable: tuple[MemoryStore, int]) -> None:
    store, port = restartable
    server = await BridgeServer(port=port, store=store).start()
    async with connect(server.address, **FAST_RECONNECT) as channel:
        a = await SessionContext("down", channel).initialize()
        await a.register_variable("x", "integer", 1)
        await a.get_variable("x")
        a._invalidations.close()  # as if it were lost for good
        assert a.get_cache_info()["size"] == 0
        assert await a.get_variable("x") == 1
        assert a.get_cache_info()["size"] == 0  # read, but not cached: nobody would tell it of a write
        await a.close()
    await server.stop(1)


async def test_a_standalone_cache_can_be_given_to_a_session(server: BridgeServer, channel: grpc.aio.Channel) -> None:
    cache = VariableCache(ttl=30.0, max_size=10, eviction_policy="lfu")
    async with SessionContext("own_cache", channel, cache=cache) as session:
        await session.register_variable("x", "integer", 5)
        assert await session.get_variable("x") == 5
        assert session.cache is cache and "x" in cache
        assert session.get_cache_info()["eviction_policy"] == "lfu"


async def test_the_server_bounds_what_one_stream_tracks() -> None:
    from bridge import Limits

    server = await BridgeServer(limits=Limits(max_tracked_variables=2)).start()
    try:
        async with connect(server.address) as channel:
            a = await SessionContext("bounded", channel).initialize()
            ids = await a.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in "abc"])
            dropped = invalidated(a, ids["a"])
            for name in "abc":
                await a.get_variable(name)
            await asyncio.wait_for(dropped.wait(), WAIT)  # 'a' was the least recently read: dropped
            assert "a" not in a.cache and "b" in a.cache and "c" in a.cache
            await a.close()
    finally:
        await server.stop(1)


async def test_the_hit_path_takes_no_lock(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 1)
    await session.get_variable("x")
    async with session.cache._lock:  # held by a batch, say: a hit must not wait for it
        assert await asyncio.wait_for(session.get_variable("x"), WAIT) == 1
    assert session.get_cache_info()["hits"] == 1


async def test_entries_expire_after_their_ttl_on_the_sessions_clock(
    server: BridgeServer, channel: grpc.aio.Channel
) -> None:
    now = [100.0]
    cache = VariableCache(ttl=2.0, clock=lambda: now[0])
    async with SessionContext("ttl_clock", channel, cache=cache) as session:
        vid = await session.register_variable("x", "integer", 1)
        await session.get_variable("x")
        reads = await server_reads(server, vid)
        now[0] += 1.9
        await session.get_variable("x")  # still fresh: a hit
        assert await server_reads(server, vid) == reads
        now[0] += 0.2
        await session.get_variable("x")  # 2.1 s after the fill: expired, so read again
        assert await server_reads(server, vid) == reads + 1
        assert cache.info()["hits"] == 1


def test_the_servers_tracker_is_bounded_when_its_client_reads_nothing() -> None:
    from bridge import Limits
    from bridge.server._watch import Tracker

    tracker = Tracker("s", Limits(max_tracked_variables=2))
    for i in range(10):  # nothing drains its invalidations: as if the client stopped reading
        tracker.track([f"v{i}"])
        assert len(tracker.keys) <= 2 and len(tracker.pending) <= 2
    assert tracker.ended is not None  # the stream ends (UNAVAILABLE): the client flushes and reconnects


async def test_an_overlong_ref_is_refused_before_it_is_tracked(session: SessionContext) -> None:
    from bridge._proto import bridge_pb2 as pb

    tracking = await session._invalidations.current()
    request = pb.GetVariableRequest(ref="x" * 5000, tracking_id=tracking)
    with pytest.raises(ValueError, match="characters"):
        await session._call(session._stub.GetVariable, request, "get_variable")


async def test_a_session_initialized_again_after_close_caches_again(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 1)
    await session.close()
    await session.initialize()  # resumes with its token
    await session.get_variable("x")
    assert "x" in session.cache
