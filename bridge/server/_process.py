"""`dspex serve` as a child process, for scripts, examples and tests that want a real separate server."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

READY_PREFIX = "dspex: serving on "


@dataclass(frozen=True, slots=True)
class ServerProcess:
    address: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def serve_process(args: Sequence[str] = ("--port", "0"), *, log_level: str = "warning") -> Iterator[ServerProcess]:
    """Starts `dspex serve ARGS`, waits for its ready line on stdout, and stops it (SIGTERM) on exit.

    Logs go to this process's stderr. Raises RuntimeError with the server's exit code if it
    exits before it is ready (e.g. its port is taken).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.server", "serve", *args, "--log-level", log_level],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()  # the ready line, or "" when it exited first
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"dspex serve exited before it was ready (exit code {proc.wait(30)})")
        yield ServerProcess(line[len(READY_PREFIX) :].strip(), proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        proc.stdout.close()
