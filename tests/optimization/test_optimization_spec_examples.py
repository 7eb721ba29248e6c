"""The spec's "Optimization Integration" examples, run as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from optimization_support import accuracy, parabola, temperature
from spec_examples import run_example

from bridge import SessionContext


async def test_start_optimization_examples(session: SessionContext, capsys: pytest.CaptureFixture[str]) -> None:
    await temperature(session)
    await session.register_variable("learning_rate", "float", 0.05, constraints={"min": 0.001, "max": 0.2})
    await session.register_objective("temperature", accuracy, metric="accuracy")
    await session.register_objective("learning_rate", lambda lr: -((lr - 0.1) ** 2) * 100)

    out = await run_example("start_optimization", session=session)

    first = await session.wait_optimization("temperature", timeout=120)
    second = await session.wait_optimization("learning_rate", timeout=120)
    assert first["optimization_id"] != out["opt_id"] == second["optimization_id"]
    assert first["optimizer_type"] == "bayesian" and first["config"] == {
        "acquisition_function": "ei",
        "n_initial_points": 5,
    }
    assert first["state"] in ("completed", "converged") and first["max_iterations"] == 50
    assert second["optimizer_type"] == "gradient" and second["state"] in ("completed", "converged")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == second["iteration"] and printed[0].startswith("Iteration 1: ")


async def test_register_python_optimizer_example(
    session: SessionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_optimizers.py").write_text(
        "from optimizers import RandomOptimizer\n\n\n"
        "class CustomBayesianOptimizer(RandomOptimizer):\n"
        '    """Stands in for a user\'s own optimizer module."""\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    await temperature(session)
    await session.register_objective("temperature", parabola)

    out = await run_example("register_python_optimizer", session=session)

    status = await session.wait_optimization("temperature", timeout=60)
    assert status["optimization_id"] == out["opt_id"] and status["optimizer_type"] == "custom_bayesian"
    assert status["state"] in ("completed", "converged")


async def test_get_optimization_history_example(session: SessionContext) -> None:
    await temperature(session)
    await session.start_optimization(
        "temperature", "tpe", max_iterations=60, objective=accuracy, metric="accuracy", convergence_threshold=0, seed=0
    )
    await session.wait_optimization("temperature", timeout=60)

    out = await run_example("get_optimization_history", session=session)

    assert len(out["history"]) == 50  # limit=50: the most recent fifty
    assert out["iterations"] == list(range(11, 61))
    assert out["metrics"] == [accuracy(v)["accuracy"] for v in out["values"]]
