"""Four clients of one session write and read concurrently through a real server (the `server` fixture,
so DSPEX_TEST_STORE picks its store); the recorded history passes the checker, and so does a watcher's."""

from __future__ import annotations

import asyncio

import pytest
from history_checker import check, check_watch
from history_recorder import Recorder, as_updates, kept_history, storm

from bridge import BridgeServer, SessionContext, VariableUpdate, connect

NAMES = [f"x{i}" for i in range(5)]
WRITES = 400
WAIT = 60.0


async def test_concurrent_clients_keep_every_property(server: BridgeServer) -> None:
    if not hasattr(server, "store"):
        pytest.skip("reads the in-process server's store")
    async with (
        connect(server.address) as c0,
        connect(server.address) as c1,
        connect(server.address) as c2,
        connect(server.address) as c3,
        connect(server.address) as cw,
    ):
        first = await SessionContext("storm", c0).initialize()
        clients = [first] + [await SessionContext("storm", c, token=first.token).initialize() for c in (c1, c2, c3)]
        for client in clients:
            client.set_cache_config(ttl=0)  # every read asks the server
        await first.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in NAMES])
        watcher = await SessionContext("storm", cw, token=first.token).initialize()
        watch = watcher.watch_variables(NAMES, include_initial=False)
        await watch.started()
        seen: list[VariableUpdate] = []
        recorder, stop = Recorder(), asyncio.Event()
        enough = recorder.after_writes(WRITES)

        async def broken() -> None:
            raise AssertionError("a call got no answer from a server that never went away")

        storms = [asyncio.create_task(storm(recorder, i + 1, c, NAMES, stop, broken)) for i, c in enumerate(clients)]
        await asyncio.wait_for(enough.wait(), WAIT)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*storms), WAIT)
        finals = await first.get_variables(NAMES)
        histories = await kept_history(server.store, "storm", NAMES)
        last = {name: versions[-1].version for name, versions in histories.items()}

        async def follow() -> None:
            async for update in watch:
                seen.append(update)
                if all(any(u.name == n and u.version == last[n] for u in seen) for n in NAMES if last[n] > 1):
                    return

        await asyncio.wait_for(follow(), WAIT)
        assert check(histories, recorder.calls, finals) == []
        assert check_watch(as_updates(seen), histories, dict.fromkeys(NAMES, 1)) == []
        assert {c.outcome for c in recorder.calls} == {"ok"}
        for client in (*clients, watcher):
            await client.close()
