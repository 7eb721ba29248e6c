"""Watch: the event log's live fan-out (hubs), its wire encoding, and the stream each Watch RPC runs."""

from ._hub import Subscriber, WatchHubs
from ._rpc import WatchServicer

__all__ = ["Subscriber", "WatchHubs", "WatchServicer"]
