"""Runs through a real server: every builtin finds the optimum, and status, history and callback agree."""

from __future__ import annotations

import math

import pytest
from convergence_budgets import BUDGETS
from optimization_support import OPTIMUM, Recorder, accuracy, other_client, parabola, temperature

from bridge import SessionContext


@pytest.mark.parametrize("optimizer", sorted(BUDGETS))
async def test_each_builtin_reaches_the_optimum(session: SessionContext, optimizer: str) -> None:
    config, iterations, tolerance = BUDGETS[optimizer]
    await temperature(session)
    seen = Recorder()
    await session.start_optimization(
        "temperature",
        optimizer,
        optimizer_config=config,
        max_iterations=iterations,
        convergence_threshold=0,  # run the whole budget
        callback=seen,
        objective=parabola,
        seed=0,
    )
    status = await session.wait_optimization("temperature", timeout=120)
    assert status["state"] == "completed" and not status["is_optimizing"]
    assert status["iteration"] == iterations == len(seen.calls)
    assert abs(status["best_value"] - OPTIMUM) <= tolerance
    assert await session.get_variable("temperature") == status["best_value"]  # the variable ends on the best
    assert all(0.0 <= value <= 2.0 for _, value, _ in seen.calls)


async def test_history_status_and_callback_agree_entry_for_entry(session: SessionContext) -> None:
    await temperature(session)
    seen = Recorder()
    opt_id = await session.start_optimization(
        "temperature",
        "tpe",
        max_iterations=15,
        convergence_threshold=0,
        callback=seen,
        objective=accuracy,
        metric="accuracy",
        seed=3,
    )
    status = await session.wait_optimization("temperature", timeout=60)
    history = await session.get_optimization_history("temperature", limit=50)
    assert [(h["iteration"], h["value"], h["metrics"]) for h in history] == seen.calls
    assert [h["iteration"] for h in history] == list(range(1, 16))
    assert {h["optimization_id"] for h in history} == {opt_id} and {h["state"] for h in history} == {"ok"}
    best = max(history, key=lambda h: h["score"])
    assert status["best_value"] == best["value"] and status["best_score"] == best["score"]
    assert status["best_metrics"] == best["metrics"] and status["best_iteration"] == best["iteration"]
    assert status["optimization_id"] == opt_id and status["optimizer_type"] == "tpe"
    assert status["started_at"] <= history[0]["timestamp"] <= history[-1]["timestamp"] <= status["last_update"]
    assert status["started_at"].tzinfo is not None
    # the spec's plotting snippet
    metrics = [h["metrics"]["accuracy"] for h in history]
    assert metrics == [h["score"] for h in history]
    # another client of the session sees the same status and history
    other = await other_client(session)
    assert await other.get_optimization_status("temperature") == await session.get_optimization_status("temperature")
    assert await other.get_optimization_history("temperature", limit=50) == history
    assert await session.get_optimization_history("temperature", limit=4) == history[-4:]
    assert await session.get_optimization_history("temperature", since=history[9]["timestamp"]) == history[10:]


async def test_status_before_any_run(session: SessionContext) -> None:
    await temperature(session)
    status = await session.get_optimization_status("temperature")
    assert status["is_optimizing"] is False
    assert all(value is None for key, value in status.items() if key != "is_optimizing")
    for key in ("optimization_id", "iteration", "best_value", "best_metrics", "started_at", "last_update", "state"):
        assert key in status
    assert await session.get_optimization_history("temperature") == []


async def test_each_candidate_is_a_versioned_write_by_the_run(session: SessionContext) -> None:
    await temperature(session)
    seen: list[tuple[float, str, dict]] = []

    async def objective(x: float) -> float:  # while a candidate is evaluated, the variable holds it
        [info] = await session.list_variables("temperature", include_values=True)
        seen.append((info["value"] - x, info["updated_by"], info["last_update_metadata"]))
        return parabola(x)

    opt_id = await session.start_optimization("temperature", "random", max_iterations=5, objective=objective, seed=1)
    await session.wait_optimization("temperature", timeout=60)
    assert seen == [(0.0, opt_id, {"optimization_id": opt_id, "iteration": i}) for i in range(1, 6)]
    [info] = await session.list_variables("temperature")
    assert info["version"] == 1 + 5 + 1  # registration, five candidates, the best written back
    assert info["updated_by"] == opt_id and info["last_update_metadata"]["final"] == "best"
    stats = (await session.get_variables(["temperature"], include_stats=True))["temperature"]["stats"]
    assert stats["total_optimization_time_s"] > 0


