"""BridgeService as served: every RPC group, one class (see bridge.proto for each method's contract)."""

from __future__ import annotations

from ._dependencies import DependencyServicer
from ._history import HistoryServicer
from ._interchange import InterchangeServicer
from ._optimization import OptimizationServicer
from ._permissions import PermissionServicer
from ._watch import InvalidationServicer


class BridgeServicer(
    InvalidationServicer,
    InterchangeServicer,
    HistoryServicer,
    DependencyServicer,
    PermissionServicer,
    OptimizationServicer,
):
    """Sessions, variables, watches, cache invalidations, export/import, history, dependencies, access
    control and optimization; one module per group."""
