"""Optimization coordination on the client: search spaces, the optimizer protocol and registry, the run loop.

Implementations live in the `optimizers` package (found through the `dspex.optimizers`
entry points) or are registered by users; nothing here imports an optimizer library.
"""

from ._evaluations import TrialContext, current_trial, record_evaluation
from ._objective import ObjectiveResultError, ObjectiveSpec, interpret
from ._protocol import DIRECTIONS, Optimizer
from ._registry import (
    ENTRY_POINT_GROUP,
    check_optimizer_class,
    known_optimizers,
    register_optimizer,
    resolve_optimizer,
)
from ._run import DEFAULT_PATIENCE, RUN_CONFIG_KEYS, converged
from ._space import SEARCHABLE, Dimension, SearchSpace, Trial, dimension_for, search_space

__all__ = [
    "DEFAULT_PATIENCE",
    "DIRECTIONS",
    "ENTRY_POINT_GROUP",
    "RUN_CONFIG_KEYS",
    "SEARCHABLE",
    "Dimension",
    "ObjectiveResultError",
    "ObjectiveSpec",
    "Optimizer",
    "SearchSpace",
    "Trial",
    "TrialContext",
    "check_optimizer_class",
    "converged",
    "current_trial",
    "dimension_for",
    "interpret",
    "known_optimizers",
    "record_evaluation",
    "register_optimizer",
    "resolve_optimizer",
    "search_space",
]
