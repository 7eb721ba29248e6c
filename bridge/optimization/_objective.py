"""What an objective is, and how its result becomes a score and metrics.

The objective runs in the client (it needs the LM, the data, the program). It takes the
candidate (the value, or a dict name -> value for a joint run) and returns a number, a
`(score, metrics)` pair, or a metrics dict from which `metric` names the score.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from ._protocol import DIRECTIONS

Objective = Callable[[Any], Any]


class ObjectiveResultError(ValueError):
    """The objective returned something that is not a usable score: that iteration fails."""


@dataclass(frozen=True, slots=True)
class ObjectiveSpec:
    fn: Objective
    direction: str = "maximize"
    metric: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"objective must be callable, got {type(self.fn).__name__}")
        if self.direction not in DIRECTIONS:
            raise ValidationError(f"direction must be one of {list(DIRECTIONS)}, got {self.direction!r}")

    async def evaluate(self, candidate: Any) -> tuple[float, dict[str, Any]]:
        """Runs the objective (a sync one in a worker thread, so the event loop keeps serving
        heartbeats and watchers) and returns (score, metrics)."""
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(candidate)
        else:
            result = await asyncio.to_thread(self.fn, candidate)
            if inspect.isawaitable(result):
                result = await result
        return interpret(result, self.metric)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not hasattr(value, "__float__")):
        raise ObjectiveResultError(
            f"{what} is {type(value).__name__} {str(value)[:60]!r}, not a number; return a float, "
            "a (score, metrics) tuple, or a metrics dict with metric= naming the score"
        )
    try:
        score = float(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ObjectiveResultError(f"{what} {str(value)[:60]!r} is not a number ({exc})") from None
    if not math.isfinite(score):
        raise ObjectiveResultError(f"{what} is {score}, not a finite number")
    return score


def _plain(metrics: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise ObjectiveResultError(f"metric names must be strings, got {type(key).__name__} {key!r}")
        if isinstance(value, (bool, str, int, float)) or value is None:
            out[key] = value
        elif hasattr(value, "item") and callable(value.item):  # numpy scalars
            out[key] = value.item()
        else:
            raise ObjectiveResultError(f"metric {key!r} is {type(value).__name__}; metrics are numbers or strings")
    return out


def interpret(result: Any, metric: str | None) -> tuple[float, dict[str, Any]]:
    """(score, metrics) from an objective's return value, or ObjectiveResultError saying what is wrong."""
    name = metric or "score"
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], Mapping):
            raise ObjectiveResultError("a tuple result must be (score, metrics_dict)")
        score = _number(result[0], "the objective's score")
        metrics = _plain(result[1])
        metrics.setdefault(name, score)
        return score, metrics
    if isinstance(result, Mapping):
        metrics = _plain(result)
        if name not in metrics:
            raise ObjectiveResultError(
                f"the objective returned metrics {sorted(metrics)[:10]} without {name!r}; "
                "pass metric= naming the one to optimize"
            )
        return _number(metrics[name], f"metric {name!r}"), metrics
    score = _number(result, "the objective's result")
    return score, {name: score}
