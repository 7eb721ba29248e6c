"""The benchmark harness still runs end to end (`--quick`); figures are not judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
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
