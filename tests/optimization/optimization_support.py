"""Shared pieces of the optimization tests: the objective with a known optimum, and a second client."""

from __future__ import annotations

from typing import Any

from helpers import other_client

from bridge import SessionContext

OPTIMUM = 0.3


def parabola(x: float) -> float:
    """-(x - 0.3)^2 on [0, 2]: the best candidate is 0.3."""
    return -((x - OPTIMUM) ** 2)


def accuracy(x: float) -> dict[str, float]:
    """The same objective as a metrics dict (optimize with metric='accuracy')."""
    return {"accuracy": parabola(x), "distance": abs(x - OPTIMUM)}


async def temperature(session: SessionContext, name: str = "temperature", initial: float = 1.0) -> str:
    return await session.register_variable(name, "float", initial, constraints={"min": 0.0, "max": 2.0})


class Recorder:
    """A callback that records what it saw."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Any, dict[str, Any]]] = []

    def __call__(self, iteration: int, value: Any, metrics: dict[str, Any]) -> None:
        self.calls.append((iteration, value, metrics))


__all__ = ["OPTIMUM", "Recorder", "accuracy", "other_client", "parabola", "temperature"]
