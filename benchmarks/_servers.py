"""The server process: the bridge and the raw echo baseline, side by side in one grpc.aio loop.

Run as `python -m benchmarks._servers [--cpu N]`. Both servers share this process (and so its event
loop and gRPC poller), so the bridge is compared with plain gRPC under the same conditions,
while the measuring client lives in another process, as it would in real use. The bound
ports are printed as one JSON line; the process stops when its stdin is closed. A raw gRPC
fan-out server (`benchmarks._fanout`) runs beside them, the baseline of watch fan-out.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import grpc

from bridge.limits import channel_options
from bridge.server import BridgeServer

from ._fanout import start_fanout_server

ECHO_METHOD = "/benchmarks.Echo/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    """Returns the request bytes untouched: the least work a unary gRPC call can do."""
    return request


async def _start_echo_server(echo: Any = None) -> tuple[grpc.aio.Server, int]:
    """The raw echo (or another bytes-to-bytes handler `echo` under its name)."""
    # No (de)serializers: bytes in, the same bytes out.
    handler = grpc.method_handlers_generic_handler(
        "benchmarks.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo or _echo)}
    )
    server = grpc.aio.server(options=channel_options())
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def serve() -> None:
    """Starts the servers, reports their ports, and runs until stdin reaches EOF."""
    bridge = await BridgeServer().start()
    echo, echo_port = await _start_echo_server()
    fanout, fanout_port = await start_fanout_server()
    print(json.dumps({"bridge": bridge.port, "echo": echo_port, "fanout": fanout_port}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    await fanout.stop(1.0)
    await echo.stop(1.0)
    await bridge.stop(1.0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cpu"]:  # before gRPC starts threads, so that they inherit the pinning
        os.sched_setaffinity(0, {int(sys.argv[2])})
    asyncio.run(serve())
