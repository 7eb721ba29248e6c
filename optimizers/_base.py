"""`BaseOptimizer`: config validation, seeding and the ask/tell contract every builtin shares."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from bridge.optimization import DIRECTIONS, Dimension, SearchSpace, Trial


class BaseOptimizer(ABC):
    """What to subclass for an optimizer: implement `ask` and `tell`, optionally `setup` and `restore`.

    The constructor refuses any config key not in `config_keys` (nothing is silently
    ignored), merges `defaults`, seeds `rng`, calls `setup()` (validate values, build
    state) and then `restore(trials)`, so a resumed run continues instead of restarting.
    """

    #: The optimizer_type it is registered under; used in every message.
    name: ClassVar[str]
    #: Accepted optimizer_config keys -> what each one does.
    config_keys: ClassVar[dict[str, str]] = {}
    #: Values of the keys a config leaves out.
    defaults: ClassVar[dict[str, Any]] = {}
    #: Whether ask/tell are cheap enough for the run loop to call them on the event loop.
    quick: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    def __init__(
        self,
        space: SearchSpace,
        config: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        direction: str = "maximize",
        trials: Sequence[Trial] = (),
    ) -> None:
        given = dict(config or {})
        unknown = sorted(set(given) - set(self.config_keys))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown optimizer_config keys {unknown}; {self.name} accepts "
                f"{sorted(self.config_keys) or 'no keys'} (nothing is silently ignored)"
            )
        if direction not in DIRECTIONS:
            raise ValueError(f"{self.name}: direction must be one of {list(DIRECTIONS)}, got {direction!r}")
        self.space = space
        #: The keys the caller gave (some optimizers refuse combinations, or pass only these on).
        self.given_config = given
        self.config: dict[str, Any] = {**self.defaults, **given}
        self.seed = seed
        self.direction = direction
        #: +1 when maximizing, -1 when minimizing: multiply a score by it to get "higher is better".
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.rng = np.random.default_rng(seed)
        self.setup()
        self.restore(trials)

    def setup(self) -> None:
        """Validate `self.config` values and build the optimizer's state (runs before `restore`)."""
        return None

    def restore(self, trials: Sequence[Trial]) -> None:
        """Continue from the trials of a resumed run by replaying them through `ask` and `tell`.

        Replaying (rather than only telling) lets a deterministic optimizer rebuild exactly
        the state it had: with the same seed its random draws and internal counters advance
        as in the uninterrupted run, so the resumed run proposes what that run would have.
        """
        for trial in trials:
            self.ask(trial.iteration)
            self.tell(trial.iteration, trial.candidate, trial.score, trial.metrics)

    @abstractmethod
    def ask(self, iteration: int) -> dict[str, Any] | None:
        """The candidate for `iteration`, or None when there is nothing left to try."""

    @abstractmethod
    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        """The result of `iteration`; `score` None means it failed."""

    def within_space(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A proposal as the contract wants it: space order, Python float/int, clipped (and rounded) into range."""
        return {dim.name: _fit(dim, raw[dim.name]) for dim in self.space}

    @staticmethod
    def failed(score: float | None) -> bool:
        """Whether a score carries no information (a failed iteration, or NaN/inf)."""
        return score is None or not math.isfinite(score)

    def config_error(self, key: str, why: str) -> ValueError:
        return ValueError(f"{self.name}: optimizer_config[{key!r}]={self.config[key]!r} {why}")

    def config_number(
        self,
        key: str,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        integer: bool = False,
    ) -> float:
        """`self.config[key]` checked to be a number (an int when `integer`) within [low, high] (or (low, high])."""
        value = self.config[key]
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise self.config_error(key, "must be an integer" if integer else "must be a number")
        if not math.isfinite(value):
            raise self.config_error(key, "must be finite")
        if low is not None and (value <= low if low_open else value < low):
            raise self.config_error(key, f"must be {'above' if low_open else 'at least'} {low}")
        if high is not None and value > high:
            raise self.config_error(key, f"must be at most {high}")
        return value

    def config_choice(self, key: str, options: Sequence[Any]) -> Any:
        """`self.config[key]` checked to be one of `options`."""
        value = self.config[key]
        if value not in options:
            raise self.config_error(key, f"must be one of {list(options)}")
        return value


def _fit(dim: Dimension, value: Any) -> Any:
    if dim.kind == "categorical":
        if value not in dim.choices:
            raise ValueError(f"{dim.name}: {value!r} is not one of {list(dim.choices)}")
        return dim.choices[dim.choices.index(value)]
    return dim.clip(float(value))
