"""Exponential backoff with jitter, for reconnecting a broken stream without a thundering herd."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """The n-th delay is uniform in [d/2, d) with d = min(cap, base * 2**n): it grows, and clients spread out."""

    def __init__(self, base: float = 0.05, cap: float = 5.0, rng: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self._rng = rng
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        """After a success: the next failure waits the shortest delay again."""
        self._attempt = 0
