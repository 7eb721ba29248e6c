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
from typing import Any

import grpc
import pytest
from history_checker import Call, check, check_watch
from history_recorder import Recorder, as_updates, kept_history, storm
from served_storm import FAST_RECONNECT, WAIT, Follower, Incarnations

from bridge import SessionContext, VariableUpdate, connect
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
        calls, finals, seen = await asyncio.wait_for(_storm_through_restarts(server, channels), RUN_BOUND)
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


async def _storm_through_restarts(
    server: Incarnations, channels: list[grpc.aio.Channel]
) -> tuple[list[Call], dict[str, Any], list[VariableUpdate]]:
    *writer_channels, watcher_channel = channels
    first = await SessionContext("crash", writer_channels[0]).initialize()
    clients = [first] + [
        await SessionContext("crash", ch, token=first.token).initialize() for ch in writer_channels[1:]
    ]
    for client in clients:
        client.set_cache_config(ttl=0)  # every read asks the server
    await first.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in NAMES])
    watcher = await SessionContext("crash", watcher_channel, token=first.token).initialize()
    watch = watcher.watch_variables(NAMES, include_initial=False)
    await watch.started()
    follower = Follower(watch)
    recorder, stop = Recorder(), asyncio.Event()

    def reconnected(channel: grpc.aio.Channel) -> Callable[[], Awaitable[None]]:
        async def wait() -> None:  # the server is down: wait for the channel to be back, not for a while
            await asyncio.wait_for(channel.channel_ready(), WAIT)

        return wait

    storms = [
        asyncio.create_task(storm(recorder, i + 1, client, NAMES, stop, reconnected(channel)))
        for i, (client, channel) in enumerate(zip(clients, writer_channels, strict=True))
    ]
    for _ in range(RESTARTS):
        await asyncio.wait_for(recorder.after_writes(WRITES_PER_LIFE).wait(), WAIT)
        server.kill()  # mid-storm: calls in flight get no answer
        await server.start()
    await asyncio.wait_for(recorder.after_writes(WRITES_PER_LIFE).wait(), WAIT)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*storms), WAIT)
    finals = await first.get_variables(NAMES)
    written = {name for call in recorder.calls for name in call.writes}

    def caught_up(seen: list[VariableUpdate]) -> bool:  # the final value of every variable written
        return all(any(u.name == n and u.value == finals[n] for u in seen) for n in written)

    await asyncio.wait_for(follower.until(caught_up), WAIT)
    follower.stop()
    for client in (*clients, watcher):
        await client.close()
    return recorder.calls, finals, follower.seen
