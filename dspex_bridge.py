"""The spec's import path (`from dspex_bridge import SessionContext`): bridge's public API, nothing else.

Names are copied from `bridge`, except the server, which stays lazy as it is there: a
star import must not load the server (and gRPC's health and reflection services).
"""

from typing import Any

import bridge
from bridge import __all__ as __all__
from bridge import __version__ as __version__

globals().update({name: getattr(bridge, name) for name in __all__ if name != "BridgeServer"})


def __getattr__(name: str) -> Any:
    if name == "BridgeServer":
        return bridge.BridgeServer
    raise AttributeError(f"module 'dspex_bridge' has no attribute {name!r}")
