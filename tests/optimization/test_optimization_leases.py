"""Leases across clients: one run per variable, stops from anywhere, a killed client's lease expires."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap

import pytest
from optimization_support import other_client, parabola, temperature

from bridge import BridgeServer, SessionContext


async def test_two_clients_starting_at_once_exactly_one_wins(session: SessionContext) -> None:
    await temperature(session)
    other = await other_client(session)
    release = asyncio.Event()

    async def slow(x: float) -> float:
        await release.wait()
        return parabola(x)

    results = await asyncio.gather(
        session.start_optimization("temperature", "random", objective=slow, max_iterations=3),
        other.start_optimization("temperature", "tpe", objective=slow, max_iterations=3),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1
    assert isinstance(lost[0], ValueError) and "already being optimized" in str(lost[0])
    status = await session.get_optimization_status("temperature")
    assert status["is_optimizing"] and status["optimization_id"] == won[0]
    # a third try, after the fact, is refused the same way from either client
    for client in (session, other):
        with pytest.raises(ValueError, match="already being optimized"):
            await client.start_optimization("temperature", "random", objective=parabola)
    release.set()
    winner = session if results[0] == won[0] else other
    assert (await winner.wait_optimization("temperature", timeout=30))["state"] == "completed"


async def test_a_joint_run_takes_all_its_leases_or_none(session: SessionContext) -> None:
    await temperature(session)
    await temperature(session, "top_p", 0.5)
    release = asyncio.Event()

    async def slow(candidate: object) -> float:
        await release.wait()
        return 0.0

    await session.start_optimization("top_p", "random", objective=slow, max_iterations=2)
    with pytest.raises(ValueError, match="'top_p' is already being optimized"):
        await session.start_optimization(["temperature", "top_p"], "random", objective=slow)
    assert not (await session.get_optimization_status("temperature"))["is_optimizing"]  # no lease was kept
    opt_id = await session.start_optimization("temperature", "random", objective=slow, max_iterations=2)
    assert (await session.get_optimization_status("temperature"))["optimization_id"] == opt_id
    release.set()
    await session.wait_optimization("temperature", timeout=30)
    await session.wait_optimization("top_p", timeout=30)


async def test_stop_from_another_client_ends_the_run_within_one_iteration(session: SessionContext) -> None:
    await temperature(session)
    other = await other_client(session)
    in_third, stopped = asyncio.Event(), asyncio.Event()
    iterations: list[int] = []

    async def objective(x: float) -> float:
        iterations.append(len(iterations) + 1)
        if len(iterations) == 3:
            in_third.set()
            await stopped.wait()  # the stop arrives while iteration 3 is being evaluated
        return parabola(x)

    await session.start_optimization("temperature", "random", objective=objective, max_iterations=50)
    await asyncio.wait_for(in_third.wait(), 30)
    await other.stop_optimization("temperature")
    assert (await other.get_optimization_status("temperature"))["stop_requested"] is True
    stopped.set()
    status = await other.wait_optimization("temperature", timeout=30)  # waits on the server, not locally
    assert status["state"] == "stopped" and status["iteration"] == 3 and iterations == [1, 2, 3]
    assert await session.get_variable("temperature") == status["best_value"]
    with pytest.raises(ValueError, match="not being optimized"):
        await other.stop_optimization("temperature")


async def test_stop_without_a_run_is_a_value_error(session: SessionContext) -> None:
    await temperature(session)
    with pytest.raises(ValueError, match="'temperature' is not being optimized"):
        await session.stop_optimization("temperature")


async def test_wait_optimization_times_out(session: SessionContext) -> None:
    await temperature(session)
    release = asyncio.Event()

    async def slow(x: float) -> float:
        await release.wait()
        return 0.0

    await session.start_optimization("temperature", "random", objective=slow, max_iterations=1)
    other = await other_client(session)
    with pytest.raises(TimeoutError):
        await other.wait_optimization("temperature", timeout=0.2)
    with pytest.raises(TimeoutError):
        await session.wait_optimization("temperature", timeout=0.2)
    release.set()
    assert (await other.wait_optimization("temperature", timeout=30))["state"] == "completed"


async def test_closing_the_client_stops_its_runs_and_writes_the_best(session: SessionContext) -> None:
    await temperature(session)
    runner = await other_client(session)
    second = asyncio.Event()

    async def objective(x: float) -> float:
        second.set()
        await asyncio.sleep(0)
        return parabola(x)

    await runner.start_optimization("temperature", "random", objective=objective, max_iterations=10_000)
    await asyncio.wait_for(second.wait(), 30)
    await runner.close()
    status = await session.get_optimization_status("temperature")
    assert status["state"] == "stopped" and await session.get_variable("temperature") == status["best_value"]


_KILLED_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from bridge import SessionContext, connect

    async def main(address, session_id, token):
        async with connect(address) as channel:
            session = await SessionContext(session_id, channel, token=token).initialize()
            hang = asyncio.Event()

            async def objective(x):
                if hang.is_set():
                    await asyncio.Event().wait()  # a long evaluation: the heartbeat keeps the lease alive
                return -(x - 0.3) ** 2

            def callback(iteration, value, metrics):
                if iteration == 2:
                    hang.set()
                    print("iterating", flush=True)

            await session.start_optimization(
                "temperature", "random", objective=objective, callback=callback, max_iterations=100, lease_ttl=1.0
            )
            await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_killed_client_s_lease_expires_and_a_new_run_starts(session: SessionContext, server) -> None:
    if not isinstance(server, BridgeServer):
        pytest.fail("this test drives an in-process server")
    await temperature(session)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_CLIENT,
        server.address,
        session.session_id,
        session.token,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line == b"iterating\n"
        with pytest.raises(TimeoutError):  # alive through several lease lifetimes: its heartbeat renews it
            await session.wait_optimization("temperature", timeout=2.5)
        running = await session.get_optimization_status("temperature")
        assert running["is_optimizing"] and running["iteration"] == 2
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    status = await session.wait_optimization("temperature", timeout=30)  # the server ends it when the lease lapses
    assert status["state"] == "expired" and not status["is_optimizing"]
    assert "lease" in status["error"]
    assert await session.get_variable("temperature") == status["best_value"]  # its best written back
    opt_id = await session.start_optimization("temperature", "random", objective=parabola, max_iterations=3)
    assert opt_id != status["optimization_id"]
    assert (await session.wait_optimization("temperature", timeout=30))["state"] == "completed"
