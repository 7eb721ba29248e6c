"""Refused starts say what is wrong and change nothing; objectives that return garbage end the run as failed."""

from __future__ import annotations

from typing import Any

import pytest
from optimization_support import parabola, temperature

from bridge import SessionContext


async def _unchanged(session: SessionContext, name: str, value: Any, version: int) -> None:
    [info] = await session.list_variables(name)
    assert (info["value"] if "value" in info else await session.get_variable(name)) == value
    assert info["version"] == version
    assert (await session.get_optimization_status(name))["is_optimizing"] is False


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (
            {"optimizer_type": "simulated_annealing"},
            ValueError,
            r"unknown optimizer_type 'simulated_annealing'; known: "
            r"bayesian, cmaes, dspy_bootstrapfewshot, .*, gp, gradient, grid_search, nsga2, qmc, random, tpe",
        ),
        (
            {"optimizer_config": {"acquisition": "ei"}},
            ValueError,
            r"unknown optimizer_config keys \['acquisition'\] for 'bayesian'; accepted: \['acquisition_function', "
            r"'bounds', 'kappa', 'n_initial_points', 'patience', 'xi'\]",
        ),
        (
            {"optimizer_config": {"xi": "lots"}},
            ValueError,
            r"bayesian: optimizer_config\['xi'\]='lots' must be a number",
        ),
        ({"max_iterations": 0}, ValueError, r"max_iterations must be a positive int, got 0"),
        ({"max_iterations": -5}, ValueError, r"max_iterations must be a positive int, got -5"),
        ({"direction": "up"}, ValueError, r"direction must be one of \['maximize', 'minimize'\]"),
        ({"optimizer_config": {"patience": 0}}, ValueError, r"patience'\] must be a positive int"),
        (
            {"optimizer_config": {"bounds": {"temperature": (0.5, 3.0)}}},
            ValueError,
            r"temperature: bounds \(0.5, 3.0\) reach outside the variable's constraints \[0.0, 2.0\]",
        ),
        ({"optimizer_type": "gradient", "variable": ["temperature", "model"]}, ValueError, r"gradient"),
        (
            {"objective": None},
            ValueError,
            r"no objective for temperature: pass objective=fn to start_optimization, "
            r"or `await session.register_objective\('temperature', fn\)` first",
        ),
        ({"variable": "missing"}, KeyError, r"missing"),
    ],
    ids=[
        "unknown-optimizer",
        "unknown-config-key",
        "bad-config-value",
        "zero-iterations",
        "negative-iterations",
        "bad-direction",
        "bad-patience",
        "bounds-outside-constraints",
        "gradient-on-a-choice",
        "no-objective",
        "unknown-variable",
    ],
)
async def test_refused_start_changes_nothing(
    session: SessionContext, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    await temperature(session)
    await session.register_variable("model", "choice", "a", constraints={"choices": ["a", "b"]})
    call: dict[str, Any] = {"variable": "temperature", "optimizer_type": "bayesian", "objective": parabola}
    call.update(kwargs)
    with pytest.raises(error, match=match):
        await session.start_optimization(**call)
    await _unchanged(session, "temperature", 1.0, 1)
    await _unchanged(session, "model", "a", 1)


@pytest.mark.parametrize(
    "type_,value,constraints,match",
    [
        ("string", "gpt-4", None, r"prompt: a 'string' variable cannot be optimized: free text has no search space"),
        (
            "float",
            0.7,
            None,
            r"prompt: a 'float' variable needs finite bounds to be optimized: register it with "
            r"constraints=\{'min': ..., 'max': ...\}, or pass optimizer_config=\{'bounds'",
        ),
        ("float", 0.7, {"min": 0.0}, r"needs finite bounds"),
        ("integer", 3, {"max": 9}, r"needs finite bounds"),
        ("module", "Predict", None, r"prompt: a 'module' variable needs constraints=\{'choices': \[...\]\}"),
        ("list", [1, 2], None, r"a 'list' variable cannot be optimized"),
        ("dict", {"a": 1}, None, r"a 'dict' variable cannot be optimized"),
    ],
    ids=[
        "string",
        "float-unbounded",
        "float-half-bounded",
        "integer-half-bounded",
        "module-no-choices",
        "list",
        "dict",
    ],
)
async def test_variables_without_a_search_space_are_refused(
    session: SessionContext, type_: str, value: Any, constraints: dict | None, match: str
) -> None:
    await session.register_variable("prompt", type_, value, constraints=constraints)
    with pytest.raises(ValueError, match=match):
        await session.start_optimization("prompt", "tpe", objective=lambda v: 0.0)
    await _unchanged(session, "prompt", value, 1)


async def test_bounds_in_the_config_make_an_unbounded_float_searchable(session: SessionContext) -> None:
    await session.register_variable("learning_rate", "float", 0.01)
    await session.start_optimization(
        "learning_rate",
        "random",
        optimizer_config={"bounds": {"learning_rate": (0.001, 0.1)}},
        max_iterations=10,
        objective=lambda lr: -abs(lr - 0.05),
        seed=0,
    )
    status = await session.wait_optimization("learning_rate", timeout=30)
    history = await session.get_optimization_history("learning_rate")
    assert status["state"] == "completed" and all(0.001 <= h["value"] <= 0.1 for h in history)


@pytest.mark.parametrize(
    "objective,error",
    [
        (lambda x: float("nan"), "the objective's result is nan, not a finite number"),
        (lambda x: "great", "the objective's result is str 'great', not a number"),
        (lambda x: None, "the objective's result is NoneType 'None', not a number"),
        (lambda x: True, "the objective's result is bool 'True', not a number"),
        (lambda x: {"loss": 0.2}, "the objective returned metrics ['loss'] without 'score'"),
        (lambda x: (0.5, "details"), "a tuple result must be (score, metrics_dict)"),
    ],
    ids=["nan", "string", "none", "bool", "metrics-without-score", "bad-tuple"],
)
async def test_an_objective_returning_garbage_fails_the_run_and_restores_the_value(
    session: SessionContext, objective: Any, error: str
) -> None:
    await temperature(session)
    await session.start_optimization("temperature", "random", objective=objective, max_iterations=3, seed=0)
    status = await session.wait_optimization("temperature", timeout=30)
    assert status["state"] == "failed"
    assert status["error"].startswith(f"every iteration failed; the last error: {error}")
    assert status["best_value"] is None and status["best_score"] is None
    history = await session.get_optimization_history("temperature")
    assert [h["state"] for h in history] == ["failed"] * 3
    assert len({h["error"] for h in history}) == 1 and history[0]["error"].startswith(error)
    assert await session.get_variable("temperature") == 1.0  # the value the run started from
    [info] = await session.list_variables("temperature")
    assert info["last_update_metadata"]["final"] == "restored"


async def test_an_objective_that_always_raises_fails_the_run(session: SessionContext) -> None:
    await temperature(session)

    def broken(x: float) -> float:
        raise ConnectionError("LM unreachable")

    await session.start_optimization("temperature", "tpe", objective=broken, max_iterations=4, seed=0)
    status = await session.wait_optimization("temperature", timeout=30)
    assert status["state"] == "failed" and "ConnectionError: LM unreachable" in status["error"]
    assert await session.get_variable("temperature") == 1.0
    # a new run may start at once
    await session.start_optimization("temperature", "tpe", objective=parabola, max_iterations=2, seed=0)
    assert (await session.wait_optimization("temperature", timeout=30))["state"] == "completed"
