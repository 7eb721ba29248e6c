"""BridgeService as served: every RPC group, one class (see bridge.proto for each method's contract)."""

from __future__ import annotations

from ._interchange import InterchangeServicer
from ._optimization import OptimizationServicer
from ._watch import WatchServicer


class BridgeServicer(WatchServicer, InterchangeServicer, OptimizationServicer):
    """Sessions, variables, watches and optimization coordination; each group lives in its own module."""
