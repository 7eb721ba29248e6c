"""Candidates always lie in the space, with the right Python types; grid and gradient specifics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optimizer_support import CATEGORICAL, FAST, SPACE, drive, parabola, run

from bridge.optimization._space import Dimension, SearchSpace
from optimizers import BUILTINS, GradientOptimizer, GridSearchOptimizer

INTEGERS = SearchSpace((Dimension("n", "integer", -3, 7, initial=2), Dimension("bit", "integer", 0, 1)))
JOINT = SearchSpace(
    (
        Dimension("x", "float", 0.0, 2.0, initial=1.0),
        Dimension("model", "categorical", choices=("small", "large", "huge")),
        Dimension("cot", "categorical", choices=(False, True)),
        Dimension("only", "categorical", choices=("fixed",)),
    )
)


def _joint(candidate: dict[str, Any]) -> float:
    return parabola(candidate) + (candidate["model"] == "large") + 0.5 * candidate["cot"]


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_integer_dimensions_get_python_ints(name: str) -> None:
    trials = run(name, INTEGERS, FAST[name], iterations=8, objective=lambda c: -abs(c["n"] - 4) - c["bit"])
    assert trials
    for trial in trials:
        assert all(type(v) is int for v in trial.candidate.values()), trial.candidate
        INTEGERS.check(trial.candidate, name)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_floats_are_python_floats(name: str) -> None:
    assert all(type(t.candidate["x"]) is float for t in run(name, config=FAST[name], iterations=8))


@pytest.mark.parametrize("name", CATEGORICAL)
def test_a_joint_float_and_categorical_space(name: str) -> None:
    trials = run(name, JOINT, FAST[name], iterations=6, objective=_joint)
    assert len(trials) == 6
    for trial in trials:
        assert JOINT.check(trial.candidate, name) == trial.candidate
        assert list(trial.candidate) == JOINT.names
        assert type(trial.candidate["cot"]) is bool


def test_tpe_finds_the_categorical_optimum() -> None:
    trials = run("tpe", JOINT, iterations=40, objective=_joint)
    best = max(trials, key=lambda t: t.score or -1e9).candidate
    assert best["model"] == "large" and best["cot"] is True


bounds = st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e6)).map(lambda t: (t[0], t[0] + t[1]))
integer_bounds = st.tuples(st.integers(-1000, 1000), st.integers(0, 50)).map(lambda t: (t[0], t[0] + t[1]))


@pytest.mark.parametrize("name", sorted(BUILTINS))
@settings(max_examples=8, deadline=None)
@given(x=bounds, n=integer_bounds, seed=st.integers(0, 2**31 - 1))
def test_candidates_stay_in_random_spaces(name: str, x: tuple[float, float], n: tuple[int, int], seed: int) -> None:
    space = SearchSpace(
        (
            Dimension("x", "float", x[0], x[1], initial=x[0]),
            Dimension("n", "integer", n[0], n[1]),
        )
    )
    rng = np.random.default_rng(seed)
    trials = run(name, space, FAST[name], seed=seed, iterations=6, objective=lambda c: float(rng.normal()))
    assert trials
    for trial in trials:
        assert space.check(trial.candidate, name) == trial.candidate
        assert type(trial.candidate["x"]) is float and type(trial.candidate["n"]) is int


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_failed_iterations_are_survived(name: str) -> None:
    trials = run(name, config=FAST[name], iterations=12, objective=lambda c: None if c["x"] > 1 else parabola(c))
    assert len(trials) == (4 if name == "grid_search" else 12)
    assert all(SPACE.check(t.candidate, name) for t in trials)


# grid_search


def test_grid_is_the_row_major_product_then_none() -> None:
    space = SearchSpace((Dimension("x", "float", 0.0, 1.0), Dimension("c", "categorical", choices=("u", "v"))))
    grid = GridSearchOptimizer(space, {"n_points": 3})
    points = [grid.ask(i) for i in range(6)]
    assert points == [{"x": x, "c": c} for x in (0.0, 0.5, 1.0) for c in ("u", "v")]
    assert grid.ask(6) is None and grid.ask(7) is None


def test_grid_n_points_include_both_ends_and_run_out() -> None:
    trials = run("grid_search", config={"n_points": 21}, iterations=100)
    assert [t.candidate["x"] for t in trials] == pytest.approx(np.linspace(0, 2, 21).tolist())
    assert trials[0].candidate["x"] == 0.0 and trials[-1].candidate["x"] == 2.0


def test_grid_integers_are_rounded_and_deduplicated() -> None:
    space = SearchSpace((Dimension("n", "integer", 0, 3),))
    assert [t.candidate["n"] for t in drive(GridSearchOptimizer(space), lambda c: 0.0, 50)] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0.25, [0.0, 0.25, 0.5, 0.75, 1.0]), ({"x": 0.4}, [0.0, 0.4, 0.8]), (2.0, [0.0])],
)
def test_grid_step(step: Any, expected: list[float]) -> None:
    grid = GridSearchOptimizer(SearchSpace((Dimension("x", "float", 0.0, 1.0),)), {"step": step})
    assert [t.candidate["x"] for t in drive(grid, lambda c: 0.0, 50)] == pytest.approx(expected)


# gradient


@pytest.mark.parametrize("start", [0.0, 0.3, 0.5, 1.0, 1.5, 2.0, None])
def test_gradient_defaults_converge_from_any_start(start: float | None) -> None:
    space = SearchSpace((Dimension("x", "float", 0.0, 2.0, initial=start),))
    trials = run("gradient", space, iterations=60)
    assert abs(max(trials, key=lambda t: t.score or -1e9).candidate["x"] - 0.3) <= 0.02


def test_gradient_pairs_are_symmetric_around_the_start() -> None:
    plus, minus = (t.candidate["x"] for t in run("gradient", iterations=2))
    assert (plus + minus) / 2 == pytest.approx(1.0)  # the variable's current value
    unset = SearchSpace((Dimension("x", "float", 0.0, 2.0),))
    plus, minus = (t.candidate["x"] for t in run("gradient", unset, iterations=2))
    assert (plus + minus) / 2 == pytest.approx(1.0)  # the middle of the range


def test_gradient_spsa_and_central_coincide_for_one_variable() -> None:
    def steps(method: str) -> list[float]:
        xs = [t.candidate["x"] for t in run("gradient", config={"method": method}, seed=11, iterations=40)]
        return [x for i in range(0, 40, 2) for x in sorted(xs[i : i + 2])]

    assert steps("spsa") == pytest.approx(steps("central"))


def test_gradient_central_perturbs_one_dimension_at_a_time() -> None:
    space = SearchSpace((Dimension("x", "float", 0.0, 2.0, initial=1.0), Dimension("y", "float", 0.0, 4.0)))
    first = [t.candidate for t in run("gradient", space, {"method": "central"}, iterations=4, objective=lambda c: 0.0)]
    assert [c["y"] for c in first[:2]] == [2.0, 2.0] and [c["x"] for c in first[2:]] == [1.0, 1.0]
    spsa = [t.candidate for t in run("gradient", space, iterations=2, objective=lambda c: 0.0)]
    assert all(c["x"] != 1.0 and c["y"] != 2.0 for c in spsa)  # both at once


def test_gradient_perturbs_integers_by_at_least_one() -> None:
    space = SearchSpace((Dimension("n", "integer", 0, 100, initial=50),))
    trials = run("gradient", space, iterations=40, objective=lambda c: -(((c["n"] - 20) / 50) ** 2))
    pairs = [(trials[i].candidate["n"], trials[i + 1].candidate["n"]) for i in range(0, 40, 2)]
    assert all(a != b for a, b in pairs)
    assert abs(max(trials, key=lambda t: t.score or -1e9).candidate["n"] - 20) <= 2


def test_gradient_failed_evaluation_skips_the_update() -> None:
    def centers(objective: Any) -> list[float]:
        xs = [t.candidate["x"] for t in run("gradient", iterations=4, objective=objective)]
        return [(xs[0] + xs[1]) / 2, (xs[2] + xs[3]) / 2]

    failing = iter([0.0, None, 0.0, 0.0])
    assert centers(lambda c: next(failing)) == pytest.approx([1.0, 1.0])
    first, second = centers(parabola)
    assert second < first  # descending towards 0.3


def test_gradient_with_several_asks_outstanding() -> None:
    optimizer = GradientOptimizer(SPACE, seed=0)
    asked = {i: optimizer.ask(i) for i in range(5)}  # two full steps and one point of a third
    for i in (3, 0, 4, 2, 1):
        optimizer.tell(i, asked[i], parabola(asked[i]), {})
    assert all(SPACE.check(c, "gradient") for c in asked.values())
    assert SPACE.check(optimizer.ask(5), "gradient")
