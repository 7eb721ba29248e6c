"""The benchmark harness still runs end to end (`--quick`); figures are not judged here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_quick(tmp_path: Path, *flags: str) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(out.read_text())


def test_quick_benchmark_writes_every_row(tmp_path: Path) -> None:
    report = _run_quick(tmp_path)
    assert report["environment"]["pinned"] is None
    names = {row["name"] for row in report["rows"]}
    for expected in (
        "raw echo 32 B",
        "get_variable (float, uncached)",
        "set_variable (float)",
        "raw echo 4 MiB",
        "set+get tensor 4 MiB (float32)",
        "get_variables (100 names)",
    ):
        assert expected in names
    assert all(row["median_us"] > 0 for row in report["rows"])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin needs two usable cores")
def test_pinned_run_records_its_cores(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, "--pin")
    cpus = sorted(os.sched_getaffinity(0))
    assert report["environment"]["pinned"] == {"client": cpus[0], "server": cpus[1]}
    assert report["environment"]["cpus_usable"] == 1  # recorded after the client pinned itself