async def test_joint_search_over_a_float_and_a_choice(session: SessionContext) -> None:
    await temperature(session)
    await session.register_variable("model", "choice", "small", constraints={"choices": ["small", "medium", "large"]})
    bonus = {"small": 0.0, "medium": 0.5, "large": 0.2}
    seen = Recorder()

    def objective(candidate: dict) -> float:
        return parabola(candidate["temperature"]) + bonus[candidate["model"]]

    await session.register_objective(["temperature", "model"], objective)
    await session.start_optimization(
        ["temperature", "model"], "tpe", max_iterations=40, convergence_threshold=0, callback=seen, seed=0
    )
    status = await session.wait_optimization("model", timeout=60)
    assert status["variables"] == ["temperature", "model"]
    assert status["best_candidate"]["model"] == "medium" and status["best_value"] == "medium"
    assert abs(status["best_candidate"]["temperature"] - OPTIMUM) < 0.1
    assert all(set(v) == {"temperature", "model"} and v["model"] in bonus for _, v, _ in seen.calls)
    assert await session.get_variables(["temperature", "model"]) == status["best_candidate"]
    assert (await session.get_optimization_status("temperature"))["optimization_id"] == status["optimization_id"]


@pytest.mark.parametrize("optimizer", ["bayesian", "tpe", "random", "grid_search", "gradient", "cmaes"])
async def test_integer_variables_only_ever_get_integers_within_bounds(session: SessionContext, optimizer: str) -> None:
    await session.register_variable("max_demos", "integer", 4, constraints={"min": 1, "max": 8})
    seen = Recorder()
    await session.start_optimization(
        "max_demos",
        optimizer,
        max_iterations=12,
        convergence_threshold=0,
        callback=seen,
        objective=lambda n: -abs(n - 6),
        seed=2,
    )
    await session.wait_optimization("max_demos", timeout=120)
    values = [value for _, value, _ in seen.calls]
    assert values and all(type(v) is int and 1 <= v <= 8 for v in values)
    assert type(await session.get_variable("max_demos")) is int


async def test_bayesian_config_changes_the_proposed_sequence(session: SessionContext) -> None:
    await temperature(session)

    async def sequence(config: dict) -> list[float]:
        seen = Recorder()
        await session.start_optimization(
            "temperature",
            "bayesian",
            optimizer_config=config,
            max_iterations=7,
            convergence_threshold=0,
            callback=seen,
            objective=parabola,
            seed=5,
        )
        await session.wait_optimization("temperature", timeout=60)
        return [value for _, value, _ in seen.calls]

    base = await sequence({"n_initial_points": 3, "xi": 0.01})
    assert await sequence({"n_initial_points": 3, "xi": 0.01}) == base  # same config, same candidates
    assert await sequence({"n_initial_points": 3, "xi": 0.5}) != base
    assert await sequence({"n_initial_points": 4, "xi": 0.01}) != base
    assert await sequence({"n_initial_points": 3, "acquisition_function": "ucb", "kappa": 0.1}) != base


async def test_grid_search_completes_when_the_grid_is_exhausted(session: SessionContext) -> None:
    await temperature(session)
    await session.register_variable("style", "choice", "a", constraints={"choices": ["a", "b"]})
    seen = Recorder()
    await session.start_optimization(
        ["temperature", "style"],
        "grid_search",
        optimizer_config={"n_points": 3},
        max_iterations=100,
        convergence_threshold=0,
        callback=seen,
        objective=lambda c: parabola(c["temperature"]),
    )
    status = await session.wait_optimization("style", timeout=60)
    assert status["state"] == "completed" and status["iteration"] == 6
    assert [v for _, v, _ in seen.calls] == [
        {"temperature": t, "style": s} for t in (0.0, 1.0, 2.0) for s in ("a", "b")
    ]


async def test_convergence_threshold_ends_the_run_as_converged(session: SessionContext) -> None:
    await temperature(session)
    await session.start_optimization(
        "temperature",
        "random",
        optimizer_config={"patience": 5},
        max_iterations=100,
        convergence_threshold=0.5,  # no 5-iteration stretch gains 0.5 on a parabola this flat
        objective=lambda x: 0.1 * parabola(x),
        seed=0,
    )
    status = await session.wait_optimization("temperature", timeout=60)
    assert status["state"] == "converged"
    assert status["iteration"] == 6  # the first iteration sets the best; five more without enough gain


async def test_minimize(session: SessionContext) -> None:
    await temperature(session)
    await session.start_optimization(
        "temperature",
        "tpe",
        max_iterations=40,
        convergence_threshold=0,
        objective=lambda x: (x - OPTIMUM) ** 2,
        direction="minimize",
        seed=0,
    )
    status = await session.wait_optimization("temperature", timeout=60)
    assert status["direction"] == "minimize" and abs(status["best_value"] - OPTIMUM) < 0.05
    assert status["best_score"] == min(h["score"] for h in await session.get_optimization_history("temperature"))


