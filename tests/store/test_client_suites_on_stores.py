"""The black-box client suites again, against a server on each durable store (DSPEX_TEST_STORE=sqlite, redis).

The default run's `server` fixture serves from memory; this runs the client-facing suites in a
child pytest whose `server` fixture serves from a SQLite file, then from the Redis server the
child starts, so the same tests hold on every store. To run everything on one store by hand:
`DSPEX_TEST_STORE=redis .venv/bin/python -m pytest -q`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/bridge", "tests/watch", "tests/cache", "tests/history", "tests/dependencies", "tests/access"]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_the_client_suites_pass_on_the_store(store: str) -> None:
    if os.environ.get("DSPEX_TEST_STORE", "memory") != "memory":
        pytest.skip("this run already serves every suite from the chosen store")
    env = {**os.environ, "DSPEX_TEST_STORE": store}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
