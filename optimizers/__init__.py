"""Optimizers for `session.start_optimization`: Bayesian (bayes_opt), Optuna's samplers, grid search, gradient.

Every one implements the ask/tell protocol of `bridge.optimization` by subclassing
`BaseOptimizer`; `BUILTINS` maps each optimizer_type name to its class. Importing this
package imports Optuna (its samplers' signatures define the config keys) but not
bayes_opt, torch or dspy: those load when an optimizer that needs them is built.
"""

from __future__ import annotations

from ._base import BaseOptimizer
from ._bayesian import BayesianOptimizer
from ._gradient import GradientOptimizer
from ._grid import MAX_GRID_POINTS, GridSearchOptimizer
from ._optuna_samplers import (
    CmaEsOptimizer,
    GPOptimizer,
    NSGAIIOptimizer,
    OptunaSamplerOptimizer,
    QMCOptimizer,
    RandomOptimizer,
    TPEOptimizer,
)
from ._study import load_study, to_optuna_study

#: optimizer_type -> class, for every optimizer this package ships.
BUILTINS: dict[str, type[BaseOptimizer]] = {
    cls.name: cls
    for cls in (
        BayesianOptimizer,
        TPEOptimizer,
        GPOptimizer,
        CmaEsOptimizer,
        RandomOptimizer,
        QMCOptimizer,
        NSGAIIOptimizer,
        GridSearchOptimizer,
        GradientOptimizer,
    )
}

__all__ = [
    "BUILTINS",
    "MAX_GRID_POINTS",
    "BaseOptimizer",
    "BayesianOptimizer",
    "CmaEsOptimizer",
    "GPOptimizer",
    "GradientOptimizer",
    "GridSearchOptimizer",
    "NSGAIIOptimizer",
    "OptunaSamplerOptimizer",
    "QMCOptimizer",
    "RandomOptimizer",
    "TPEOptimizer",
    "load_study",
    "to_optuna_study",
]
