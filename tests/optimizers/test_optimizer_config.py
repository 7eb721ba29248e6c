"""optimizer_config is validated (unknown keys and bad values refused) and every key has an effect."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from optimizer_support import FAST, SPACE, run

from bridge.optimization._space import Dimension, SearchSpace
from optimizers import (
    BUILTINS,
    MAX_GRID_POINTS,
    BaseOptimizer,
    BayesianOptimizer,
    CmaEsOptimizer,
    GPOptimizer,
    GradientOptimizer,
    GridSearchOptimizer,
    TPEOptimizer,
)

CHOICE = Dimension("c", "categorical", choices=("a", "b"))


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_unknown_key_is_refused_with_the_accepted_ones(name: str) -> None:
    cls = BUILTINS[name]
    with pytest.raises(ValueError) as caught:
        cls(SPACE, {"no_such_key": 1, **FAST[name]})
    message = str(caught.value)
    assert name in message and "no_such_key" in message
    assert all(key in message for key in cls.config_keys)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_config_keys_are_described_and_defaulted(name: str) -> None:
    cls = BUILTINS[name]
    assert cls.name == name
    assert set(cls.defaults) == set(cls.config_keys)
    assert all(isinstance(text, str) and text for text in cls.config_keys.values())
    assert cls(SPACE).config == cls.defaults


def test_random_accepts_no_keys() -> None:
    with pytest.raises(ValueError, match="accepts no keys"):
        BUILTINS["random"](SPACE, {"n_startup_trials": 3})


@pytest.mark.parametrize(
    ("cls", "config", "key"),
    [
        (BayesianOptimizer, {"xi": -1.0}, "xi"),
        (BayesianOptimizer, {"xi": "big"}, "xi"),
        (BayesianOptimizer, {"kappa": float("nan"), "acquisition_function": "ucb"}, "kappa"),
        (BayesianOptimizer, {"n_initial_points": 2.5}, "n_initial_points"),
        (BayesianOptimizer, {"n_initial_points": True}, "n_initial_points"),
        (BayesianOptimizer, {"acquisition_function": "ucb2"}, "acquisition_function"),
        (BayesianOptimizer, {"kappa": 1.0}, "kappa"),  # no effect with the default 'ei'
        (BayesianOptimizer, {"xi": 0.1, "acquisition_function": "lcb"}, "xi"),  # no effect with a bound
        (GradientOptimizer, {"learning_rate": 0}, "learning_rate"),
        (GradientOptimizer, {"perturbation": 0.9}, "perturbation"),
        (GradientOptimizer, {"method": "newton"}, "method"),
        (GradientOptimizer, {"alpha": -0.1}, "alpha"),
        (GridSearchOptimizer, {"n_points": 1}, "n_points"),
        (GridSearchOptimizer, {"step": 0}, "step"),
        (GridSearchOptimizer, {"step": {"nope": 0.1}}, "step"),
        (GridSearchOptimizer, {"step": 0.1, "n_points": 5}, "step"),
        (TPEOptimizer, {"n_startup_trials": "ten"}, "n_startup_trials"),
        (TPEOptimizer, {"n_ei_candidates": True}, "n_ei_candidates"),
        (BUILTINS["nsga2"], {"population_size": 1}, "population_size"),
    ],
)
def test_bad_values_are_refused_naming_the_key(cls: type[BaseOptimizer], config: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        cls(SPACE, config)


def test_grid_step_for_a_choice_is_refused() -> None:
    with pytest.raises(ValueError, match="not numeric"):
        GridSearchOptimizer(SearchSpace((Dimension("x", "float", 0.0, 1.0), CHOICE)), {"step": {"c": 1}})
    with pytest.raises(ValueError, match="every dimension is categorical"):
        GridSearchOptimizer(SearchSpace((CHOICE,)), {"step": 1})


def test_grid_step_dict_combines_with_n_points() -> None:
    space = SearchSpace((Dimension("x", "float", 0.0, 1.0), Dimension("y", "float", 0.0, 1.0)))
    grid = GridSearchOptimizer(space, {"step": {"x": 0.5}, "n_points": 2})
    assert grid.size == 3 * 2


def test_direction_is_checked() -> None:
    with pytest.raises(ValueError, match="direction"):
        TPEOptimizer(SPACE, direction="up")


def test_gradient_refuses_categorical_dimensions() -> None:
    with pytest.raises(ValueError, match=r"numeric.*\['c'\]"):
        GradientOptimizer(SearchSpace((Dimension("x", "float", 0.0, 1.0), CHOICE)))


def test_cmaes_needs_a_numeric_dimension() -> None:
    with pytest.raises(ValueError, match="numeric"):
        CmaEsOptimizer(SearchSpace((CHOICE,)))


@pytest.mark.parametrize(
    ("cls", "package"), [(GPOptimizer, "torch"), (CmaEsOptimizer, "cmaes"), (BUILTINS["qmc"], "scipy")]
)
def test_a_missing_package_is_named(cls: type[BaseOptimizer], package: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(ValueError, match=f"pip install {package}"):
        cls(SPACE)


def test_grids_over_the_limit_are_refused() -> None:
    space = SearchSpace(tuple(Dimension(f"x{i}", "float", 0.0, 1.0) for i in range(5)))
    assert GridSearchOptimizer(space, {"n_points": 10}).size == MAX_GRID_POINTS  # 10^5 is allowed
    with pytest.raises(ValueError, match=f"161051 points .*more than {MAX_GRID_POINTS}"):
        GridSearchOptimizer(space, {"n_points": 11})
    with pytest.raises(ValueError, match="step"):
        GridSearchOptimizer(space, {"step": 1e-9})  # refused before it is built


def _xs(config: dict[str, Any], seed: int = 3) -> list[float]:
    return [t.candidate["x"] for t in run("bayesian", config={"n_initial_points": 3, **config}, seed=seed)]


@pytest.mark.parametrize(
    ("base", "changed"),
    [
        ({"xi": 0.01}, {"xi": 0.5}),
        ({"acquisition_function": "pi", "xi": 0.01}, {"acquisition_function": "pi", "xi": 0.5}),
        ({"acquisition_function": "ucb", "kappa": 2.576}, {"acquisition_function": "ucb", "kappa": 0.1}),
        ({"acquisition_function": "ei"}, {"acquisition_function": "ucb"}),
    ],
)
def test_bayesian_keys_change_the_proposals_after_the_initial_points(
    base: dict[str, Any], changed: dict[str, Any]
) -> None:
    first, again, other = _xs(base), _xs(base), _xs(changed)
    assert first == again
    assert first[:3] == other[:3]  # the random initial points depend on the seed only
    assert first[3:] != other[3:]


def test_bayesian_n_initial_points_sets_the_random_phase() -> None:
    few = [t.candidate["x"] for t in run("bayesian", config={"n_initial_points": 2}, seed=3, iterations=6)]
    many = [t.candidate["x"] for t in run("bayesian", config={"n_initial_points": 4}, seed=3, iterations=6)]
    assert few[:2] == many[:2]
    assert few[2:] != many[2:]


def test_bayesian_lcb_is_ucb_in_the_runs_direction() -> None:
    def xs(kind: str) -> list[float]:
        config = {"n_initial_points": 3, "acquisition_function": kind}
        return [t.candidate["x"] for t in run("bayesian", config=config, seed=3, iterations=7, direction="minimize")]

    assert xs("lcb") == xs("ucb")


@pytest.mark.parametrize(
    ("config", "changes"),
    [
        ({"learning_rate": 0.05}, True),
        ({"perturbation": 0.05}, True),
        ({"alpha": 0.3}, True),
        ({"gamma": 0.3}, True),
        ({"stability": 10.0}, True),
        ({"method": "central"}, False),  # one variable: the same two points per step (see the docstring)
    ],
)
def test_gradient_keys_change_the_proposals(config: dict[str, Any], changes: bool) -> None:
    def steps(cfg: dict[str, Any]) -> list[tuple[float, float]]:
        xs = [t.candidate["x"] for t in run("gradient", config=cfg, iterations=20)]
        return [tuple(sorted(xs[i : i + 2])) for i in range(0, len(xs), 2)]

    assert (steps(config) != steps({})) is changes


def test_optuna_config_reaches_the_sampler() -> None:
    def xs(config: dict[str, Any]) -> list[float]:
        return [t.candidate["x"] for t in run("tpe", config=config, seed=5, iterations=8)]

    three, ten = xs({"n_startup_trials": 3}), xs({})
    assert three[:3] == ten[:3]  # both sample at random first, from the same seed
    assert three[3:] != ten[3:]
