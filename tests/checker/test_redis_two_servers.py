"""Two `dspex serve` processes on one Redis: four clients spread over both while each server is SIGKILLed and restarted.

Clients 1-2 write through server A, clients 3-4 through server B, all in one session; a watcher
is on A. B is killed mid-storm and started again, then A (the watcher's server): its watch
resumes on the restarted A from the Redis event log, which kept every write made through B
meanwhile. Kills come after a number of acknowledged writes, never after a sleep. At the end
the history Redis kept must pass the checker, and the watcher on A must have every version of
every variable once, in order: the writes through B included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from history_checker import check, check_watch
from history_recorder import Recorder, as_updates, kept_history
from redis_servers import prefix_for, redis_url
from served_storm import FAST_RECONNECT, WAIT, Incarnations, storm_through

from bridge import connect
from bridge.store import open_store

NAMES = [f"x{i}" for i in range(6)]
WRITES_PER_LIFE = 120  # acknowledged writes between one start and the next kill
RUN_BOUND = 45.0


@pytest.mark.timeout(60)
async def test_two_servers_on_one_redis_lose_nothing_when_each_is_killed(tmp_path: Path) -> None:
    spec = f"{redis_url()}?prefix={prefix_for(tmp_path)}"
    a, b = Incarnations(spec), Incarnations(spec)
    address_a, address_b = await a.start(), await b.start()
    on_a = [connect(address_a, **FAST_RECONNECT) for _ in range(3)]  # two writers and the watcher
    on_b = [connect(address_b, **FAST_RECONNECT) for _ in range(2)]
    try:
        *writers_a, watcher = on_a
        calls, finals, seen = await asyncio.wait_for(
            storm_through("shared", NAMES, [*writers_a, *on_b], watcher, _kills(a, b)), RUN_BOUND
        )
    finally:
        for channel in (*on_a, *on_b):
            await channel.close()
        a.stop()
        b.stop()
    store = open_store(spec)  # what Redis kept, read by a store of its own once both servers stopped
    try:
        histories = await kept_history(store, "shared", NAMES)
    finally:
        await store.close()
    assert check(histories, calls, finals) == []
    assert check_watch(as_updates(seen), histories, dict.fromkeys(NAMES, 1)) == []
    assert not [u for u in seen if u.kind != "update"]  # never a resync: the log had every write to resume from
    through_b = sum(1 for c in calls if c.outcome == "ok" and c.writes and c.client in ("client3", "client4"))
    assert through_b >= WRITES_PER_LIFE  # B's share of 3 lives of writes, all seen by the watcher on A
    assert a.starts == 2 and b.starts == 2


def _kills(a: Incarnations, b: Incarnations) -> Callable[[Recorder], Awaitable[None]]:
    async def kills(recorder: Recorder) -> None:
        for server in (b, a):
            await asyncio.wait_for(recorder.after_writes(WRITES_PER_LIFE).wait(), WAIT)
            server.kill()  # mid-storm: calls in flight through it get no answer; the other server goes on
            await server.start()
        await asyncio.wait_for(recorder.after_writes(WRITES_PER_LIFE).wait(), WAIT)

    return kills
