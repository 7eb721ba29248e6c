"""Watch and Invalidations: the event log's live fan-out (hubs), its wire encoding, and each RPC's stream."""

from ._hub import Subscriber, WatchHubs
from ._invalidations import InvalidationServicer, Tracker
from ._rpc import WatchServicer

__all__ = ["InvalidationServicer", "Subscriber", "Tracker", "WatchHubs", "WatchServicer"]
