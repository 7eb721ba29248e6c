"""The client side: SessionContext, its watches, and a channel helper."""

from ._session import SessionContext, connect
from ._updates import VariableUpdate
from ._watch import Watch

__all__ = ["SessionContext", "VariableUpdate", "Watch", "connect"]
