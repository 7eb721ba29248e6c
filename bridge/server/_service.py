"""BridgeService as served: every RPC group, one class (see bridge.proto for each method's contract)."""

from __future__ import annotations

from ._optimization import OptimizationServicer


class BridgeServicer(OptimizationServicer):
    """Sessions, variables and optimization coordination; each group lives in its own module."""
