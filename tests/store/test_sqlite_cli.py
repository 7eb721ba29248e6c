"""`dspex serve --store`: the accepted forms, and a SQLite file served by one process at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge import SessionContext, connect
from bridge.server import serve_process

DSPEX = [sys.executable, "-m", "bridge.server", "serve"]


def _refused(*args: str) -> str:
    run = subprocess.run([*DSPEX, "--port", "0", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run
    return run.stderr


def test_help_shows_the_store_forms_and_the_durability_default() -> None:
    out = " ".join(subprocess.run([*DSPEX, "--help"], capture_output=True, text=True, check=True).stdout.split())
    assert "--store memory|sqlite:PATH" in out and "(default: memory)" in out
    assert "--sqlite-synchronous {full,normal}" in out and "(default: full)" in out


def test_a_store_it_does_not_know_is_a_usage_error(tmp_path: Path) -> None:
    assert "unknown store 'redis-ish': use memory or sqlite:PATH" in _refused("--store", "redis-ish")
    assert "the sqlite store is written sqlite:PATH" in _refused("--store", "sqlite:")
    assert "does not exist" in _refused("--store", f"sqlite:{tmp_path / 'no' / 'such.db'}")


async def test_one_server_per_file(tmp_path: Path) -> None:
    spec = f"sqlite:{tmp_path / 'one.db'}"
    with serve_process(["--port", "0", "--store", spec, "--sqlite-synchronous", "normal"]) as first:
        async with connect(first.address) as channel:
            session = await SessionContext("first", channel).initialize()
            await session.register_variable("kept", "integer", 42)
            assert "is in use by another server process" in _refused("--store", spec)
            assert await session.get_variable("kept") == 42
