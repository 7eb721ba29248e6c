"""The runnable examples run as users run them: a fresh interpreter, its own `dspex serve`, exit code 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_quickstart(tmp_path: Path) -> None:
    out = _run("quickstart.py", cwd=tmp_path)
    assert "version 51 after 50 writes (nothing lost)" in out


def test_complete_optimization_workflow_writes_its_results(tmp_path: Path) -> None:
    out = _run("optimization_workflow.py", "--out", "results.json", cwd=tmp_path)
    assert "Optimization complete! Best value: " in out
    results = json.loads((tmp_path / "results.json").read_text())  # an export_variables document
    by_name = {v["name"]: v for v in results["variables"]}
    assert set(by_name) == {"base_temperature", "effective_temperature"}  # the filter_pattern r'.*temperature.*'
    [run] = results["optimization_runs"]
    assert run["variables"] == ["base_temperature"] and run["optimizer_type"] == "bayesian"
    assert run["trials"] and all("accuracy" in t["metrics"] for t in run["trials"])
    best = max(run["trials"], key=lambda t: t["score"])["candidate"]["base_temperature"]
    assert by_name["base_temperature"]["value"] == best
    assert abs(best - 0.55) < 0.05
    assert len(by_name["base_temperature"]["history"]) == by_name["base_temperature"]["version"] - 1


def test_error_handling_waits_for_the_running_optimization_and_retries(tmp_path: Path) -> None:
    out = _run("error_handling.py", cwd=tmp_path)
    assert "safe_optimization waited for opt_" in out and "over 2 runs" in out
