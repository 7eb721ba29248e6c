"""The DSPy examples run as users run them: a fresh interpreter, its own `dspex serve`, exit code 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dspex_dspy import MODEL_ENV

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != MODEL_ENV}  # offline, whatever the caller's shell says
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_the_main_job_compiles_searches_and_exports(tmp_path: Path) -> None:
    out = _run("dspy_main_job.py", "--trials", "4", "--iterations", "4", "--out", "results.json", cwd=tmp_path)
    assert "model: the offline toy model" in out
    assert "synced parameters: {'temperature': 'qa_temperature', 'max_tokens': 'qa_max_tokens'}" in out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("Trial ")] == [
        f"Trial {i}" for i in range(1, 5)
    ]  # progress per trial
    assert "Optimization complete! Best value: " in out
    lines = out.strip().splitlines()
    assert lines[-2].startswith("Best parameters: {'teacher_temperature': ") and lines[-1].startswith("Best score: ")
    export = json.loads((tmp_path / "results.json").read_text())  # an export_variables document
    by_name = {v["name"]: v for v in export["variables"]}
    assert set(by_name) == {"teacher_temperature", "base_temperature", "effective_temperature", "qa_temperature"}
    runs = {run["variables"][0]: run for run in export["optimization_runs"]}
    assert runs["teacher_temperature"]["variables"] == ["teacher_temperature", "max_demos"]
    compile_trials = runs["teacher_temperature"]["trials"]
    assert [t["iteration"] for t in compile_trials] == [1, 2, 3, 4]
    assert all(t["metrics"]["score_source"] == "valset" for t in compile_trials)
    best = max(runs["base_temperature"]["trials"], key=lambda t: t["score"])
    assert by_name["base_temperature"]["value"] == best["candidate"]["base_temperature"]


def test_adaptive_reasoning(tmp_path: Path) -> None:
    out = _run("adaptive_reasoning.py", cwd=tmp_path)
    assert "Strategy changed to: ChainOfThought" in out
    assert "       Predict: What is 2+2? -> 4" in out
    assert "ChainOfThought: Explain the philosophical implications" in out
    assert "Total variable updates: 5" in out  # 2 registrations, the threshold, 2 strategy writes
    assert "Cache hit rate: " in out
