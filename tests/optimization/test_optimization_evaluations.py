"""Evaluations inside iterations (`record_evaluation`): each its own history entry, before its iteration's."""

from __future__ import annotations

import asyncio

import pytest

from bridge import SessionContext
from bridge._proto import bridge_pb2 as pb
from bridge.optimization import current_trial, record_evaluation


async def test_a_sync_objective_records_evaluations_from_its_thread(session: SessionContext) -> None:
    await session.register_variable("x", "float", 0.5, constraints={"min": 0.0, "max": 1.0})

    def objective(x: float) -> float:
        for k in range(3):  # say, three candidates it scored itself
            assert record_evaluation(x - k, {"description": f"candidate {k}"})
        return x

    await session.start_optimization("x", "random", max_iterations=4, objective=objective, seed=3)
    await asyncio.wait_for(session.wait_optimization("x"), 30)
    full = await session.get_optimization_history("x", include_evaluations=True)
    kinds = [(h["kind"], h["iteration"], h["evaluation"]) for h in full]
    assert kinds == [
        entry
        for i in range(1, 5)
        for entry in [("evaluation", i, 1), ("evaluation", i, 2), ("evaluation", i, 3), ("trial", i, None)]
    ]
    for h in full:
        if h["kind"] == "evaluation":
            assert h["metrics"]["description"] == f"candidate {h['evaluation'] - 1}"
            assert h["candidate"] == {"x": h["value"]}
    assert [h["kind"] for h in await session.get_optimization_history("x")] == ["trial"] * 4
    status = await session.get_optimization_status("x")
    assert status["iteration"] == 4  # evaluations are not iterations, nor candidates for the best


async def test_an_async_objective_records_too_and_nothing_is_recorded_outside_a_run(session: SessionContext) -> None:
    assert record_evaluation(1.0) is False and current_trial() is None
    await session.register_variable("y", "float", 0.5, constraints={"min": 0.0, "max": 1.0})

    async def objective(y: float) -> float:
        trial = current_trial()
        assert trial is not None
        trial.record_evaluation(float("nan"), {"note": "diverged"})  # not finite: recorded as failed
        return y

    await session.start_optimization("y", "random", max_iterations=2, objective=objective, seed=1)
    await asyncio.wait_for(session.wait_optimization("y"), 30)
    [first, *_] = await session.get_optimization_history("y", include_evaluations=True)
    assert (first["kind"], first["score"], first["state"]) == ("evaluation", None, "failed")
    assert first["metrics"] == {"note": "diverged", "score_not_finite": "nan"}


async def test_the_server_refuses_an_evaluation_of_no_iteration_in_progress(session: SessionContext) -> None:
    await session.register_variable("z", "float", 0.5, constraints={"min": 0.0, "max": 1.0})
    await session.start_optimization("z", "random", max_iterations=1, objective=lambda z: z, seed=1)
    status = await asyncio.wait_for(session.wait_optimization("z"), 30)
    request = pb.RecordEvaluationRequest(optimization_id=status["optimization_id"], iteration=1, evaluation=1)
    with pytest.raises(ValueError):  # the run has ended
        await session._call(session._stub.RecordEvaluation, request, "record_evaluation")


async def test_a_burst_of_evaluations_arrives_whole_and_in_order(session: SessionContext) -> None:
    await session.register_variable("w", "float", 0.5, constraints={"min": 0.0, "max": 1.0})

    def objective(w: float) -> float:
        for k in range(600):  # far more than could be in flight at once
            record_evaluation(float(k))
        return w

    await session.start_optimization("w", "random", max_iterations=2, objective=objective, seed=2)
    await asyncio.wait_for(session.wait_optimization("w"), 60)
    full = await session.get_optimization_history("w", limit=10_000, include_evaluations=True)
    for iteration in (1, 2):
        numbers = [h["evaluation"] for h in full if h["iteration"] == iteration and h["kind"] == "evaluation"]
        assert numbers == list(range(1, 601))


async def test_evaluations_without_metrics_still_count_against_the_history_budget() -> None:
    from bridge import BridgeServer, Limits, connect

    server = await BridgeServer(limits=Limits(max_optimization_history_bytes=4_000)).start()
    try:
        async with connect(server.address) as channel:
            session = await SessionContext("budget", channel).initialize()
            await session.register_variable("v", "float", 0.5, constraints={"min": 0.0, "max": 1.0})

            def objective(v: float) -> float:
                for _ in range(200):
                    record_evaluation(None)
                return v

            await session.start_optimization("v", "random", max_iterations=1, objective=objective, seed=0)
            await asyncio.wait_for(session.wait_optimization("v"), 60)
            full = await session.get_optimization_history("v", limit=10_000, include_evaluations=True)
            kept = [h for h in full if h["kind"] == "evaluation"]
            assert 0 < len(kept) < 200  # the budget stopped them: each entry costs at least 64 bytes
            await session.close()
    finally:
        await server.stop(1)
