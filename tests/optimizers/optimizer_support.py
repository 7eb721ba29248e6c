"""The ask/tell loop the run loop performs, without a server, and the spaces the optimizer tests share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.optimization._space import Dimension, SearchSpace, Trial
from optimizers import BUILTINS, BaseOptimizer

X = Dimension("x", "float", 0.0, 2.0, initial=1.0)
SPACE = SearchSpace((X,))

#: Small settings so that each builtin gets past its start-up phase within a few iterations.
FAST: dict[str, dict[str, Any]] = {
    "bayesian": {"n_initial_points": 3},
    "tpe": {"n_startup_trials": 3},
    "gp": {"n_startup_trials": 3},
    "cmaes": {},
    "random": {},
    "qmc": {},
    "nsga2": {"population_size": 4},
    "grid_search": {"n_points": 4},
    "gradient": {},
}
#: Builtins that search categorical dimensions (gradient needs numeric ones).
CATEGORICAL = sorted(set(BUILTINS) - {"gradient"})


def parabola(candidate: Mapping[str, Any]) -> float:
    """The test objective: -(x - 0.3)^2, best at x = 0.3."""
    return -((candidate["x"] - 0.3) ** 2)


def drive(
    optimizer: BaseOptimizer,
    objective: Callable[[dict[str, Any]], float | None],
    iterations: int,
    *,
    start: int = 0,
) -> list[Trial]:
    """ask -> evaluate -> tell, as the run loop does; stops early when the optimizer returns None."""
    trials = []
    for iteration in range(start, start + iterations):
        candidate = optimizer.ask(iteration)
        if candidate is None:
            break
        score = objective(candidate)
        metrics = {} if score is None else {"score": score}
        optimizer.tell(iteration, candidate, score, metrics)
        trials.append(Trial(iteration, candidate, score, metrics))
    return trials


def run(
    name: str,
    space: SearchSpace = SPACE,
    config: Mapping[str, Any] | None = None,
    *,
    seed: int | None = 0,
    iterations: int = 10,
    objective: Callable[[dict[str, Any]], float | None] = parabola,
    direction: str = "maximize",
) -> list[Trial]:
    return drive(BUILTINS[name](space, config, seed=seed, direction=direction), objective, iterations)
