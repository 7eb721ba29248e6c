"""BaseOptimizer implementations (Optuna samplers, grid search, gradient); arrives with the optimizer issue.

Kept importable so the distribution's layout is fixed from the start; it exports nothing yet.
"""

__all__: list[str] = []
