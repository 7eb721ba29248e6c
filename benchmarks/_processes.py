"""Child processes the benchmark starts and always stops: the server process and redis-server."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class ServerPorts:
    bridge: int
    echo: int
    fanout: int = 0  # the raw fan-out baseline of benchmarks.watch
    pid: int = 0  # the server process, whose memory benchmarks.watch reads


@contextlib.contextmanager
def child_servers(module: str, *args: str) -> Iterator[tuple[dict[str, Any], int]]:
    """Runs `python -m module args`, whose first stdout line is JSON (its ports); yields it and the pid.

    EOF on its stdin asks it to stop gracefully; it is reaped either way.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{module} exited early with code {proc.wait()}")
        yield json.loads(line), proc.pid
    finally:
        proc.stdin.close()
        _reap(proc)


@contextlib.contextmanager
def server_process(cpu: int | None = None) -> Iterator[ServerPorts]:
    """Runs `benchmarks._servers` in its own interpreter: the servers get their own GIL and event loop, as in use.

    `cpu`: pin the server process (and the threads gRPC starts in it) to that core.
    """
    pin = [] if cpu is None else ["--cpu", str(cpu)]
    with child_servers("benchmarks._servers", *pin) as (ports, pid):
        yield ServerPorts(**ports, pid=pid)


def free_port() -> int:
    """A loopback port that was free a moment ago (redis-server cannot bind port 0 and report it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_version() -> str | None:
    """`redis-server --version`, or None when it is not installed."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def redis_process() -> Iterator[int]:
    """A throwaway redis-server without persistence, on a free loopback port; yields the port."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise FileNotFoundError("redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        proc = subprocess.Popen(
            [
                exe,
                *("--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
                *("--dir", workdir, "--loglevel", "warning"),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait_listening(proc, port)
            yield port
        finally:
            proc.terminate()
            _reap(proc)


def _reap(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10.0) -> None:
    """Waits for a child asked to stop; kills it if it does not."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"redis-server did not listen on port {port} within {timeout}s")
