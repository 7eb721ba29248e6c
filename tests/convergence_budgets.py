"""What each built-in needs to find the optimum of -(x - 0.3)^2 on [0, 2]; shared by the direct and bridge tests.

name -> (optimizer_config, iterations, tolerance on |best x - 0.3|). Budgets are what each method
needs on this 1-D problem; seeded runs are deterministic, so the tolerances hold exactly.
"""

from __future__ import annotations

from typing import Any

BUDGETS: dict[str, tuple[dict[str, Any], int, float]] = {
    "bayesian": ({}, 25, 0.01),
    "tpe": ({}, 60, 0.02),
    "gp": ({}, 30, 0.01),
    "cmaes": ({}, 80, 0.01),
    "random": ({}, 80, 0.05),
    "qmc": ({}, 64, 0.02),  # the Sobol points come within 2/64 of every x
    "nsga2": ({}, 150, 0.05),
    "grid_search": ({"n_points": 21}, 21, 1e-9),  # 0.3 is on the grid (step 0.1)
    "gradient": ({}, 60, 0.02),
}
