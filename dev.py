"""One entry point for newcomers and CI: sets up .venv, then runs the demo or the test suite.

    python3 dev.py demo    # server on the embedded store + the end-to-end demo
    python3 dev.py test    # lint + the whole test suite
    python3 dev.py bench   # the benchmarks (see BENCHMARKS.md)

Only needs python3 (>= 3.11). Installs into ./.venv and skips the install when
pyproject.toml has not changed since the last one. The tests and benchmarks also start real
redis-server processes: `test` and `bench` install Debian's redis-server where it is missing
(as root, or through sudo).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

# torch is pinned: an open range would pull a multi-GB CUDA build on a fresh machine.
SETUPS = {
    "demo": ["-e", ".[dspy]"],
    "test": ["torch==2.13.0", "-e", ".[dev,dspy]"],
    "bench": ["-e", ".[dev]"],
}


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def setup(kind: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 a newcomer has
        raise SystemExit(f"dspex-dspy needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    args = SETUPS[kind]
    stamp = VENV / f".installed-{kind}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + " ".join(args).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", *args)
    stamp.write_text(digest)


def ensure_redis_server() -> None:
    """redis-server and redis-cli, which the Redis store's tests and benchmarks start, installed where missing."""
    if shutil.which("redis-server") and shutil.which("redis-cli"):
        return
    apt = shutil.which("apt-get")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    sudo = [] if root else ["sudo"] if shutil.which("sudo") else None
    if apt is None or sudo is None:
        raise SystemExit(
            "the tests need redis-server and redis-cli (Redis 7 or newer) on PATH: install them with your "
            "package manager (Debian/Ubuntu: apt-get install redis-server), then run this again"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing redis-server (Debian's package)", flush=True)
    for step in (["update", "-q"], ["install", "-y", "-q", "--no-install-recommends", "redis-server"]):
        print("+", " ".join([*sudo, apt, *step]), flush=True)
        subprocess.run([*sudo, apt, *step], check=True, env=env)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command == "demo":
        setup("demo")
        run(PY, "examples/dspy_main_job.py", *rest)
    elif command == "test":
        setup("test")
        ensure_redis_server()
        run(PY, "-m", "ruff", "check", ".")
        run(PY, "-m", "pytest", "-q", *rest)
    elif command == "bench":
        setup("bench")
        ensure_redis_server()
        run(PY, "-m", "benchmarks", *rest)
    else:
        print(__doc__)
        return 0 if command in ("help", "-h", "--help") else 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)
