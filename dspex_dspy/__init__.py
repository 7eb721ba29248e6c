"""The DSPy integration (DSPyOptimizationBridge, VariableAwareOptimizer); arrives with the DSPy plugin issue.

Kept importable so the distribution's layout is fixed from the start; it exports nothing yet.
"""

__all__: list[str] = []
