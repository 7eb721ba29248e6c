"""`dspex serve` as users run it: a real process, health, reflection, graceful SIGTERM/SIGINT."""

from __future__ import annotations

import errno
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

from bridge import BridgeServer, SessionContext, connect

DSPEX = [sys.executable, "-c", "from bridge.server import main; raise SystemExit(main())"]


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [*DSPEX, "serve", "--port", "0", "--log-level", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the server reports its address, on stdout
    match = re.fullmatch(r"dspex: serving on (127\.0\.0\.1:\d+)\n", line)
    assert match, f"unexpected ready line {line!r}"
    yield proc, match.group(1)
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_cli_help_lists_serve_options_with_defaults() -> None:
    out = subprocess.run([*DSPEX, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    for option, default in [
        ("--host", "127.0.0.1"),
        ("--port", "50051"),
        ("--store", "memory"),
        ("--max-message-mb", "96.0"),
        ("--session-ttl", "3600.0"),
        ("--grace", "5.0"),
        ("--log-level", "info"),
    ]:
        assert option in out
        assert f"(default: {default})" in flat, f"{option} shows no default"


async def test_a_second_server_on_a_taken_port_refuses_to_start(served) -> None:
    _, address = served
    port = address.rsplit(":", 1)[1]
    async with connect(address) as channel:
        session = await SessionContext("first", channel).initialize()
        await session.register_variable("kept", "integer", 42)

        second = subprocess.Popen(
            [*DSPEX, "serve", "--port", port], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        ready = second.stdout.readline()  # the ready line if it (wrongly) started, "" once it exits
        if ready:
            second.kill()
        _, stderr = second.communicate(timeout=60)
        assert ready == "", "a second server started on a taken port"
        assert second.returncode != 0
        assert "address already in use" in stderr

        assert await session.get_variable("kept") == 42  # the first still serves its data, on every connection
    for _ in range(5):  # new connections, which SO_REUSEPORT would have split between the two
        async with connect(address) as fresh:
            again = await SessionContext("first", fresh, token=session.token).initialize()
            assert await again.get_variable("kept") == 42


async def test_in_process_server_on_a_taken_port_raises_a_clear_error(server) -> None:
    from bridge.server import AddressInUseError

    port = int(server.address.rsplit(":", 1)[1])
    with pytest.raises(AddressInUseError, match="address already in use") as info:
        await BridgeServer(port=port).start()
    assert isinstance(info.value, OSError) and info.value.errno == errno.EADDRINUSE


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
