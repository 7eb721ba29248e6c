"""Crash test: four clients storm `dspex serve --store sqlite:PATH` while it is SIGKILLed and restarted 3 times.

Each restart is a new process on the same port and file; the clients' channels reconnect, and
their calls carry the tokens they had. Kills come after a number of acknowledged writes, never
after a sleep. At the end the file's history must pass the checker: no acknowledged write lost
or doubled, no batch split, no read going back in time; and a watcher that lived through every
restart must have every version of every variable once, in order, without a gap.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from history_checker import Call, check, check_watch
from history_recorder import Recorder, as_updates, kept_history, storm

from bridge import SessionContext, VariableUpdate, Watch, connect
from bridge.server._process import READY_PREFIX
from bridge.store import SQLiteStore

NAMES = [f"x{i}" for i in range(6)]
CLIENTS = 4
RESTARTS = 3
WRITES_PER_LIFE = 120  # acknowledged writes between one start and the next kill
WAIT = 20.0  # any one wait; a wait that needs it has failed
RUN_BOUND = 45.0  # the whole storm (about 5 s on a 2-core machine); with the checks, the test stays under 60 s
#: Reconnect within a fraction of a second of the server coming back (gRPC waits a second and more by default).
FAST_RECONNECT = {"grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200}


class Incarnations:
    """`dspex serve` on one file and one port, started again after each kill."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = 0  # the first start picks a free port; every later one takes it again
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def _options(self) -> list[str]:
        return ["--port", str(self.port), "--log-level", "warning"]

    async def start(self) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.server", "serve", "--store", f"sqlite:{self.path}", *self._options()],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        self.proc = proc
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT)
        assert line.startswith(READY_PREFIX), f"dspex serve did not start (exit code {proc.poll()})"
        address = line[len(READY_PREFIX) :].strip()
        self.port = int(address.rsplit(":", 1)[1])
        self.starts += 1
        return address

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(5) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(WAIT)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.mark.timeout(60)
async def test_no_acknowledged_write_is_lost_across_three_kills(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    server = Incarnations(path)
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


class Follower:
    """Collects a watch's updates; `until` waits for a condition on them, woken by each update."""

    def __init__(self, watch: Watch) -> None:
        self.seen: list[VariableUpdate] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._follow(watch))

    async def _follow(self, watch: Watch) -> None:
        async for update in watch:
            self.seen.append(update)
            self._changed.set()

    async def until(self, done: Callable[[list[VariableUpdate]], bool]) -> None:
        while not done(self.seen):
            assert not self._task.done(), f"the watch ended: {self._task}"
            self._changed.clear()
            await self._changed.wait()

    def stop(self) -> None:
        self._task.cancel()


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
