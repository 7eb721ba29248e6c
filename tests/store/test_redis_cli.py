"""`dspex serve --store redis://…`: served from Redis, refused clearly when Redis is not there, and a Redis
that goes away mid-run answered with UNAVAILABLE (store_unavailable) instead of a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from redis_servers import RedisProcess, free_port, prefix_for, redis_url

from bridge import SessionContext, connect
from bridge.errors import StoreUnavailableError, ValidationError
from bridge.server import BridgeServer, serve_process
from bridge.store import open_store

DSPEX = [sys.executable, "-m", "bridge.server", "serve"]


def test_help_names_the_redis_forms() -> None:
    out = " ".join(subprocess.run([*DSPEX, "--help"], capture_output=True, text=True, check=True).stdout.split())
    assert "redis://HOST:PORT/DB" in out and "redis+cluster://HOST:PORT" in out and "?prefix=P" in out


def test_an_unreachable_redis_is_refused_at_start() -> None:
    spec = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    run = subprocess.run([*DSPEX, "--port", "0", "--store", spec], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run
    assert "Redis store 'redis://127.0.0.1:" in run.stderr and "Connect" in run.stderr


def test_a_bad_prefix_is_refused() -> None:
    with pytest.raises(ValidationError, match="Redis key prefix"):
        open_store(f"{redis_url()}?prefix=a{{b}}")


async def test_two_processes_serve_one_redis(tmp_path: Path) -> None:
    spec = f"{redis_url()}?prefix={prefix_for(tmp_path)}"
    with serve_process(["--port", "0", "--store", spec]) as a, serve_process(["--port", "0", "--store", spec]) as b:
        async with connect(a.address) as on_a, connect(b.address) as on_b:
            first = await SessionContext("shared", on_a).initialize()
            await first.register_variable("kept", "integer", 42)
            other = await SessionContext("shared", on_b, token=first.token).initialize()
            assert await other.get_variable("kept", bypass_cache=True) == 42
            await other.set_variable("kept", 43)
            assert await first.get_variable("kept", bypass_cache=True) == 43


async def test_redis_going_away_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    redis = RedisProcess(free_port(), tmp_path / "redis")
    redis.start()
    try:
        server = await BridgeServer(store=f"redis://127.0.0.1:{redis.port}/0").start()
        try:
            async with connect(server.address) as channel:
                session = await SessionContext("s", channel).initialize()
                await session.register_variable("x", "integer", 1)
                redis.kill()
                with pytest.raises(StoreUnavailableError, match="the Redis store at redis://127\\.0\\.0\\.1"):
                    await session.set_variable("x", 2)
                with pytest.raises(StoreUnavailableError):
                    await session.get_variable("x", bypass_cache=True)
        finally:
            await server.stop(1.0)
    finally:
        redis.stop()
