"""A server restarted on its SQLite file: sessions, tokens, watches and leases carry on where they were."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import textwrap
from pathlib import Path

from bridge import BridgeServer, SessionContext, VariableUpdate, connect
from bridge.store import SQLiteStore

WAIT = 30.0
FAST_RECONNECT = {"grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200}


async def _take(watch: object, n: int) -> list[VariableUpdate]:
    async def collect() -> list[VariableUpdate]:
        return [await anext(watch) for _ in range(n)]  # type: ignore[call-overload]

    return await asyncio.wait_for(collect(), WAIT)


async def test_sessions_tokens_and_watches_resume_after_a_restart(tmp_path: Path) -> None:
    spec = f"sqlite:{tmp_path / 's.db'}"
    server = await BridgeServer(store=spec).start()
    port, store_id = server.port, server.store.store_id
    try:
        async with connect(server.address, **FAST_RECONNECT) as channel:
            session = await SessionContext("durable", channel).initialize()
            token = session.token
            await session.register_variable("x", "integer", 0)
            watch = session.watch_variable("x", include_initial=False)
            await watch.started()
            for value in range(1, 4):
                await session.set_variable("x", value)
            seen = await _take(watch, 3)
            await server.stop(1)
            server = await BridgeServer(port=port, store=spec).start()
            assert server.store.store_id == store_id  # the same store: clients keep their sessions
            await asyncio.wait_for(channel.channel_ready(), WAIT)
            for value in range(4, 7):
                await session.set_variable("x", value)
            seen += await _take(watch, 3)
            assert session.token == token  # resumed, not re-created
            assert [(u.kind, u.value, u.old_value, u.version) for u in seen] == [
                ("update", v, v - 1, v + 1) for v in range(1, 7)
            ]
            assert [u.revision for u in seen] == list(range(2, 8))
            again = await SessionContext("durable", channel, token=token).initialize()  # a new client, the old token
            assert await again.get_variable("x") == 6
            await again.close()
            await session.close()
    finally:
        await server.stop(1)


_DYING_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from bridge import SessionContext, connect

    async def main(address, session_id, token):
        async with connect(address) as channel:
            session = await SessionContext(session_id, channel, token=token).initialize()
            started = asyncio.Event()

            async def objective(x):
                if started.is_set():
                    await asyncio.Event().wait()  # evaluates until killed
                started.set()
                print("iterating", flush=True)
                return -(x - 0.3) ** 2

            await session.start_optimization("t", "random", objective=objective, max_iterations=100, lease_ttl=1.0)
            await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_lease_of_a_client_that_died_expires_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    server = await BridgeServer(store=f"sqlite:{path}").start()
    port = server.port
    async with connect(server.address, **FAST_RECONNECT) as channel:
        session = await SessionContext("leases", channel).initialize()
        await session.register_variable("t", "float", 0.5, constraints={"min": 0.0, "max": 1.0})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _DYING_CLIENT, server.address, "leases", session.token, stdout=asyncio.subprocess.PIPE
        )
        try:
            assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"iterating\n"  # type: ignore[union-attr]
            await server.stop(0)  # the server goes while the client holds the lease...
            proc.send_signal(signal.SIGKILL)  # ...and the client dies while it is gone
            await proc.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        file = SQLiteStore(path)
        [held] = await file.live_optimizations()  # the file kept the run, still holding its lease
        await file.close()
        server = await BridgeServer(port=port, store=f"sqlite:{path}", reap_interval=0.2).start()
        try:
            await asyncio.wait_for(channel.channel_ready(), WAIT)
            status = await session.wait_optimization("t", timeout=WAIT)  # the reaper ends it once the lease lapses
            assert (status["optimization_id"], status["state"]) == (held.id, "expired")
            assert "lease" in status["error"]
            await session.close()
        finally:
            await server.stop(1)
