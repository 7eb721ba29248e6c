"""The client side: SessionContext, its cache, its watches, and a channel helper."""

from ._cache import MISSING, CacheStats, VariableCache
from ._session import SessionContext, connect
from ._updates import VariableUpdate
from ._watch import Watch

__all__ = ["MISSING", "CacheStats", "SessionContext", "VariableCache", "VariableUpdate", "Watch", "connect"]
