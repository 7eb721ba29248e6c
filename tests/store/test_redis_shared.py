"""Two Redis stores on one prefix, as two servers on one Redis: what one server holds for itself never
outlives a change the other made (a session deleted and created again under the same ID, above all)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis_servers import prefix_for, redis_url
from test_conformance import bump, create, new_session, unstored
from test_optimization_conformance import run

from bridge.errors import BridgeError
from bridge.store import LogEntry, SessionRecord, Store, open_store

WAIT = 10.0


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    spec = f"{redis_url()}?prefix={prefix_for(tmp_path)}"
    a, b = open_store(spec), open_store(spec)
    yield a, b
    await a.close()
    await b.close()


async def _recreate(store: Store, session_id: str, token_hash: str = "hash2") -> None:
    await store.delete_session(session_id)
    now = time.time()
    assert await store.create_session(SessionRecord(session_id, token_hash, now, now, 600.0))


async def test_a_write_through_a_server_holding_the_old_session_goes_to_the_new_one(pair: tuple[Store, Store]) -> None:
    a, b = pair
    sid = await new_session(a, "s1")
    await create(a, sid, x=0)
    await bump(a, sid, "x")  # a holds x as of revision 2
    await _recreate(b, sid)
    await create(b, sid, x=100)  # the new session's x, at revision 1
    await bump(b, sid, "x")  # revision 2 again: the same number as what a holds
    await bump(a, sid, "x")
    [x] = await b.list_variables(sid)
    assert (unstored(x.value), x.version) == (102, 3)  # the new x, written on (the old one was at 1)


async def test_a_touch_never_writes_an_older_session_over_a_new_one(pair: tuple[Store, Store], tmp_path: Path) -> None:
    a, b = pair
    sid = await new_session(a, "s1")
    assert (await a.get_session(sid)).token_hash == "hash"  # a holds the record now
    await _recreate(b, sid, token_hash="hash2")
    await a.touch_session(sid, time.time())
    third = open_store(f"{redis_url()}?prefix={prefix_for(tmp_path)}")  # holds nothing yet: reads Redis
    try:
        assert (await third.get_session(sid)).token_hash == "hash2"
    finally:
        await third.close()


async def test_a_listener_on_one_server_gets_the_new_sessions_writes_from_the_other(pair: tuple[Store, Store]) -> None:
    a, b = pair
    sid = await new_session(a, "s1")
    await create(a, sid, x=0)
    for _ in range(5):
        await bump(a, sid, "x")  # a's idea of the revision: 6
    await _recreate(b, sid)
    await create(b, sid, x=0)
    seen: list[LogEntry | BridgeError | None] = []
    arrived = asyncio.Event()

    def listener(entry: LogEntry | BridgeError | None) -> None:
        seen.append(entry)
        arrived.set()

    a.listen(sid, listener)
    await a.snapshot(sid, ["x"])  # the reader has started
    await bump(b, sid, "x")
    await asyncio.wait_for(arrived.wait(), WAIT)
    assert [e.revision for e in seen if isinstance(e, LogEntry)] == [2]


async def test_a_refused_claim_leaves_no_index_entry(pair: tuple[Store, Store], tmp_path: Path) -> None:
    a, b = pair
    now = time.time()
    assert await a.create_session(SessionRecord("s1", "hash", now, now, 600.0))
    assert await a.claim_optimization(run("opt_a", "v1"), now) is None
    for i in range(5):
        holder = await b.claim_optimization(run(f"opt_b{i}", "v1"), now)
        assert holder is not None and holder.id == "opt_a"
    client = aioredis.Redis.from_url(redis_url())
    try:
        assert await client.hkeys(f"{prefix_for(tmp_path)}:runs") == [b"opt_a"]
    finally:
        await client.aclose()
