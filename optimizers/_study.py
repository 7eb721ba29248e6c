"""A run's history as an Optuna study, for `optuna.visualization` and optuna-dashboard."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from bridge.optimization import SearchSpace, search_space

from ._optuna_samplers import distributions, quiet, user_attrs


def to_optuna_study(
    history: Sequence[Mapping[str, Any]],
    space: SearchSpace,
    *,
    direction: str = "maximize",
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    load_if_exists: bool = False,
) -> optuna.Study:
    """One trial per history entry (oldest first): COMPLETE with its score, or FAIL; metrics as user attributes.

    `storage` is any Optuna storage (None: in memory; e.g. "sqlite:///runs.db" for
    optuna-dashboard). The entry's timestamp becomes the trial's start and completion
    time (in local time, as Optuna keeps them); its iteration, optimization_id and error
    are kept as system attributes ("dspex:iteration", ...). A non-finite score is a FAIL.
    """
    dists = distributions(space)
    trials = []
    for entry in history:
        candidate = entry["candidate"]
        missing = sorted(set(space.names) - set(candidate))
        if missing:
            raise ValueError(f"iteration {entry.get('iteration')}: candidate {candidate!r} lacks {missing}")
        score = entry.get("score")
        failed = entry.get("state") == "failed" or score is None or not math.isfinite(score)
        try:
            trial = optuna.trial.create_trial(
                state=TrialState.FAIL if failed else TrialState.COMPLETE,
                value=None if failed else float(score),
                params={name: candidate[name] for name in space.names},
                distributions=dists,
                user_attrs=user_attrs(entry.get("metrics") or {}),
                system_attrs={
                    f"dspex:{key}": entry[key]
                    for key in ("iteration", "optimization_id", "error")
                    if entry.get(key) is not None
                },
            )
        except ValueError as exc:
            raise ValueError(f"iteration {entry.get('iteration')}: {exc}") from exc
        timestamp = entry.get("timestamp")
        if isinstance(timestamp, datetime):
            # Optuna's own times are naive local time (and SQL storages drop the zone).
            local = timestamp.astimezone().replace(tzinfo=None) if timestamp.tzinfo else timestamp
            trial.datetime_start = trial.datetime_complete = local
        trials.append(trial)
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, load_if_exists=load_if_exists
    )
    with quiet():
        study.add_trials(trials)
    return study


async def load_study(
    session: Any,
    variable: str,
    *,
    optimization_id: str | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    limit: int = 10_000,
) -> optuna.Study:
    """The Optuna study of a variable's optimization run (the latest, or `optimization_id`), read from a session.

    The space is rebuilt from the variables' current types and constraints, and the
    direction and variables are those of the optimization status. `study_name` defaults
    to "<variable>-<optimization_id>", so several runs can share one storage.
    """
    status = await session.get_optimization_status(variable)
    run_id = optimization_id or status["optimization_id"]
    names = list(status["variables"])
    history = await session.get_optimization_history(variable, limit=limit, optimizer_id=run_id)
    infos = await session.get_variables(names, include_metadata=True)
    space = search_space([infos[name] for name in names], (status["config"] or {}).get("bounds"))
    return to_optuna_study(
        sorted(history, key=lambda entry: entry["iteration"]),
        space,
        direction=status["direction"],
        storage=storage,
        study_name=study_name or f"{variable}-{run_id}",
    )
