"""The shape of an optimizer as the run loop drives it: ask -> (the client evaluates) -> tell.

`optimizers.BaseOptimizer` implements it (and is what to subclass); the run loop only
relies on this structural protocol, so `bridge` never imports `optimizers`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from ._space import SearchSpace, Trial

DIRECTIONS = ("maximize", "minimize")


@runtime_checkable
class Optimizer(Protocol):
    """An ask/tell optimizer in the spirit of Optuna's samplers.

    - The constructor receives the search space, the validated `optimizer_config`, a seed,
      the direction and the trials of the run so far (a resumed run continues from them).
      It raises ValueError when the space or the config does not fit (e.g. CMA-ES without a
      numeric dimension): before any lease is taken, so nothing changes.
    - `ask(iteration)` proposes the candidate for that iteration (a dict name -> value
      within the space), or None when there is nothing left to try (a finished grid).
      Several asks may be outstanding at once; `tell` names the iteration it answers.
    - `tell(iteration, candidate, score, metrics)` reports the result; `score` is None
      for a failed iteration.
    """

    #: Accepted optimizer_config keys -> one-line description; anything else is refused.
    config_keys: ClassVar[Mapping[str, str]]
    #: Optional: True when ask/tell take well under a few ms, so the run loop may call them on
    #: the event loop (saving a thread hop per call); absent or False, they run in a thread.
    quick: ClassVar[bool]

    def __init__(
        self,
        space: SearchSpace,
        config: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        direction: str = "maximize",
        trials: Sequence[Trial] = (),
    ) -> None: ...

    def ask(self, iteration: int) -> dict[str, Any] | None: ...

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None: ...
