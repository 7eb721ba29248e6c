"""Crash test: four clients storm `dspex serve --store sqlite:PATH` while it is SIGKILLed and restarted 3 times.

Each restart is a new process on the same port and file; the clients' channels reconnect, and
their calls carry the tokens they had. Kills come after a number of acknowledged writes, never
after a sleep. At the end the file's history must pass the checker: no acknowledged write lost
or doubled, no batch split, no read going back in time; and a watcher that lived through every
restart must have every version of every variable once, in order, without a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from history_checker import check, check_watch
from history_recorder import Recorder, as_updates, kept_history
from served_storm import FAST_RECONNECT, WAIT, Incarnations, storm_through

from bridge import connect
from bridge.store import SQLiteStore

NAMES = [f"x{i}" for i in range(6)]
CLIENTS = 4
RESTARTS = 3
WRITES_PER_LIFE = 120  # acknowledged writes between one start and the next kill
RUN_BOUND = 45.0  # the whole storm (about 5 s on a 2-core machine); with the checks, the test stays under 60 s


@pytest.mark.timeout(60)
async def test_no_acknowledged_write_is_lost_across_three_kills(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    server = Incarnations(f"sqlite:{path}")
    address = await server.start()
    channels = [connect(address, **FAST_RECONNECT) for _ in range(CLIENTS + 1)]
    try:
        *writers, watcher = channels
        calls, finals, seen = await asyncio.wait_for(
            storm_through("crash", NAMES, writers, watcher, _kills(server)), RUN_BOUND
        )
    finally:
        for channel in channels:
            await channel.close()
        server.stop()
    # The file, read by a store of its own once the last server stopped: what the server kept.
    store = SQLiteStore(path)
    try:
        histories = await kept_history(store, "crash", NAMES)
    finally:
        await store.close()
    assert check(histories, calls, finals) == []
    assert check_watch(as_updates(seen), histories, dict.fromkeys(NAMES, 1)) == []
    assert not [u for u in seen if u.kind != "update"]  # never a resync: the history was there to resume from
    acknowledged = sum(1 for c in calls if c.outcome == "ok" and c.writes)
    assert acknowledged >= (RESTARTS + 1) * WRITES_PER_LIFE and server.starts == RESTARTS + 1


def _kills(server: Incarnations) -> Callable[[Recorder], Awaitable[None]]:
    async def kills(recorder: Recorder) -> None:
        for _ in range(RESTARTS):
            await asyncio.wait_for(recorder.after_writes(WRITES_PER_LIFE).wait(), WAIT)
            server.kill()  # mid-storm: calls in flight get no answer
            await server.start()
        await asyncio.wait_for(recorder.after_writes(WRITES_PER_LIFE).wait(), WAIT)

    return kills
