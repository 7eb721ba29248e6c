"""`grid_search`: every point of a Cartesian grid, once, in a fixed order."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bridge.optimization import Dimension, Trial

from ._base import BaseOptimizer

#: Larger grids are refused: at one evaluation per point they would not finish anyway.
MAX_GRID_POINTS = 100_000


class GridSearchOptimizer(BaseOptimizer):
    """The Cartesian product of per-dimension values, row-major in variable order (the last varies fastest).

    Numeric dimensions take `n_points` evenly spaced values including both ends, or the
    values low, low + step, ... up to high with `step`; integers are rounded and
    deduplicated. Categorical dimensions take every choice. `ask` returns None once
    every point has been proposed, which ends the run. The grid does not adapt, so a
    result changes nothing; a resumed run skips the points that already have a score
    (a failed point is tried again: its failure may have been transient).
    """

    quick = True  # the next point of a precomputed grid

    name = "grid_search"
    config_keys = {
        "n_points": "values per numeric dimension, evenly spaced, both ends included (at least 2)",
        "step": "spacing of numeric values instead of n_points: a number, or {variable: step} "
        "(variables left out use n_points)",
    }
    defaults = {"n_points": 10, "step": None}

    def setup(self) -> None:
        n_points = int(self.config_number("n_points", low=2, integer=True))
        steps = self._steps()
        if "n_points" in self.given_config and steps and set(steps) == {d.name for d in self.space if d.numeric}:
            raise self.config_error("step", "and n_points were both given, but step covers every numeric dimension")
        self._values = [_values(dim, n_points, steps.get(dim.name)) for dim in self.space]
        self.size = math.prod(len(v) for v in self._values)
        if self.size > MAX_GRID_POINTS:
            shape = " x ".join(str(len(v)) for v in self._values)
            raise ValueError(
                f"{self.name}: the grid has {self.size} points ({shape}), more than {MAX_GRID_POINTS}; "
                "use fewer n_points, a larger step, or a sampling optimizer such as 'tpe' or 'random'"
            )
        self._done: set[int] = set()
        self._cursor = 0

    def _steps(self) -> dict[str, float]:
        """The step of each numeric dimension that has one, checked."""
        step = self.config["step"]
        if step is None:
            return {}
        numeric = [dim.name for dim in self.space if dim.numeric]
        if not numeric:
            raise self.config_error("step", "has nothing to apply to: every dimension is categorical")
        steps = dict(step) if isinstance(step, Mapping) else dict.fromkeys(numeric, step)
        unknown = sorted(set(steps) - set(numeric))
        if unknown:
            raise self.config_error("step", f"names {unknown}, which are not numeric dimensions of {numeric}")
        for name, value in steps.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise self.config_error("step", f"must give a positive number, not {value!r}, for {name!r}")
            dim = self.space[name]
            assert dim.low is not None and dim.high is not None
            if (dim.high - dim.low) / value >= MAX_GRID_POINTS:
                raise self.config_error("step", f"gives {name!r} more than {MAX_GRID_POINTS} values")
        return steps

    def restore(self, trials: Sequence[Trial]) -> None:
        """Mark the grid points that already have a score as done (nothing is replayed)."""
        for trial in trials:
            index = self._index(trial.candidate)
            if trial.ok and index is not None:
                self._done.add(index)

    def ask(self, iteration: int) -> dict[str, Any] | None:
        while self._cursor < self.size and self._cursor in self._done:
            self._cursor += 1
        if self._cursor >= self.size:
            return None
        point = self._point(self._cursor)
        self._cursor += 1
        return point

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        """Nothing to learn: the grid is fixed."""

    def _point(self, index: int) -> dict[str, Any]:
        raw = {}
        for dim, values in zip(reversed(self.space.dimensions), reversed(self._values), strict=True):
            index, position = divmod(index, len(values))
            raw[dim.name] = values[position]
        return self.within_space(raw)

    def _index(self, candidate: Mapping[str, Any]) -> int | None:
        """The flat grid index of a candidate, or None when it is not a point of this grid."""
        index = 0
        for dim, values in zip(self.space, self._values, strict=True):
            if dim.name not in candidate or candidate[dim.name] not in values:
                return None
            index = index * len(values) + values.index(candidate[dim.name])
        return index


def _values(dim: Dimension, n_points: int, step: float | None) -> list[Any]:
    if dim.kind == "categorical":
        return list(dim.choices)
    assert dim.low is not None and dim.high is not None
    if step is None:
        raw = np.linspace(dim.low, dim.high, n_points)
    else:
        count = math.floor((dim.high - dim.low) / step + 1e-9) + 1
        raw = np.minimum(dim.low + step * np.arange(count), dim.high)
    return list(dict.fromkeys(dim.clip(float(v)) for v in raw))
