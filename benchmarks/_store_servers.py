"""The server process of `benchmarks.stores`: one bridge per store, and the raw echo, in one grpc.aio loop.

Run as `python -m benchmarks._store_servers [--redis-port P] [--only STORE]`. The SQLite files
live in a temporary directory (TMPDIR's filesystem, whose fsync the "full" rows pay), removed
when the process exits; the Redis store uses the redis-server on port P (the benchmark starts
it). Beside the raw echo is a second one whose handler first awaits one redis-py GET: the floor
of any call that waits for Redis. `--only redis` hosts just the Redis bridge: one of the servers
of the scaling rows. The bound ports are printed as one JSON line; the process stops when its
stdin is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from bridge.server import BridgeServer
from bridge.store import RedisStore, SQLiteStore, Store

from ._servers import _start_echo_server

#: The stores measured, by the name the rows use.
STORES = ("memory", "sqlite full", "sqlite normal", "redis")
#: The Redis store's key prefix in the benchmark's redis-server.
REDIS_PREFIX = "bench"


def _stores(directory: Path, redis_port: int) -> dict[str, Callable[[], Store | str]]:
    return {
        "memory": lambda: "memory",
        "sqlite full": lambda: SQLiteStore(directory / "full.db", synchronous="full"),
        "sqlite normal": lambda: SQLiteStore(directory / "normal.db", synchronous="normal"),
        "redis": lambda: RedisStore(f"redis://127.0.0.1:{redis_port}/0", prefix=REDIS_PREFIX),
    }


async def serve(directory: Path, redis_port: int, only: str | None) -> None:
    makers = _stores(directory, redis_port)
    chosen = STORES if only is None else (only,)
    echo, echo_port = await _start_echo_server()
    redis = aioredis.Redis(port=redis_port)

    async def echo_after_get(request: bytes, context: object) -> bytes:
        await redis.get("bench:raw")  # what any handler that awaits one Redis reply pays, and nothing else
        return request

    redis_echo, redis_echo_port = await _start_echo_server(echo_after_get)
    servers = {name: await BridgeServer(store=makers[name]()).start() for name in chosen}
    ports = {"echo": echo_port, "redis echo": redis_echo_port, **{name: s.port for name, s in servers.items()}}
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    for server in servers.values():
        await server.stop(1.0)
    await echo.stop(1.0)
    await redis_echo.stop(1.0)
    await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--only", choices=STORES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as workdir:
        asyncio.run(serve(Path(workdir), args.redis_port, args.only))
