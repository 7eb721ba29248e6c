"""The loop behind start_optimization: ask -> write the candidate -> evaluate -> report -> tell.

It runs as an asyncio task of the client that started it. Each iteration makes one round
trip: ReportTrial records its score and metrics in the server's history and, in the same
call, writes the next candidate into the variables (a versioned write the next evaluation
can read); its answer carries a stop request from any client. Only the first candidate
needs a WriteCandidate of its own. A heartbeat renews the leases while an evaluation takes
long. Sync objectives and optimizer calls move to a worker thread once one is slow
(`_offload`), so the event loop (watchers, heartbeats, a notebook) keeps going while a
program compiles or a GP fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._evaluations import TrialContext, enter, leave
from ._objective import ObjectiveResultError, ObjectiveSpec
from ._offload import Offloader
from ._protocol import Optimizer
from ._space import SearchSpace, Trial

log = logging.getLogger("dspex.optimization")

#: Keys of optimizer_config that the run loop, not the optimizer, reads.
RUN_CONFIG_KEYS = {
    "patience": "iterations over which the best score must improve by convergence_threshold (default 10)",
    "bounds": "{name: (low, high)}: the search range of a numeric variable, within its constraints",
}
DEFAULT_PATIENCE = 10


class RunCalls(Protocol):
    """The server calls one run makes; each returns whether a stop was requested."""

    async def write_candidate(self, iteration: int, candidate: dict[str, Any]) -> bool: ...

    async def report(
        self,
        iteration: int,
        score: float | None,
        metrics: dict[str, Any],
        error: str,
        next_candidate: dict[str, Any] | None,
    ) -> bool: ...

    async def renew(self) -> bool: ...

    async def finish(self, state: str, error: str) -> None: ...

    async def record_evaluation(
        self, iteration: int, evaluation: int, score: float | None, metrics: dict[str, Any]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RunSettings:
    max_iterations: int
    convergence_threshold: float
    patience: int = DEFAULT_PATIENCE
    callback: Callable[..., Any] | None = None
    progress: bool = False
    description: str = ""
    heartbeat_seconds: float = 10.0


def converged(best_so_far: Sequence[float], threshold: float, patience: int, direction: str) -> bool:
    """The best score improved by less than `threshold` over the last `patience` scored iterations.

    `best_so_far[i]` is the best score after the (i+1)-th scored iteration: failed iterations
    (an LM outage, say) do not count as "no improvement". A threshold <= 0 never converges.
    """
    if threshold <= 0 or len(best_so_far) <= patience:
        return False
    gain = best_so_far[-1] - best_so_far[-1 - patience]
    return (gain if direction == "maximize" else -gain) < threshold


class RunLoop:
    """One run, from its first ask to FinishOptimization; `state` and `error` tell how it ended."""

    def __init__(
        self,
        calls: RunCalls,
        space: SearchSpace,
        optimizer: Optimizer,
        objective: ObjectiveSpec,
        settings: RunSettings,
        *,
        joint: bool,
        optimizer_type: str,
        trials: Sequence[Trial] = (),
    ) -> None:
        self.calls = calls
        self.space = space
        self.optimizer = optimizer
        self.objective = objective
        self.settings = settings
        self.joint = joint
        self.optimizer_type = optimizer_type
        self.iteration = max((t.iteration for t in trials), default=0)
        self.best_so_far: list[float] = []
        self.scored = 0
        for trial in sorted(trials, key=lambda t: t.iteration):
            self._track(trial.score)
        self.state: str | None = None
        self.error = ""
        self._stop = asyncio.Event()
        # Optimizers that declare themselves quick run on the event loop while they stay quick
        # (a thread hop costs a fifth of a round trip); anything else, objectives included, in a thread.
        self._optimizer = Offloader(inline=bool(getattr(optimizer, "quick", False)))

    def request_stop(self) -> None:
        """Ends the run after the iteration in progress (stop_optimization from this client)."""
        self._stop.set()

    def _track(self, score: float | None) -> None:
        if score is not None:
            self.scored += 1
            if not self.best_so_far:
                self.best_so_far.append(score)
                return
            best = self.best_so_far[-1]
            better = score > best if self.objective.direction == "maximize" else score < best
            self.best_so_far.append(score if better else best)

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        progress = self._progress()
        try:
            state, error = await self._iterate(progress)
        except asyncio.CancelledError:
            state, error = "stopped", "the run's task was cancelled"
            await self._finish(state, error)
            raise
        except Exception as exc:  # an optimizer bug, or the server went away
            log.exception("optimization run failed", extra={"optimizer": self.optimizer_type})
            state, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            if progress is not None:
                progress.close()
        await self._finish(state, error)

    async def _finish(self, state: str, error: str) -> None:
        self.state, self.error = state, error
        try:
            await asyncio.shield(self.calls.finish(state, error))
        except Exception as exc:  # the lease then expires on the server, which writes the best back
            log.warning("could not finish the run on the server: %s", exc)
            self.error = f"{error}; finishing on the server failed: {exc}" if error else f"finish failed: {exc}"

    async def _iterate(self, progress: Any) -> tuple[str, str]:
        """The iterations: one round trip each, since the report of one carries the next candidate."""
        settings = self.settings
        last_error = ""
        first = self.iteration + 1
        if first > settings.max_iterations:
            return self._ended("completed", last_error)
        proposal = await self._optimizer(self.optimizer.ask, first)
        if proposal is None:
            return self._ended("completed", last_error)
        candidate = self._checked(proposal)
        stop = await self.calls.write_candidate(first, candidate)
        while True:
            iteration = self.iteration + 1
            value = candidate if self.joint else candidate[self.space.names[0]]
            score, metrics, error = await self._evaluate(iteration, value)
            self.iteration = iteration
            self._track(score)
            last_error = error or last_error
            done = converged(
                self.best_so_far, settings.convergence_threshold, settings.patience, self.objective.direction
            )
            more = not (done or stop or self._stop.is_set()) and iteration < settings.max_iterations
            try:
                proposal = await self._optimizer(self._tell_then_ask, iteration, candidate, score, metrics, more)
                following = self._checked(proposal) if proposal is not None else None
            except Exception:
                await self.calls.report(iteration, score, metrics, error, None)  # the iteration still counts
                raise
            stop = await self.calls.report(iteration, score, metrics, error, following) or stop
            await self._callback(iteration, value, metrics)
            if progress is not None:
                progress.update()
                if self.best_so_far:
                    progress.set_postfix(best=f"{self.best_so_far[-1]:.4g}", refresh=False)
            if stop or self._stop.is_set():
                return "stopped", ""
            if done:
                return "converged", ""
            if following is None:  # max_iterations reached, or the optimizer has nothing left to try
                return self._ended("completed", last_error)
            candidate = following

    def _checked(self, proposal: dict[str, Any]) -> dict[str, Any]:
        return self.space.check(proposal, f"optimizer {self.optimizer_type!r}")

    def _tell_then_ask(
        self, iteration: int, candidate: dict[str, Any], score: float | None, metrics: dict[str, Any], more: bool
    ) -> dict[str, Any] | None:
        self.optimizer.tell(iteration, candidate, score, metrics)
        return self.optimizer.ask(iteration + 1) if more else None

    async def _evaluate(self, iteration: int, value: Any) -> tuple[float | None, dict[str, Any], str]:
        """(score, metrics, error): a failing objective fails its iteration, not the run.

        The objective runs inside the iteration's TrialContext, so what it records with
        `record_evaluation` is sent before the iteration is reported.
        """
        trial = TrialContext(self.calls, iteration, asyncio.get_running_loop())
        token = enter(trial)
        try:
            score, metrics = await self.objective.evaluate(value)
            return score, metrics, ""
        except ObjectiveResultError as exc:
            return None, {"error": str(exc)}, str(exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("objective failed at iteration %d: %s", iteration, error)
            return None, {"error": error}, error
        finally:
            leave(token)
            await trial.drain()

    def _ended(self, state: str, last_error: str) -> tuple[str, str]:
        if self.iteration > 0 and self.scored == 0:
            return "failed", f"every iteration failed; the last error: {last_error}"
        return state, ""

    async def _callback(self, iteration: int, value: Any, metrics: dict[str, Any]) -> None:
        callback = self.settings.callback
        if callback is None:
            return
        try:
            result = callback(iteration, value, dict(metrics))
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("optimization callback raised at iteration %d (the run goes on)", iteration)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                if await self.calls.renew():
                    self._stop.set()
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)

    def _progress(self) -> Any:
        if not self.settings.progress:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.settings.max_iterations,
            initial=self.iteration,
            desc=self.settings.description or self.optimizer_type,
            unit="it",
        )
