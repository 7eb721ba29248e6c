"""The server process of `benchmarks.stores`: one bridge per store, and the raw echo, in one grpc.aio loop.

Run as `python -m benchmarks._store_servers`. The SQLite files live in a temporary directory
(TMPDIR's filesystem, whose fsync the "full" rows pay), removed when the process exits. The bound
ports are printed as one JSON line; the process stops when its stdin is closed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bridge.server import BridgeServer
from bridge.store import SQLiteStore

from ._servers import _start_echo_server

#: The stores measured, by the name the rows use.
STORES = ("memory", "sqlite full", "sqlite normal")


async def serve(directory: Path) -> None:
    echo, echo_port = await _start_echo_server()
    servers = {
        "memory": await BridgeServer().start(),
        "sqlite full": await BridgeServer(store=SQLiteStore(directory / "full.db", synchronous="full")).start(),
        "sqlite normal": await BridgeServer(store=SQLiteStore(directory / "normal.db", synchronous="normal")).start(),
    }
    print(json.dumps({"echo": echo_port, **{name: s.port for name, s in servers.items()}}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    for server in servers.values():
        await server.stop(1.0)
    await echo.stop(1.0)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as workdir:
        asyncio.run(serve(Path(workdir)))
