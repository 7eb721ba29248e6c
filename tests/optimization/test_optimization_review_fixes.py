"""Runs driven by another session, deletes during a run, time across resumes, failures vs convergence, waits."""

from __future__ import annotations

import asyncio

import pytest
from optimization_support import Recorder, other_client, parabola, temperature

from bridge import BridgeServer, SessionContext, connect


async def test_another_session_with_optimize_permission_drives_a_run(new_session) -> None:
    owner = await new_session("owner")
    var_id = await owner.register_variable(
        "temperature",
        "float",
        1.0,
        constraints={"min": 0.0, "max": 2.0},
        access_rules=[{"session_pattern": "tuner_*", "permissions": ["read", "optimize"]}],
    )
    tuner = await new_session("tuner_1")
    await tuner.start_optimization(var_id, "random", objective=parabola, max_iterations=4, seed=0)
    status = await tuner.wait_optimization(var_id, timeout=30)
    assert status["state"] == "completed" and status["iteration"] == 4
    assert await owner.get_optimization_status("temperature") == status  # the owner sees the tuner's run
    assert await owner.get_variable("temperature") == status["best_value"]
    stranger = await new_session("stranger")
    with pytest.raises(KeyError, match="not found"):  # it may do nothing with it: for it, there is no such variable
        await stranger.start_optimization(var_id, "random", objective=parabola)


async def test_the_owner_stops_a_run_another_session_drives(new_session) -> None:
    owner = await new_session("owner2")
    var_id = await owner.register_variable(
        "t",
        "float",
        1.0,
        constraints={"min": 0.0, "max": 2.0},
        access_rules=[{"session_pattern": "tuner_*", "permissions": ["read", "optimize"]}],
    )
    tuner = await new_session("tuner_2")
    running = asyncio.Event()

    async def objective(x: float) -> float:
        running.set()
        await asyncio.sleep(0)
        return parabola(x)

    await tuner.start_optimization(var_id, "random", objective=objective, max_iterations=100_000)
    await asyncio.wait_for(running.wait(), 30)
    await owner.stop_optimization("t")
    assert (await tuner.wait_optimization(var_id, timeout=30))["state"] == "stopped"


async def test_a_variable_cannot_be_deleted_while_a_run_holds_it(session: SessionContext) -> None:
    await temperature(session)
    await temperature(session, "top_p", 0.5)
    release = asyncio.Event()

    async def slow(candidate: dict) -> float:
        await release.wait()
        return 0.0

    await session.start_optimization(["temperature", "top_p"], "random", objective=slow, max_iterations=2)
    with pytest.raises(ValueError, match=r"cannot delete .top_p. while opt_.* optimizes it"):
        await session.delete_variable("top_p")
    release.set()
    await session.wait_optimization("top_p", timeout=30)
    await session.delete_variable("top_p")  # allowed once the run ended; the other keeps its history
    assert len(await session.get_optimization_history("temperature")) == 2


async def test_time_is_counted_once_across_a_resume() -> None:
    now = [1000.0]
    async with BridgeServer(clock=lambda: now[0]) as server, connect(server.address) as channel:
        session = await SessionContext("clocked", channel).initialize()
        await temperature(session)

        def objective(x: float) -> float:
            now[0] += 5.0  # each evaluation takes five (server) seconds
            return parabola(x)

        async def stop_after_two(iteration: int, value: float, metrics: dict) -> None:
            if iteration == 2:
                await session.stop_optimization("temperature")

        await session.start_optimization("temperature", "random", objective=objective, callback=stop_after_two)
        first = await session.wait_optimization("temperature", timeout=30)
        assert first["state"] == "stopped" and first["elapsed_seconds"] == 10.0
        now[0] += 100.0  # a pause between the runs counts for nothing
        await session.start_optimization("temperature", "random", objective=objective, max_iterations=5, resume=True)
        status = await session.wait_optimization("temperature", timeout=30)
        assert status["state"] == "completed" and status["iteration"] == 5
        assert status["elapsed_seconds"] == 25.0
        stats = (await session.get_variables(["temperature"], include_stats=True))["temperature"]["stats"]
        assert stats["total_optimization_time_s"] == 25.0


