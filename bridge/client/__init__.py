"""The client side: SessionContext and a channel helper."""

from ._session import SessionContext, connect

__all__ = ["SessionContext", "connect"]
