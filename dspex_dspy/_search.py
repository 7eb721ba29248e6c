"""`dspy_<teleprompter>` optimizers: the search over a teleprompter's parameters, as a BaseOptimizer.

The run loop behind `session.start_optimization` drives them like any optimizer, so a
DSPy compile gets the same leases, status, history and watchers. They propose; the
objective (a `VariableAwareOptimizer`'s compile-and-score) evaluates. Proposals come from
a sampler of the optimizers registry (`tpe` by default), after a first trial at the
variables' current values, so a run starts from what the session holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bridge.optimization import Optimizer, Trial, resolve_optimizer
from optimizers import BUILTINS, BaseOptimizer

DEFAULT_SAMPLER = "tpe"


class TeleprompterSearch(BaseOptimizer):
    """Proposes values for a teleprompter's mapped variables: the current values first, then the sampler's.

    With `sampler=None` it proposes the current values only (a plain compile: one trial, and
    no sampler to build or to tell). The sampler is told the first trial too, though it did
    not propose it (the builtins take a result for an iteration they were not asked for).
    """

    #: The DSPy teleprompter class whose parameters the mapped variables hold.
    teleprompter_name: ClassVar[str] = ""
    config_keys = {
        "sampler": "the optimizer that proposes after the first trial: a name of the optimizers registry "
        "(tpe, random, bayesian, gp, qmc, grid_search, ... or one registered process-wide); None: no search",
        "sampler_config": "the sampler's own optimizer_config keys",
        "baseline": "the first trial uses the variables' current values (default True)",
    }
    defaults: ClassVar[dict[str, Any]] = {"sampler": DEFAULT_SAMPLER, "sampler_config": {}, "baseline": True}

    def setup(self) -> None:
        sampler = self.config["sampler"]
        if sampler is not None and (not isinstance(sampler, str) or sampler.startswith("dspy_")):
            raise self.config_error("sampler", "must name a sampler of the optimizers registry (or be None)")
        if not isinstance(self.config["sampler_config"], Mapping):
            raise self.config_error("sampler_config", "must be a dict of the sampler's optimizer_config keys")
        if not isinstance(self.config["baseline"], bool):
            raise self.config_error("baseline", "must be True or False")
        # Builtins skip the registry's entry-point scan.
        self.sampler_class = None if sampler is None else BUILTINS.get(sampler) or resolve_optimizer(sampler)
        self.quick = bool(getattr(self.sampler_class, "quick", True))  # the run loop may call it inline
        self._baseline: dict[str, Any] | None = None

    def restore(self, trials: Sequence[Trial]) -> None:
        """Builds the sampler (checking its config before the run takes leases) with the trials of a resumed
        run; a new run starts from the variables' current values."""
        self._sampler: Optimizer | None = None
        if self.sampler_class is not None:
            self._sampler = self.sampler_class(
                self.space, dict(self.config["sampler_config"]), seed=self.seed, direction=self.direction, trials=trials
            )
        initial = {dim.name: dim.initial for dim in self.space}
        if not trials and self.config["baseline"] and all(dim.contains(initial[dim.name]) for dim in self.space):
            self._baseline = initial
        elif self._sampler is None:
            raise ValueError(
                f"{self.name}: with sampler=None only the current values are proposed, and they are not all "
                f"within the search space of {self.space.names}"
            )

    def ask(self, iteration: int) -> dict[str, Any] | None:
        if self._baseline is not None:
            candidate, self._baseline = self._baseline, None
            return self.within_space(candidate)
        return None if self._sampler is None else self._sampler.ask(iteration)

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        if self._sampler is not None:
            self._sampler.tell(iteration, candidate, score, metrics)


def search_class(teleprompter: str) -> type[TeleprompterSearch]:
    """The `dspy_<name>` optimizer class for a teleprompter class name."""
    name = optimizer_name(teleprompter)
    return type(
        f"{teleprompter}Search",
        (TeleprompterSearch,),
        {
            "name": name,
            "teleprompter_name": teleprompter,
            "__doc__": f"The search over {teleprompter}'s parameters ({name}).",
            "__module__": __name__,
        },
    )


def optimizer_name(teleprompter: str) -> str:
    return f"dspy_{teleprompter.lower()}"


# The teleprompters this package is tested with, by name (entry points can name these classes).
BootstrapFewShotSearch = search_class("BootstrapFewShot")
BootstrapFewShotWithRandomSearchSearch = search_class("BootstrapFewShotWithRandomSearch")
BootstrapFewShotWithOptunaSearch = search_class("BootstrapFewShotWithOptuna")
LabeledFewShotSearch = search_class("LabeledFewShot")
MIPROv2Search = search_class("MIPROv2")
GEPASearch = search_class("GEPA")
COPROSearch = search_class("COPRO")
SIMBASearch = search_class("SIMBA")

#: optimizer_type -> class, for the teleprompters above.
SEARCHES: dict[str, type[TeleprompterSearch]] = {
    cls.name: cls
    for cls in (
        BootstrapFewShotSearch,
        BootstrapFewShotWithRandomSearchSearch,
        BootstrapFewShotWithOptunaSearch,
        LabeledFewShotSearch,
        MIPROv2Search,
        GEPASearch,
        COPROSearch,
        SIMBASearch,
    )
}
