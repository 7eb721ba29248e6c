"""`bayesian`: Gaussian-process Bayesian optimization with bayes_opt (ei / pi / ucb, xi, kappa)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from bridge.optimization import Dimension

from ._base import BaseOptimizer

_ACQUISITIONS = ("ei", "pi", "ucb", "lcb")


class BayesianOptimizer(BaseOptimizer):
    """GP-based Bayesian optimization: `n_initial_points` random points, then the acquisition's argmax.

    bayes_opt always maximizes, so when the run minimizes the scores are negated before
    the GP sees them. That makes 'lcb' (the minimizer's name: mean - kappa * std of the
    score) and 'ucb' the same acquisition: the optimistic bound in the run's direction.

    Integers are bayes_opt integer parameters and choices its one-hot categorical
    parameters (over choice indices, so any choice value works); a choice with a single
    option is not searched at all. A failed iteration is registered with the worst score
    seen so far (nothing, if there is none yet), so the GP stops proposing that point.
    A point registered before is not registered again: bayes_opt's GP is noise-free, so
    the first score stands (and bayes_opt would print a warning to stdout per duplicate).
    """

    name = "bayesian"
    config_keys = {
        "acquisition_function": "'ei' (expected improvement), 'pi' (probability of improvement), "
        "'ucb' or 'lcb' (confidence bound; the same when minimizing, since scores are negated)",
        "xi": "exploration margin of 'ei'/'pi': larger values try points farther from the best so far",
        "kappa": "width of the 'ucb'/'lcb' bound: larger values favour uncertain regions",
        "n_initial_points": "random points (from the seed) evaluated before the GP proposes",
    }
    defaults = {"acquisition_function": "ei", "xi": 0.01, "kappa": 2.576, "n_initial_points": 5}

    def setup(self) -> None:
        kind = self.config_choice("acquisition_function", _ACQUISITIONS)
        xi = self.config_number("xi", low=0)
        kappa = self.config_number("kappa", low=0)
        self._n_initial = int(self.config_number("n_initial_points", low=0, integer=True))
        unused = "xi" if kind in ("ucb", "lcb") else "kappa"
        if unused in self.given_config:
            used = "'ei'/'pi'" if unused == "xi" else "'ucb'/'lcb'"
            raise self.config_error(unused, f"has no effect with acquisition_function={kind!r}; it applies to {used}")
        self._searched = [d for d in self.space if not (d.kind == "categorical" and len(d.choices) == 1)]
        if not self._searched:
            raise ValueError(f"{self.name}: nothing to search: every dimension has a single value")

        from bayes_opt import BayesianOptimization, acquisition

        function = (
            acquisition.UpperConfidenceBound(kappa=kappa)
            if kind in ("ucb", "lcb")
            else (acquisition.ExpectedImprovement if kind == "ei" else acquisition.ProbabilityOfImprovement)(xi=xi)
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Non-float parameters are experimental", UserWarning)
            # random_state seeds bayes_opt's own RandomState, which its acquisition optimizer draws from.
            self._bo = BayesianOptimization(
                f=None,
                pbounds={d.name: _bounds(d) for d in self._searched},
                acquisition_function=function,
                random_state=self.seed,
                verbose=0,
            )
        self._asked = 0

    def ask(self, iteration: int) -> dict[str, Any]:
        self._asked += 1
        if self._asked <= self._n_initial:
            return self.within_space({d.name: _random(d, self.rng) for d in self.space})
        params = self._bo.suggest()
        return self.within_space({d.name: _decode(d, params.get(d.name)) for d in self.space})

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        space = self._bo.space
        if self.failed(score):
            if not len(space):
                return
            target = float(space.target.min())
        else:
            assert score is not None
            target = self.sign * float(score)
        params = {d.name: _encode(d, candidate[d.name]) for d in self._searched}
        if space.params_to_array(params) in space:
            return
        self._bo.register(params=params, target=target)


def _bounds(dim: Dimension) -> Any:
    if dim.kind == "categorical":
        return list(range(len(dim.choices)))
    if dim.kind == "integer":
        return (dim.low, dim.high, int)
    return (dim.low, dim.high)


def _random(dim: Dimension, rng: np.random.Generator) -> Any:
    if dim.kind == "categorical":
        return dim.choices[int(rng.integers(len(dim.choices)))]
    assert dim.low is not None and dim.high is not None
    if dim.kind == "integer":
        return int(rng.integers(int(dim.low), int(dim.high), endpoint=True))
    return float(rng.uniform(dim.low, dim.high))


def _encode(dim: Dimension, value: Any) -> Any:
    return dim.choices.index(value) if dim.kind == "categorical" else value


def _decode(dim: Dimension, value: Any) -> Any:
    if dim.kind != "categorical":
        return value
    # A single-choice dimension is not searched (value None): its one choice is the answer.
    return dim.choices[0] if value is None else dim.choices[int(value)]
