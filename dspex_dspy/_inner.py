"""The evaluations a teleprompter runs itself, seen through DSPy's callback hooks (DSPy is never patched).

RandomSearch scores each candidate program with `dspy.Evaluate`, MIPROv2 each of its
Optuna trials, GEPA each iteration's minibatch and full evaluations: every one is an
`Evaluate` call, so `on_evaluate_start/end` sees its program and its score. LM calls and
nested compiles are counted too. Callbacks run in DSPy's threads, hence the lock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dspy.utils.callback import BaseCallback

#: Evaluations kept in a trial's `inner_log` metric (the count and best always cover all of them).
MAX_LOGGED = 50
_DESCRIPTION_CHARS = 160


@dataclass(frozen=True, slots=True)
class InnerEvaluation:
    """One evaluation inside a compile: DSPy's score (a percentage), on how many examples, of which program."""

    index: int
    score: float | None
    examples: int
    program: str
    seconds: float
    error: str | None = None


def describe(program: Any) -> str:
    """A candidate program in a line: demos and the start of the instructions of each predictor."""
    parts = []
    for name, predictor in program.named_predictors():
        instructions = " ".join(str(getattr(predictor.signature, "instructions", "")).split())
        parts.append(f"{name}: {len(predictor.demos)} demos, {instructions[:48]!r}")
    return "; ".join(parts)[:_DESCRIPTION_CHARS]


class InnerEvaluations(BaseCallback):
    """Collects a compile's evaluations; `on_evaluation` (called in DSPy's thread) sees each as it ends."""

    def __init__(self, on_evaluation: Callable[[InnerEvaluation], Any] | None = None) -> None:
        self.on_evaluation = on_evaluation
        self.evaluations: list[InnerEvaluation] = []
        self.lm_calls = 0
        self.compiles = 0
        self._open: dict[str, tuple[float, int, str]] = {}
        self._lock = threading.Lock()

    def on_compile_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        with self._lock:
            self.compiles += 1

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        with self._lock:
            self.lm_calls += 1

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        devset = inputs.get("devset") or getattr(instance, "devset", None) or []
        program = inputs.get("program")
        with self._lock:
            self._open[call_id] = (time.perf_counter(), len(devset), describe(program) if program is not None else "")

    def on_evaluate_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        with self._lock:
            started = self._open.pop(call_id, None)
            if started is None:
                return
            start, examples, program = started
            score = getattr(outputs, "score", None) if exception is None else None
            evaluation = InnerEvaluation(
                index=len(self.evaluations) + 1,
                score=float(score) if score is not None else None,
                examples=examples,
                program=program,
                seconds=time.perf_counter() - start,
                error=None if exception is None else f"{type(exception).__name__}: {exception}",
            )
            self.evaluations.append(evaluation)
        if self.on_evaluation is not None:
            self.on_evaluation(evaluation)

    @property
    def best(self) -> float | None:
        scores = [e.score for e in self.evaluations if e.score is not None]
        return max(scores) if scores else None

    def evaluation_metrics(self) -> dict[str, Any]:
        """The evaluations as plain metrics for the trial's history entry: count, best score, the log as JSON text."""
        logged = [asdict(e) for e in self.evaluations[-MAX_LOGGED:]]
        return {
            "inner_evaluations": len(self.evaluations),
            "inner_best": self.best,
            "inner_log": json.dumps(logged, separators=(",", ":")),
        }

    def metrics(self) -> dict[str, Any]:
        """Everything observed: the evaluations, LM calls, and compiles nested in the trial's own."""
        return {
            **self.evaluation_metrics(),
            "lm_calls": self.lm_calls,
            "inner_compiles": max(self.compiles - 1, 0),  # the trial's own compile is the first
        }
