"""BridgeService as served: every RPC group, one class (see bridge.proto for each method's contract)."""

from __future__ import annotations

from ._interchange import InterchangeServicer
from ._optimization import OptimizationServicer
from ._watch import InvalidationServicer


class BridgeServicer(InvalidationServicer, InterchangeServicer, OptimizationServicer):
    """Sessions, variables, watches, cache invalidations, export/import and optimization; one module per group."""
