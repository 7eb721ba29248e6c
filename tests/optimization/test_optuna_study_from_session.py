"""A run's history becomes an Optuna study (any storage), so Optuna's plots and dashboard work on it."""

from __future__ import annotations

from pathlib import Path

import optuna
from optimization_support import accuracy, temperature

from bridge import SessionContext
from optimizers import load_study


async def test_load_study_from_a_live_session(session: SessionContext, tmp_path: Path) -> None:
    await temperature(session)
    await session.register_variable("model", "choice", "a", constraints={"choices": ["a", "b"]})
    await session.start_optimization(
        ["temperature", "model"],
        "tpe",
        max_iterations=20,
        convergence_threshold=0,
        objective=lambda c: accuracy(c["temperature"]),
        metric="accuracy",
        seed=0,
    )
    status = await session.wait_optimization("temperature", timeout=60)
    storage = f"sqlite:///{tmp_path / 'runs.db'}"

    study = await load_study(session, "temperature", storage=storage)

    assert len(study.trials) == 20 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_trial.params == status["best_candidate"]
    assert study.best_value == status["best_score"]
    assert study.best_trial.user_attrs["distance"] == status["best_metrics"]["distance"]
    assert study.study_name == f"temperature-{status['optimization_id']}"
    reloaded = optuna.load_study(study_name=study.study_name, storage=storage)  # what optuna-dashboard reads
    assert [t.params for t in reloaded.trials] == [t.params for t in study.trials]
