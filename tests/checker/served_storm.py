"""`dspex serve` processes that tests kill and start again, a watch follower, and the storm they run through,
for the recorded-history tests."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from history_checker import Call
from history_recorder import Recorder, storm

from bridge import SessionContext, VariableUpdate, Watch
from bridge.server._process import READY_PREFIX

WAIT = 20.0  # any one wait; a wait that needs it has failed
#: Reconnect within a fraction of a second of the server coming back (gRPC waits a second and more by default).
FAST_RECONNECT = {"grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200}


class Incarnations:
    """`dspex serve --store STORE` on one port, started again after each kill."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.port = 0  # the first start picks a free port; every later one takes it again
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def _options(self) -> list[str]:
        return ["--port", str(self.port), "--log-level", "warning"]

    async def start(self) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.server", "serve", "--store", self.store, *self._options()],
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


async def storm_through(
    session_id: str,
    names: list[str],
    writers: list[grpc.aio.Channel],
    watcher_channel: grpc.aio.Channel,
    kills: Callable[[Recorder], Awaitable[None]],
) -> tuple[list[Call], dict[str, Any], list[VariableUpdate]]:
    """One client per writer channel storms one session (client1 first: it creates the session and its variables)
    while a watcher on `watcher_channel` follows every variable; `kills(recorder)` kills and restarts servers
    mid-storm. Returns every call, the final values, and what the watcher got once it caught up with them."""
    first = await SessionContext(session_id, writers[0]).initialize()
    clients = [first] + [await SessionContext(session_id, ch, token=first.token).initialize() for ch in writers[1:]]
    for client in clients:
        client.set_cache_config(ttl=0)  # every read asks a server
    await first.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in names])
    watcher = await SessionContext(session_id, watcher_channel, token=first.token).initialize()
    watch = watcher.watch_variables(names, include_initial=False)
    await watch.started()
    follower = Follower(watch)
    recorder, stop = Recorder(), asyncio.Event()

    def reconnected(channel: grpc.aio.Channel) -> Callable[[], Awaitable[None]]:
        async def wait() -> None:  # its server is down: wait for the channel to be back, not for a while
            await asyncio.wait_for(channel.channel_ready(), WAIT)

        return wait

    storms = [
        asyncio.create_task(storm(recorder, i + 1, client, names, stop, reconnected(channel)))
        for i, (client, channel) in enumerate(zip(clients, writers, strict=True))
    ]
    await kills(recorder)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*storms), WAIT)
    finals = await first.get_variables(names)
    written = {name for call in recorder.calls for name in call.writes}

    def caught_up(seen: list[VariableUpdate]) -> bool:  # the final value of every variable written
        return all(any(u.name == n and u.value == finals[n] for u in seen) for n in written)

    await asyncio.wait_for(follower.until(caught_up), WAIT)
    follower.stop()
    for client in (*clients, watcher):
        await client.close()
    return recorder.calls, finals, follower.seen
