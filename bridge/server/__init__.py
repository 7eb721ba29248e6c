"""The session host: BridgeService over grpc.aio, with health, reflection and graceful shutdown."""

from ._app import BridgeServer
from ._cli import main
from ._logging import JsonFormatter, configure_logging
from ._servicer import BridgeServicer
from ._sessions import PROTOCOL_VERSION

__all__ = [
    "PROTOCOL_VERSION",
    "BridgeServer",
    "BridgeServicer",
    "JsonFormatter",
    "configure_logging",
    "main",
]
