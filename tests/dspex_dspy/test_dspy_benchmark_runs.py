"""`python -m benchmarks.dspy --quick` runs end to end and records every figure (the figures are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dspy_benchmark_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "dspy.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.dspy", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["compile"]["same_demos"] and report["compile"]["bare_ms"] > 0
    assert report["compile"]["runs_recorded"] == 2 + 2  # two warm-up compiles and two timed ones, each a run
    assert 0 < report["hot_path"]["synced_config_read_us"] < report["hot_path"]["session_read_rpc_us"]
    assert "the bridge's own work per compile" in run.stdout
