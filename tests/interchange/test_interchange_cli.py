"""`dspex export` / `dspex import` as users run them: real subprocesses against a real `dspex serve` on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from interchange_support import document_of, same

from bridge import SessionContext, connect
from bridge.server import ServerProcess, serve_process


@pytest.fixture(scope="module")
def served() -> Iterator[ServerProcess]:
    with serve_process() as server:
        yield server


@pytest.fixture
async def source(served: ServerProcess) -> AsyncIterator[SessionContext]:
    async with connect(served.address) as channel:
        session = await SessionContext(f"cli_{os.urandom(4).hex()}", channel).initialize()
        await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
        await session.register_variable("model_name", "choice", "small", constraints={"choices": ["small", "large"]})
        await session.register_variable("embedding", "embedding", np.linspace(0, 1, 32, dtype=np.float32))
        await session.set_variable("temperature", 0.9)
        yield session
        await session.cleanup()


def dspex(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bridge.server", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def login(served: ServerProcess, session: SessionContext) -> list[str]:
    return ["--address", served.address, "--session", session.session_id, "--token", session.token or ""]


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".parquet"])
async def test_export_to_a_file_then_import_it_into_a_new_session(
    served: ServerProcess, source: SessionContext, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"backup{suffix}"
    done = dspex("export", *login(served, source), "--out", str(path), "--include-history")
    assert done.returncode == 0, done.stderr.decode()
    format = {".json": "json", ".yaml": "yaml", ".parquet": "parquet"}[suffix]  # from the suffix
    assert document_of(path.read_bytes(), format)["session_id"] == source.session_id

    done = dspex("import", str(path), "--address", served.address, "--session", f"{source.session_id}_copy")
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert (summary["imported"], summary["errors"]) == (3, 0)
    token = done.stderr.decode().split("DSPEX_SESSION_TOKEN=")[1].split()[0]  # the new session's, for its users
    async with connect(served.address) as channel:
        copy = await SessionContext(f"{source.session_id}_copy", channel, token=token).initialize()
        names = ["embedding", "model_name", "temperature"]
        assert same(await copy.get_variables(names), await source.get_variables(names))
        [info] = await copy.list_variables("temperature")
        assert info["version"] == 2
        await copy.cleanup()


async def test_stdout_to_stdin_with_the_session_from_the_environment(
    served: ServerProcess, source: SessionContext
) -> None:
    env = {"DSPEX_ADDRESS": served.address, "DSPEX_SESSION_ID": source.session_id}
    env["DSPEX_SESSION_TOKEN"] = source.token or ""
    exported = dspex("export", "--filter", ".*model.*", "--format", "yaml", env=env)
    assert exported.returncode == 0, exported.stderr.decode()
    assert document_of(exported.stdout, "yaml")["variables"][0]["name"] == "model_name"
    await source.set_variable("model_name", "large")

    dry = dspex("import", "--format", "yaml", "--dry-run", stdin=exported.stdout, env=env)
    assert dry.returncode == 0 and json.loads(dry.stdout)["details"][0]["outcome"] == "replaced"
    assert await source.get_variable("model_name", bypass_cache=True) == "large"
    kept = dspex("import", "-", "-f", "yaml", "--merge-strategy", "keep", stdin=exported.stdout, env=env)
    assert json.loads(kept.stdout)["skipped"] == 1
    done = dspex("import", "-f", "yaml", stdin=exported.stdout, env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["imported"] == 1
    assert await source.get_variable("model_name", bypass_cache=True) == "small"


async def test_a_failed_import_exits_1_and_non_atomic_applies_the_rest(
    served: ServerProcess, source: SessionContext, tmp_path: Path
) -> None:
    doc = json.loads(await source.export_variables())  # edited by hand, as json exports may be
    doc["variables"][2]["value"] = 5.0  # temperature's max is 2.0
    doc["variables"][1]["value"] = "large"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    atomic = dspex("import", str(path), *login(served, source))
    assert atomic.returncode == 1
    assert json.loads(atomic.stdout)["errors"] == 1
    assert await source.get_variable("model_name", bypass_cache=True) == "small"
    partial = dspex("import", str(path), *login(served, source), "--non-atomic")
    assert partial.returncode == 1 and json.loads(partial.stdout)["imported"] == 2
    assert await source.get_variable("model_name", bypass_cache=True) == "large"


async def test_pickle_needs_allow_pickle(served: ServerProcess, source: SessionContext, tmp_path: Path) -> None:
    path = tmp_path / "backup.pkl"
    assert dspex("export", *login(served, source), "-o", str(path)).returncode == 0
    refused = dspex("import", str(path), *login(served, source))
    assert refused.returncode == 1 and b"refusing to load pickle data" in refused.stderr
    allowed = dspex("import", str(path), *login(served, source), "--allow-pickle")
    assert allowed.returncode == 0, allowed.stderr.decode()


async def test_clear_errors_for_a_wrong_session_token_or_server(served: ServerProcess, source: SessionContext) -> None:
    missing = dspex("export", "--address", served.address, "--session", "nobody_here", "--token", "nobody_here.x")
    assert missing.returncode == 1 and b"session 'nobody_here' not found" in missing.stderr
    wrong = dspex("export", "--address", served.address, "--session", source.session_id, "--token", "bad")
    assert wrong.returncode == 1 and b"dspex: " in wrong.stderr and b"Traceback" not in wrong.stderr
    no_token = dspex("export", "--address", served.address, "--session", source.session_id)
    assert no_token.returncode != 0 and b"--token or DSPEX_SESSION_TOKEN" in no_token.stderr
    down = dspex("export", "--address", "127.0.0.1:1", "--session", "s", "--token", "t", "--timeout", "5")
    assert down.returncode == 1 and b"127.0.0.1:1: UNAVAILABLE" in down.stderr
    bad_filter = dspex("export", *login(served, source), "--filter", "(")
    assert bad_filter.returncode == 1 and b"is not a valid RE2 pattern" in bad_filter.stderr


def test_help_never_shows_a_token() -> None:
    shown = dspex("export", "--help", env={"DSPEX_SESSION_TOKEN": "secret-token-value"})
    assert shown.returncode == 0 and b"secret-token-value" not in shown.stdout
