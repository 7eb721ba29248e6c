"""Evaluations inside an iteration, each its own history entry, recorded as it ends.

An objective that scores several candidates itself (a teleprompter compiling and evaluating
programs, say) calls `record_evaluation` for each, from any thread: the run loop sends it on
the event loop and waits for every one before it reports the iteration, so an iteration's
evaluations always precede its entry. Outside a run, `record_evaluation` does nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol

log = logging.getLogger("dspex.optimization")


class EvaluationCalls(Protocol):
    async def record_evaluation(
        self, iteration: int, evaluation: int, score: float | None, metrics: dict[str, Any]
    ) -> None: ...


class TrialContext:
    """The iteration being evaluated: where its evaluations go."""

    def __init__(self, calls: EvaluationCalls, iteration: int, loop: asyncio.AbstractEventLoop) -> None:
        self.iteration = iteration
        self._calls = calls
        self._loop = loop
        self._count = 0
        self._lock = threading.Lock()
        self._pending: list[asyncio.Future[None] | concurrent.futures.Future[None]] = []

    def record_evaluation(self, score: float | None, metrics: Mapping[str, Any] | None = None) -> int:
        """Records one evaluation (thread-safe); returns its number within the iteration."""
        if score is not None and not math.isfinite(float(score)):
            metrics = {**(metrics or {}), "score_not_finite": str(score)}
            score = None
        with self._lock:
            self._count += 1
            number = self._count
        send = self._send(number, None if score is None else float(score), dict(metrics or {}))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        future: asyncio.Future[None] | concurrent.futures.Future[None]
        if running is self._loop:
            future = self._loop.create_task(send)
        else:
            future = asyncio.run_coroutine_threadsafe(send, self._loop)
        with self._lock:
            self._pending.append(future)
        return number

    async def _send(self, number: int, score: float | None, metrics: dict[str, Any]) -> None:
        try:
            await self._calls.record_evaluation(self.iteration, number, score, metrics)
        except Exception as exc:  # a lost evaluation entry must not fail the iteration
            log.warning("evaluation %d of iteration %d not recorded: %s", number, self.iteration, exc)

    async def drain(self) -> None:
        """Waits until every evaluation recorded so far has been sent."""
        with self._lock:
            pending, self._pending = self._pending, []
        waits: list[Awaitable[None]] = [
            f if isinstance(f, asyncio.Future) else asyncio.wrap_future(f, loop=self._loop) for f in pending
        ]
        if waits:
            await asyncio.gather(*waits)


_current: ContextVar[TrialContext | None] = ContextVar("dspex_trial", default=None)


def current_trial() -> TrialContext | None:
    """The iteration an objective is evaluating (also inside its worker thread), or None outside a run."""
    return _current.get()


def record_evaluation(score: float | None, metrics: Mapping[str, Any] | None = None) -> bool:
    """Records one evaluation of the iteration being evaluated as its own history entry; False outside a run."""
    trial = _current.get()
    if trial is None:
        return False
    trial.record_evaluation(score, metrics)
    return True


def enter(trial: TrialContext) -> object:
    return _current.set(trial)


def leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