async def test_async_objective_and_async_callback(session: SessionContext) -> None:
    await temperature(session)
    seen: list[int] = []

    async def objective(x: float) -> tuple[float, dict]:
        current = await session.get_variable("temperature")  # the objective reads the candidate it scores
        return parabola(current), {"read_back": current == x}

    async def callback(iteration: int, value: float, metrics: dict) -> None:
        seen.append(iteration)

    await session.start_optimization("temperature", "random", max_iterations=4, callback=callback, objective=objective)
    await session.wait_optimization("temperature", timeout=60)
    history = await session.get_optimization_history("temperature")
    assert seen == [1, 2, 3, 4] and all(h["metrics"]["read_back"] is True for h in history)
    assert all(math.isclose(h["score"], parabola(h["value"])) for h in history)


async def test_an_objective_that_sometimes_raises_records_failed_iterations(session: SessionContext) -> None:
    await temperature(session)
    calls = {"n": 0}

    def flaky(x: float) -> float:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            raise RuntimeError(f"LM timeout on call {calls['n']}")
        return parabola(x)

    seen = Recorder()
    await session.start_optimization("temperature", "tpe", max_iterations=6, callback=seen, objective=flaky, seed=0)
    status = await session.wait_optimization("temperature", timeout=60)
    history = await session.get_optimization_history("temperature")
    assert status["state"] == "completed" and [h["state"] for h in history] == ["ok", "failed"] * 3
    failed = history[1]
    assert failed["score"] is None and failed["error"] == "RuntimeError: LM timeout on call 2"
    assert seen.calls[1] == (2, failed["value"], {"error": "RuntimeError: LM timeout on call 2"})
    assert status["best_value"] in {h["value"] for h in history if h["state"] == "ok"}


async def test_a_callback_that_raises_is_logged_not_fatal(session: SessionContext, caplog) -> None:
    await temperature(session)

    def broken(iteration: int, value: float, metrics: dict) -> None:
        raise ValueError("plotting failed")

    await session.start_optimization("temperature", "random", max_iterations=3, callback=broken, objective=parabola)
    status = await session.wait_optimization("temperature", timeout=60)
    assert status["state"] == "completed" and status["iteration"] == 3
    assert sum("optimization callback raised" in r.getMessage() for r in caplog.records) == 3


async def test_registered_objective_serves_the_specs_calls(session: SessionContext) -> None:
    await temperature(session)
    await session.register_objective("temperature", accuracy, metric="accuracy")
    opt_id = await session.start_optimization(
        "temperature",
        "bayesian",
        optimizer_config={"acquisition_function": "ei", "n_initial_points": 3},
        max_iterations=6,
    )
    status = await session.wait_optimization("temperature", timeout=60)
    assert status["optimization_id"] == opt_id and status["metric"] == "accuracy"
    assert set(status["best_metrics"]) == {"accuracy", "distance"}


async def test_resume_continues_a_stopped_run(session: SessionContext) -> None:
    await temperature(session)
    stopped_at = 4

    async def stop_at_four(iteration: int, value: float, metrics: dict) -> None:
        if iteration == stopped_at:
            await session.stop_optimization("temperature")

    opt_id = await session.start_optimization(
        "temperature",
        "tpe",
        max_iterations=10,
        callback=stop_at_four,
        objective=parabola,
        seed=0,
        convergence_threshold=0,
    )
    assert (await session.wait_optimization("temperature", timeout=60))["state"] == "stopped"
    resumed = await session.start_optimization(
        "temperature", "tpe", max_iterations=10, objective=parabola, seed=0, resume=True, convergence_threshold=0
    )
    assert resumed == opt_id
    status = await session.wait_optimization("temperature", timeout=60)
    history = await session.get_optimization_history("temperature")
    assert status["state"] == "completed" and status["iteration"] == 10
    assert [h["iteration"] for h in history] == list(range(1, 11))

    # the uninterrupted run with the same seed proposes the same first four candidates
    await session.register_variable("fresh", "float", 1.0, constraints={"min": 0.0, "max": 2.0})
    await session.start_optimization("fresh", "tpe", max_iterations=4, objective=parabola, seed=0)
    await session.wait_optimization("fresh", timeout=60)
    fresh = await session.get_optimization_history("fresh")
    assert [h["value"] for h in fresh] == [h["value"] for h in history[:4]]
