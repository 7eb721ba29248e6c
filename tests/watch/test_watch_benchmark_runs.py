"""The watch benchmark still runs end to end (`--quick`); its figures are judged in BENCHMARKS.md, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_watch_benchmark_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "watch.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.watch", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    names = {row["name"] for row in report["rows"]}
    assert {"raw echo 32 B", "set -> watcher has the update", "watch fan-out to 100 watchers (per delivery)"} <= names
    assert report["throughput"]["per_second"] > 0 and report["throughput"]["baseline_per_second"] > 0
    assert report["memory"]["watchers"] > 0
