"""A run's history converts to an Optuna study (in memory or in any Optuna storage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from bridge.optimization._space import Dimension, SearchSpace
from optimizers import to_optuna_study

SPACE = SearchSpace(
    (
        Dimension("temperature", "float", 0.0, 2.0),
        Dimension("max_tokens", "integer", 16, 512),
        Dimension("model", "categorical", choices=("small", "large")),
    )
)
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _history() -> list[dict[str, Any]]:
    entries = []
    for i in range(5):
        failed = i == 3
        entries.append(
            {
                "iteration": i,
                "value": 0.1 * i,
                "candidate": {"temperature": 0.1 * i, "max_tokens": 16 * (i + 1), "model": ("small", "large")[i % 2]},
                "score": None if failed else 0.5 + 0.1 * i,
                "metrics": {} if failed else {"accuracy": 0.5 + 0.1 * i, "per_example": [1, 0, 1], "raw": object()},
                "timestamp": START + timedelta(seconds=i),
                "optimization_id": "opt_1",
                "state": "failed" if failed else "ok",
                "error": "timeout" if failed else None,
            }
        )
    return entries


def _check(study: optuna.Study, history: list[dict[str, Any]]) -> None:
    assert len(study.trials) == len(history)
    for trial, entry in zip(study.trials, history, strict=True):
        assert trial.params == entry["candidate"]
        if entry["state"] == "failed":
            assert trial.state == TrialState.FAIL and trial.value is None
            assert trial.system_attrs["dspex:error"] == "timeout"
        else:
            assert trial.state == TrialState.COMPLETE and trial.value == pytest.approx(entry["score"])
            assert trial.user_attrs == {"accuracy": entry["metrics"]["accuracy"], "per_example": [1, 0, 1]}
        assert trial.system_attrs["dspex:iteration"] == entry["iteration"]
        assert trial.system_attrs["dspex:optimization_id"] == "opt_1"
        assert trial.datetime_start == entry["timestamp"].astimezone().replace(tzinfo=None)


def test_round_trip_in_memory() -> None:
    history = _history()
    study = to_optuna_study(history, SPACE, direction="maximize")
    _check(study, history)
    assert study.best_trial.params == history[4]["candidate"]
    assert study.trials[0].distributions["max_tokens"] == optuna.distributions.IntDistribution(16, 512)


def test_round_trip_through_sqlite(tmp_path: Path) -> None:
    history = _history()
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    to_optuna_study(history, SPACE, direction="minimize", storage=storage, study_name="run_1")
    loaded = optuna.load_study(study_name="run_1", storage=storage)
    _check(loaded, history)
    assert loaded.direction == optuna.study.StudyDirection.MINIMIZE
    to_optuna_study(history[:1], SPACE, storage=storage, study_name="run_1", load_if_exists=True)
    assert len(optuna.load_study(study_name="run_1", storage=storage).trials) == 6


def test_a_candidate_outside_the_space_is_named() -> None:
    entry = {**_history()[0], "candidate": {"temperature": 3.0, "max_tokens": 16, "model": "small"}}
    with pytest.raises(ValueError, match="iteration 0"):
        to_optuna_study([entry], SPACE)
    with pytest.raises(ValueError, match=r"lacks \['model'\]"):
        to_optuna_study([{**entry, "candidate": {"temperature": 1.0, "max_tokens": 16}}], SPACE)
