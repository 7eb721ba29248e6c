"""Fixtures: a real server on a loopback port, real channels, real sessions."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, settings

from bridge import BridgeServer, SessionContext, connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_specs import STORES  # found through the path just set

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ci")


@dataclass
class ExternalHost:
    """A host under test that someone else runs (any language): DSPEX_TEST_ADDRESS=host:port."""

    address: str


def _test_store(tmp_path: Path) -> str:
    """The `--store` spec of the store DSPEX_TEST_STORE names (default memory), kept under tmp_path."""
    name = os.environ.get("DSPEX_TEST_STORE", "memory")
    found = [s for s in STORES if s.name == name]
    if not found:
        raise pytest.UsageError(f"DSPEX_TEST_STORE={name!r}: use one of {', '.join(map(str, STORES))}")
    return found[0].spec(tmp_path)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[BridgeServer | ExternalHost]:
    external = os.environ.get("DSPEX_TEST_ADDRESS")
    if external:
        yield ExternalHost(external)
        return
    srv = BridgeServer(store=_test_store(tmp_path))
    await srv.start()
    yield srv
    await srv.stop(grace=1.0)


@pytest.fixture
async def channel(server: BridgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with connect(server.address) as ch:
        yield ch


@pytest.fixture
async def session(channel: grpc.aio.Channel) -> AsyncIterator[SessionContext]:
    async with SessionContext(f"test_{uuid.uuid4().hex[:8]}", channel) as s:
        yield s


@pytest.fixture
def new_session(channel: grpc.aio.Channel):
    """Opens further sessions on the same server."""

    async def make(session_id: str | None = None) -> SessionContext:
        return await SessionContext(session_id or f"test_{uuid.uuid4().hex[:8]}", channel).initialize()

    return make


@pytest.fixture(autouse=True, scope="session")
def _caches_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tools that cache under ~ (matplotlib, IPython, Jupyter) write into this run's tmp dir instead.

    Set for the whole session, so subprocesses and notebook kernels inherit them.
    """
    caches = tmp_path_factory.mktemp("caches")
    for var, sub in {
        "MPLCONFIGDIR": "matplotlib",
        "IPYTHONDIR": "ipython",
        "JUPYTER_CONFIG_DIR": "jupyter-config",
        "JUPYTER_DATA_DIR": "jupyter-data",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        "XDG_CACHE_HOME": "xdg-cache",
        "DSPY_CACHEDIR": "dspy",
    }.items():
        os.environ[var] = str(caches / sub)