async def test_failed_iterations_do_not_count_toward_convergence(session: SessionContext) -> None:
    await temperature(session)
    calls = {"n": 0}

    def mostly_down(x: float) -> float:
        calls["n"] += 1
        if calls["n"] > 1:
            raise TimeoutError("LM rate limited")
        return parabola(x)

    await session.start_optimization(
        "temperature",
        "random",
        optimizer_config={"patience": 3},
        convergence_threshold=0.5,
        max_iterations=8,
        objective=mostly_down,
    )
    status = await session.wait_optimization("temperature", timeout=30)
    assert status["state"] == "completed" and status["iteration"] == 8  # not "converged" after 1 success + 3 errors


async def test_explicit_direction_overrides_the_registered_objective(session: SessionContext) -> None:
    await temperature(session)
    await session.register_objective("temperature", lambda x: (x - 0.3) ** 2)  # a loss, registered as maximize
    await session.start_optimization(
        "temperature", "tpe", direction="minimize", max_iterations=40, convergence_threshold=0, seed=0
    )
    status = await session.wait_optimization("temperature", timeout=60)
    assert status["direction"] == "minimize" and abs(status["best_value"] - 0.3) < 0.05


async def test_wait_optimization_keeps_within_the_session_s_call_timeout(session: SessionContext) -> None:
    await temperature(session)

    async def working(x: float) -> float:
        await asyncio.sleep(0.25)  # stands in for an evaluation: the run lasts about 1.25 s
        return parabola(x)

    await session.start_optimization("temperature", "random", objective=working, max_iterations=5)
    impatient = await SessionContext(session.session_id, session.channel, token=session.token, timeout=0.4).initialize()
    status = await impatient.wait_optimization("temperature", timeout=30)
    assert status["state"] == "completed"


async def test_a_report_over_the_trial_size_limit_fails_the_run_clearly(session: SessionContext) -> None:
    await temperature(session)
    await session.start_optimization(
        "temperature", "random", objective=lambda x: (0.5, {"log": "x" * 20_000}), max_iterations=3
    )
    status = await session.wait_optimization("temperature", timeout=30)
    assert status["state"] == "failed" and "the limit is 16384" in status["error"]
    assert await session.get_variable("temperature") == 1.0


async def test_a_resumed_run_continues_the_uninterrupted_sequence(session: SessionContext) -> None:
    await temperature(session)
    await temperature(session, "reference")

    async def stop_at_four(iteration: int, value: float, metrics: dict) -> None:
        if iteration == 4:
            await session.stop_optimization("temperature")

    common = {"objective": parabola, "seed": 3, "convergence_threshold": 0}
    await session.start_optimization("temperature", "gradient", max_iterations=10, callback=stop_at_four, **common)
    assert (await session.wait_optimization("temperature", timeout=30))["iteration"] == 4
    await session.start_optimization("temperature", "gradient", max_iterations=10, resume=True, **common)
    await session.wait_optimization("temperature", timeout=30)
    resumed = [h["value"] for h in await session.get_optimization_history("temperature")]
    seen = Recorder()
    await session.start_optimization("reference", "gradient", max_iterations=10, callback=seen, **common)
    await session.wait_optimization("reference", timeout=30)
    assert resumed == [v for _, v, _ in seen.calls]  # iterations 5..10 are what the uninterrupted run did


async def test_a_live_client_keeps_its_lease_through_a_long_evaluation(session: SessionContext) -> None:
    await temperature(session)
    runner = await other_client(session)
    inside, release = asyncio.Event(), asyncio.Event()

    async def long_evaluation(x: float) -> float:
        inside.set()
        await release.wait()
        return parabola(x)

    await runner.start_optimization("temperature", "random", objective=long_evaluation, max_iterations=1, lease_ttl=0.5)
    await asyncio.wait_for(inside.wait(), 30)
    with pytest.raises(TimeoutError):  # three lease lifetimes pass: the heartbeat keeps the run alive
        await session.wait_optimization("temperature", timeout=1.5)
    assert (await session.get_optimization_status("temperature"))["is_optimizing"]
    release.set()
    assert (await session.wait_optimization("temperature", timeout=30))["state"] == "completed"
