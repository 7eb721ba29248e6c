"""A resumed run continues from its earlier trials instead of starting over."""

from __future__ import annotations

import pytest
from optimizer_support import FAST, SPACE, drive, parabola, run
from optuna.trial import TrialState

from bridge.optimization._space import Dimension, SearchSpace, Trial
from optimizers import BUILTINS, BayesianOptimizer, GridSearchOptimizer, TPEOptimizer


@pytest.mark.parametrize("name", ["bayesian", "gradient"])
def test_replaying_optimizers_resume_where_they_stopped(name: str) -> None:
    """With the same seed, a resumed run proposes what the uninterrupted run proposed."""
    config = FAST[name]
    whole = run(name, config=config, seed=4, iterations=10)
    resumed = BUILTINS[name](SPACE, config, seed=4, trials=whole[:6])
    assert [t.candidate for t in drive(resumed, parabola, 4, start=6)] == [t.candidate for t in whole[6:]]


def test_grid_skips_points_already_scored_and_retries_failed_ones() -> None:
    space = SearchSpace((Dimension("x", "float", 0.0, 1.0), Dimension("c", "categorical", choices=("u", "v"))))
    everything = [t.candidate for t in run("grid_search", space, {"n_points": 3}, iterations=99, objective=lambda c: 1)]
    done = [Trial(i, c, 1.0) for i, c in enumerate(everything[:3])]
    done[1] = Trial(1, everything[1], None)  # failed: tried again
    done.append(Trial(3, {"x": 0.123, "c": "u"}, 1.0))  # not a point of this grid: ignored
    grid = GridSearchOptimizer(space, {"n_points": 3}, trials=done)
    rest = [t.candidate for t in drive(grid, lambda c: 1.0, 99, start=4)]
    assert rest == [everything[1], *everything[3:]]


def test_optuna_study_holds_the_earlier_trials() -> None:
    earlier = run("tpe", iterations=8)
    earlier[2] = Trial(2, earlier[2].candidate, None, {})
    tpe = TPEOptimizer(SPACE, seed=1, trials=earlier)
    trials = tpe.study.trials
    assert [t.params for t in trials] == [t.candidate for t in earlier]
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert [t.value for t in trials if t.state == TrialState.COMPLETE] == [t.score for t in earlier if t.ok]
    assert trials[0].user_attrs == earlier[0].metrics
    drive(tpe, parabola, 3, start=8)
    assert len(tpe.study.trials) == 11


def test_optuna_restore_leaves_out_trials_outside_the_space() -> None:
    narrow = SearchSpace((Dimension("x", "float", 0.0, 1.0),))
    tpe = TPEOptimizer(narrow, trials=[Trial(0, {"x": 0.5}, 1.0), Trial(1, {"x": 1.5}, 2.0)])
    assert [t.params for t in tpe.study.trials] == [{"x": 0.5}]


def test_optuna_tell_of_an_unasked_iteration_adds_the_trial() -> None:
    tpe = TPEOptimizer(SPACE, seed=0)
    tpe.tell(5, {"x": 0.25}, -0.1, {"note": "from elsewhere", "bad": object()})
    (trial,) = tpe.study.trials
    assert trial.params == {"x": 0.25} and trial.value == -0.1 and trial.user_attrs == {"note": "from elsewhere"}


def test_optuna_failed_tell_is_a_fail_trial_with_its_metrics() -> None:
    tpe = TPEOptimizer(SPACE, seed=0)
    candidate = tpe.ask(0)
    tpe.tell(0, candidate, None, {"error_rate": 1.0})
    (trial,) = tpe.study.trials
    assert trial.state == TrialState.FAIL and trial.user_attrs == {"error_rate": 1.0}


def test_bayesian_registers_a_failure_with_the_worst_score_so_far() -> None:
    bayes = BayesianOptimizer(SPACE, {"n_initial_points": 3}, seed=0)
    first = bayes.ask(0)
    bayes.tell(0, first, None, {})
    assert len(bayes._bo.space) == 0  # nothing to compare with yet
    scores = []
    for i in range(1, 3):
        candidate = bayes.ask(i)
        scores.append(parabola(candidate))
        bayes.tell(i, candidate, scores[-1], {})
    failed = bayes.ask(3)
    bayes.tell(3, failed, None, {})
    assert list(bayes._bo.space.target) == [*scores, min(scores)]
    bayes.tell(3, failed, 0.0, {})  # the same point again: the first result stands
    assert len(bayes._bo.space) == 3
