"""Real Redis servers for the tests: one standalone `redis-server` and one 3-node Redis Cluster on loopback.

Each is started the first time a test asks for it and stopped when the test process exits; tests
share them and keep apart by key prefix (`prefix_for`). `redis-server` must be installed: the
README's setup (dev.py) installs it where it is missing.
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

#: Seconds a Redis server may take to start, and a cluster to agree on its slots.
START_TIMEOUT = 30.0


def free_port(also: int = 0) -> int:
    """A loopback port that is free now (with `port + also` free too: a cluster node's bus port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not also or port + also > 65535:
            if not also:
                return port
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + also))
            except OSError:
                continue
        return port


@dataclass
class RedisProcess:
    """One redis-server, started and ready to accept connections."""

    port: int
    directory: Path
    extra: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `python3 dev.py test`, which installs it")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--loglevel",
                "notice",
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        seen: list[str] = []

        def watch(stream: object) -> None:
            for line in stream:  # type: ignore[attr-defined]
                seen.append(line)
                if "Ready to accept connections" in line:
                    ready.set()

        threading.Thread(target=watch, args=(self.process.stdout,), daemon=True).start()
        if not ready.wait(START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"redis-server on port {self.port} did not start:\n{''.join(seen[-20:])}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_lock = threading.Lock()
_root: Path | None = None
_standalone: RedisProcess | None = None
_cluster: list[RedisProcess] = []


def _dir(name: str) -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="dspex-redis-"))
        atexit.register(_stop_all)
    return _root / name


def _stop_all() -> None:
    for process in [_standalone, *_cluster]:
        if process is not None:
            process.stop()
    if _root is not None:
        shutil.rmtree(_root, ignore_errors=True)


def redis_url() -> str:
    """`redis://127.0.0.1:PORT/0` of the shared standalone server, started on first use."""
    global _standalone
    with _lock:
        if _standalone is None:
            process = RedisProcess(free_port(), _dir("standalone"))
            process.start()
            _standalone = process
        return f"redis://127.0.0.1:{_standalone.port}/0"


def redis_cluster_url() -> str:
    """`redis+cluster://127.0.0.1:PORT` of one node of the shared 3-node cluster, made on first use."""
    with _lock:
        if not _cluster:
            nodes = []
            for i in range(3):
                node = RedisProcess(
                    free_port(also=10000),
                    _dir(f"cluster-{i}"),
                    ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
                )
                node.start()
                nodes.append(node)
            _cluster.extend(nodes)
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *[f"127.0.0.1:{n.port}" for n in nodes],
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT,
            )
            _wait_for_cluster([n.port for n in nodes])
        return f"redis+cluster://127.0.0.1:{_cluster[0].port}"


def _wait_for_cluster(ports: list[int]) -> None:
    """Until every node reports the cluster ok with all 16384 slots assigned (a state other processes reach)."""
    deadline = time.monotonic() + START_TIMEOUT
    for port in ports:
        client = redis.Redis(port=port)
        try:
            while True:
                info = client.cluster("info")
                if info.get("cluster_state") == "ok" and int(info.get("cluster_slots_ok", 0)) == 16384:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Redis Cluster did not come up: {info}")
                time.sleep(0.05)  # polling another process's state: there is no event to wait on
        finally:
            client.close()


def prefix_for(where: Path) -> str:
    """A key prefix of its own for each test directory: tests share the servers, never their keys."""
    return "t" + hashlib.sha1(str(where).encode()).hexdigest()[:16]
