"""Evaluations inside an iteration, each its own history entry, recorded as it ends.

An objective that scores several candidates itself (a teleprompter compiling and evaluating
programs, say) calls `record_evaluation` for each, from any thread: the run loop sends it on
the event loop and waits for every one before it reports the iteration, so an iteration's
evaluations always precede its entry. Outside a run, `record_evaluation` does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Protocol

log = logging.getLogger("dspex.optimization")


class EvaluationCalls(Protocol):
    async def record_evaluation(
        self, iteration: int, evaluation: int, score: float | None, metrics: dict[str, Any]
    ) -> None: ...


#: Most evaluations one iteration records; later ones are counted but not sent.
MAX_EVALUATIONS_PER_ITERATION = 1_000


class TrialContext:
    """The iteration being evaluated: where its evaluations go, in order, one call at a time."""

    def __init__(self, calls: EvaluationCalls, iteration: int, loop: asyncio.AbstractEventLoop) -> None:
        self.iteration = iteration
        self.dropped = 0
        self._calls = calls
        self._loop = loop
        self._count = 0
        self._lock = threading.Lock()
        self._closed = False  # set when the iteration is being reported: later evaluations are dropped
        self._queue: asyncio.Queue[tuple[int, float | None, dict[str, Any]] | None] | None = None  # on first use
        self._sender: asyncio.Task[None] | None = None

    def record_evaluation(self, score: float | None, metrics: Mapping[str, Any] | None = None) -> int:
        """Records one evaluation (thread-safe); returns its number within the iteration."""
        if score is not None and not math.isfinite(float(score)):
            metrics = {**(metrics or {}), "score_not_finite": str(score)}
            score = None
        with self._lock:
            self._count += 1
            number = self._count
            if number > MAX_EVALUATIONS_PER_ITERATION or self._closed:  # too many, or after the report
                self.dropped += 1
                return number
        item = (number, None if score is None else float(score), dict(metrics or {}))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._enqueue(item)
        else:
            self._loop.call_soon_threadsafe(self._enqueue, item)
        return number

    def _enqueue(self, item: tuple[int, float | None, dict[str, Any]]) -> None:
        """On the loop: queue it; one sender sends them in order, so a burst cannot overrun the channel."""
        if self._closed:  # scheduled from a thread the objective left running, after the iteration ended
            self.dropped += 1
            return
        if self._queue is None:  # most objectives record nothing: an iteration then makes no queue
            self._queue = asyncio.Queue()
            self._sender = self._loop.create_task(self._send_all(self._queue))
        self._queue.put_nowait(item)

    async def _send_all(self, queue: asyncio.Queue[tuple[int, float | None, dict[str, Any]] | None]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            number, score, metrics = item
            try:
                await self._calls.record_evaluation(self.iteration, number, score, metrics)
            except Exception as exc:  # a lost evaluation entry must not fail the iteration
                log.warning("evaluation %d of iteration %d not recorded: %s", number, self.iteration, exc)

    async def drain(self) -> None:
        """Waits until every evaluation recorded so far has been sent (call on the loop, after the objective)."""
        # Enqueues from the objective's thread were scheduled before its completion was: they have run.
        with self._lock:
            self._closed = True
        if self._queue is not None and self._sender is not None:
            self._queue.put_nowait(None)
            await self._sender
        if self.dropped:
            log.warning(
                "iteration %d: %d evaluations not kept (beyond %d, or recorded after the iteration ended)",
                self.iteration,
                self.dropped,
                MAX_EVALUATIONS_PER_ITERATION,
            )


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
