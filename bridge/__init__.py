"""dspex bridge: typed, versioned, observable session variables over gRPC.

Light to import: grpc, protobuf and numpy only (no dspy, no optuna). The server
lives in `bridge.server` and is imported on first use of `BridgeServer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .client import SessionContext, VariableCache, VariableUpdate, Watch, connect
from .errors import (
    ERROR_TABLE,
    AccessDeniedError,
    AuthenticationError,
    BridgeError,
    ConstraintViolationError,
    LimitExceededError,
    PreconditionFailedError,
    RevisionCompactedError,
    SessionNotFoundError,
    StoreUnavailableError,
    UnknownTypeError,
    ValidationError,
    VariableExistsError,
    VariableNotFoundError,
    VariableTypeError,
    WatchOverflowError,
)
from .limits import Limits
from .types import TYPES, infer_type

if TYPE_CHECKING:
    from .server import BridgeServer


def __getattr__(name: str) -> Any:
    if name == "BridgeServer":
        from .server import BridgeServer

        return BridgeServer
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


__all__ = [
    "ERROR_TABLE",
    "TYPES",
    "AccessDeniedError",
    "AuthenticationError",
    "BridgeError",
    "BridgeServer",
    "ConstraintViolationError",
    "LimitExceededError",
    "Limits",
    "PreconditionFailedError",
    "RevisionCompactedError",
    "SessionContext",
    "SessionNotFoundError",
    "StoreUnavailableError",
    "UnknownTypeError",
    "ValidationError",
    "VariableCache",
    "VariableExistsError",
    "VariableNotFoundError",
    "VariableTypeError",
    "VariableUpdate",
    "Watch",
    "WatchOverflowError",
    "__version__",
    "connect",
    "infer_type",
]
