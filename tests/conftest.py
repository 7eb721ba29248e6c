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

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ci")


@dataclass
class ExternalHost:
    """A host under test that someone else runs (any language): DSPEX_TEST_ADDRESS=host:port."""

    address: str


@pytest.fixture
async def server() -> AsyncIterator[BridgeServer | ExternalHost]:
    external = os.environ.get("DSPEX_TEST_ADDRESS")
    if external:
        yield ExternalHost(external)
        return
    srv = BridgeServer()
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
