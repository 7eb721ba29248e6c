"""The session host: BridgeService over grpc.aio, with health, reflection and graceful shutdown."""

from ._app import AddressInUseError, BridgeServer
from ._cli import main
from ._logging import JsonFormatter, configure_logging
from ._process import ServerProcess, serve_process
from ._service import BridgeServicer
from ._sessions import PROTOCOL_VERSION
from ._tls import TLSConfig

__all__ = [
    "PROTOCOL_VERSION",
    "AddressInUseError",
    "BridgeServer",
    "BridgeServicer",
    "JsonFormatter",
    "ServerProcess",
    "TLSConfig",
    "configure_logging",
    "main",
    "serve_process",
]
