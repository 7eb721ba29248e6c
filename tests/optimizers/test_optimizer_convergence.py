"""Every builtin finds the optimum of -(x - 0.3)^2 on [0, 2]; same seed, same sequence; tpe is bare Optuna."""

from __future__ import annotations

import optuna
import pytest
from convergence_budgets import BUDGETS
from optimizer_support import FAST, SPACE, parabola, run
from optuna.distributions import FloatDistribution

from optimizers import BUILTINS

CONVERGENCE = BUDGETS


def test_the_table_covers_every_builtin() -> None:
    assert set(CONVERGENCE) == set(BUILTINS) == set(FAST)


#: Two seeds each, but one for the slow GP-based optimizers.
SEEDED = [(name, seed) for name in sorted(CONVERGENCE) for seed in ((0,) if name in ("bayesian", "gp") else (0, 1))]


@pytest.mark.parametrize("name,seed", SEEDED)
def test_converges(name: str, seed: int) -> None:
    config, iterations, tolerance = CONVERGENCE[name]
    trials = run(name, config=config, seed=seed, iterations=iterations)
    assert len(trials) == iterations
    best = max(trials, key=lambda t: t.score if t.score is not None else float("-inf"))
    assert abs(best.candidate["x"] - 0.3) <= tolerance


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_minimizing_finds_the_same_optimum(name: str) -> None:
    config, iterations, tolerance = CONVERGENCE[name]
    trials = run(name, config=config, iterations=iterations, objective=lambda c: -parabola(c), direction="minimize")
    best = min(trials, key=lambda t: t.score if t.score is not None else float("inf"))
    assert abs(best.candidate["x"] - 0.3) <= tolerance


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_same_seed_same_sequence(name: str) -> None:
    first = [t.candidate for t in run(name, config=FAST[name], seed=7, iterations=12)]
    second = [t.candidate for t in run(name, config=FAST[name], seed=7, iterations=12)]
    assert first == second


@pytest.mark.parametrize("name", sorted(set(BUILTINS) - {"grid_search", "qmc"}))
def test_another_seed_another_sequence(name: str) -> None:
    """(The grid has no randomness; unscrambled Sobol points do not depend on the seed.)"""
    first = [t.candidate for t in run(name, config=FAST[name], seed=7, iterations=12)]
    second = [t.candidate for t in run(name, config=FAST[name], seed=8, iterations=12)]
    assert first != second


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_tpe_proposes_what_a_bare_optuna_loop_proposes(direction: str) -> None:
    seed, iterations = 42, 200
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed), direction=direction)
    bare = []
    for _ in range(iterations):
        trial = study.ask({"x": FloatDistribution(0, 2)})
        bare.append(trial.params["x"])
        study.tell(trial, parabola(trial.params))
    ours = [t.candidate["x"] for t in run("tpe", SPACE, seed=seed, iterations=iterations, direction=direction)]
    assert ours == bare
