"""`gradient`: stochastic-approximation gradient ascent/descent (SPSA, or central differences)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._base import BaseOptimizer


@dataclass
class _Step:
    """One gradient estimate: two evaluations per direction, then one update of theta."""

    k: int
    points: list[np.ndarray]
    #: Per direction: the coordinates its difference estimates.
    supports: list[np.ndarray]
    #: slot -> (the evaluated point in normalized coordinates, its score)
    told: dict[int, tuple[np.ndarray, float | None]] = field(default_factory=dict)
    issued: int = 0


class GradientOptimizer(BaseOptimizer):
    """Finite-difference gradient steps in normalized coordinates u = (x - low) / (high - low) in [0, 1].

    Normalizing makes `learning_rate` and `perturbation` independent of each variable's
    range (they still scale with the score). Step k evaluates theta + c_k * delta and then
    theta - c_k * delta (one iteration each) and, once both are told, moves theta by
    a_k * gradient estimate (up when maximizing, down when minimizing), projected back
    into [0, 1], with a_k = learning_rate / (k + 1 + stability) ** alpha and
    c_k = perturbation / (k + 1) ** gamma (Spall's SPSA gains).

    'spsa' perturbs every dimension at once along a random +-1 vector (2 evaluations per
    step, whatever the dimension count); 'central' perturbs one dimension at a time
    (2 per dimension per step). With one variable both evaluate the same two points
    (possibly in the other order) and estimate the same derivative. The start is each
    variable's current value (the middle of its range when it has none). Integers are
    rounded when mapped out and perturbed by at least one unit; the difference quotient
    uses the points actually evaluated. A step with a failed evaluation makes no update
    (theta stays, the gains move on). If more asks are outstanding than a step has
    points, the next step starts from the current theta and is applied when it completes.
    """

    quick = True  # arithmetic on a few floats

    name = "gradient"
    config_keys = {
        "learning_rate": "step size a in a_k = a / (k + 1 + stability)^alpha, in normalized units per unit of score",
        "perturbation": "finite-difference offset c in c_k = c / (k + 1)^gamma, as a fraction of each range; "
        "raise it for noisy scores",
        "alpha": "decay exponent of the step size (Spall: 0.602)",
        "gamma": "decay exponent of the perturbation (Spall: 0.101)",
        "stability": "offset that keeps the first steps small (Spall's A)",
        "method": "'spsa' (all dimensions per step, 2 evaluations) or 'central' (2 evaluations per dimension)",
    }
    defaults = {
        "learning_rate": 0.2,
        "perturbation": 0.01,
        "alpha": 0.602,
        "gamma": 0.101,
        "stability": 2.0,
        "method": "spsa",
    }

    def setup(self) -> None:
        categorical = [dim.name for dim in self.space if not dim.numeric]
        if categorical:
            raise ValueError(
                f"{self.name}: a gradient needs numeric dimensions; {categorical} are categorical "
                "(use 'tpe', 'bayesian' or 'grid_search' for choices)"
            )
        self._learning_rate = self.config_number("learning_rate", low=0, low_open=True)
        self._perturbation = self.config_number("perturbation", low=0, low_open=True, high=0.5)
        self._alpha = self.config_number("alpha", low=0)
        self._gamma = self.config_number("gamma", low=0)
        self._stability = self.config_number("stability", low=0)
        self._method = self.config_choice("method", ("spsa", "central"))
        self._low = np.array([dim.low for dim in self.space], dtype=float)
        self._span = np.array([dim.high for dim in self.space], dtype=float) - self._low
        safe_span = np.where(self._span > 0, self._span, 1.0)
        # An integer's offset is at least one unit, so the two rounded points differ.
        self._min_c = np.array(
            [1 / s if dim.kind == "integer" else 0.0 for dim, s in zip(self.space, safe_span, strict=True)]
        )
        self._theta = np.array(
            [0.5 if d.initial is None else self._normalize_one(i, d.clip(d.initial)) for i, d in enumerate(self.space)]
        )
        self._k = 0
        self._open: _Step | None = None
        self._asked: dict[int, tuple[_Step, int]] = {}

    def ask(self, iteration: int) -> dict[str, Any]:
        if self._open is None or self._open.issued == len(self._open.points):
            self._open = self._new_step()
        step = self._open
        slot = step.issued
        step.issued += 1
        self._asked[iteration] = (step, slot)
        return self.within_space(
            {dim.name: self._low[i] + step.points[slot][i] * self._span[i] for i, dim in enumerate(self.space)}
        )

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        """Record one evaluation of a step; an iteration this optimizer did not ask is not part of any step."""
        entry = self._asked.pop(iteration, None)
        if entry is None:
            return
        step, slot = entry
        point = np.array([self._normalize_one(i, candidate[dim.name]) for i, dim in enumerate(self.space)])
        step.told[slot] = (point, score)
        if len(step.told) == len(step.points):
            self._update(step)

    def _new_step(self) -> _Step:
        k = self._k
        self._k += 1
        offset = np.maximum(self._perturbation / (k + 1) ** self._gamma, self._min_c)
        active = self._span > 0
        if self._method == "spsa":
            deltas = [np.where(active, self.rng.choice([-1.0, 1.0], size=len(self.space)), 0.0)]
        else:
            deltas = [np.eye(len(self.space))[i] for i in np.flatnonzero(active)] or [np.zeros(len(self.space))]
        points = [np.clip(self._theta + sign * offset * delta, 0.0, 1.0) for delta in deltas for sign in (1, -1)]
        return _Step(k, points, [np.flatnonzero(delta) for delta in deltas])

    def _update(self, step: _Step) -> None:
        if any(self.failed(score) for _, score in step.told.values()):
            return
        gradient = np.zeros(len(self.space))
        for j, support in enumerate(step.supports):
            (plus, f_plus), (minus, f_minus) = step.told[2 * j], step.told[2 * j + 1]
            assert f_plus is not None and f_minus is not None
            diff = plus[support] - minus[support]
            moved = diff != 0
            gradient[support[moved]] = (f_plus - f_minus) / diff[moved]
        gain = self._learning_rate / (step.k + 1 + self._stability) ** self._alpha
        self._theta = np.clip(self._theta + self.sign * gain * gradient, 0.0, 1.0)

    def _normalize_one(self, i: int, value: float) -> float:
        return float((value - self._low[i]) / self._span[i]) if self._span[i] > 0 else 0.0
