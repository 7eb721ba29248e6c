"""`dspex serve` as users run it: a real process, health, reflection, graceful SIGTERM/SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bridge import SessionContext, connect

DSPEX = [sys.executable, "-c", "from bridge.server import main; raise SystemExit(main())"]


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([*DSPEX, "serve", "--port", "0", "--log-level", "info"], stderr=subprocess.PIPE, text=True)
    address = None
    for line in proc.stderr:  # blocks until the server reports its address
        match = re.search(r"serving on (\S+)", line)
        if match:
            address = match.group(1)
            break
    assert address, "server did not start"
    yield proc, address
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_cli_help_lists_serve_options() -> None:
    out = subprocess.run([*DSPEX, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--host", "--port", "--store", "--max-message-mb", "--session-ttl"):
        assert option in out


async def test_served_process_answers_health_reflection_and_sessions(served) -> None:
    _, address = served
    assert address.startswith("127.0.0.1:")
    async with connect(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="dspex_bridge.v1.BridgeService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = [s.name async for r in responses for s in r.list_services_response.service]
        assert "dspex_bridge.v1.BridgeService" in services

        session = await SessionContext("cli", channel).initialize()
        await session.register_variable("x", "integer", 1)
        assert await session.get_variable("x") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_gracefully_with_structured_logs(served, sig: signal.Signals) -> None:
    proc, _ = served
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 0
    logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "server stopped" for entry in logs)
    assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in logs)


def test_transport_failures_stay_rpc_errors() -> None:
    async def probe() -> None:
        async with grpc.aio.insecure_channel("127.0.0.1:1") as channel:
            await SessionContext("nobody", channel, timeout=2.0).initialize()

    import asyncio

    with pytest.raises(grpc.RpcError) as info:
        asyncio.run(probe())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
