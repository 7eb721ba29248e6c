"""Every benchmark still runs end to end (`--quick`); figures are judged in BENCHMARKS.md, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_quick(tmp_path: Path, *flags: str, module: str = "benchmarks") -> dict[str, Any]:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    report["stdout"] = run.stdout
    return report


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


def test_quick_watch_benchmark_writes_every_figure(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, module="benchmarks.watch")
    names = {row["name"] for row in report["rows"]}
    assert {"raw echo 32 B", "set -> watcher has the update", "watch fan-out to 100 watchers (per delivery)"} <= names
    assert report["throughput"]["per_second"] > 0 and report["throughput"]["baseline_per_second"] > 0
    assert report["memory"]["watchers"] > 0


def test_quick_optimization_benchmark_compares_with_bare_optuna(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, module="benchmarks.optimization")
    assert report["timing"]["same_candidate_sequence"] is True
    assert report["timing"]["bare_optuna_ms_per_iteration"] > 0 and report["memory"]["bytes_per_history_entry"] > 0


def test_quick_dspy_benchmark_writes_its_figures(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, module="benchmarks.dspy")
    assert report["compile"]["same_demos"] and report["compile"]["bare_ms"] > 0
    assert report["compile"]["runs_recorded"] == 2 + 2  # two warm-up compiles and two timed ones, each a run
    assert 0 < report["hot_path"]["synced_config_read_us"] < report["hot_path"]["session_read_rpc_us"]
    assert "the bridge's own work per compile" in report["stdout"]


def test_quick_cache_benchmark_writes_its_figures(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, module="benchmarks.cache")
    hits = report["hit_path"]
    assert 0 < hits["floor_us"] < hits["hit_us"] < hits["uncached_us"]
    on, off = report["read_mostly"]
    assert on["hit_rate"] > 0 and off["hit_rate"] == 0 and off["stale_reads"] == 0
    assert on["reads"] == off["reads"] > 0


def test_quick_interchange_benchmark_writes_its_figures(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, module="benchmarks.interchange")
    names = {row["name"] for row in report["rows"]}
    assert "export + import parquet, 100 x 768-d float32" in names
    assert any(name.startswith("raw pyarrow write+read (name + fixed-size-list, defaults)") for name in names)
    rates = report["throughput"]
    assert all(rates[f"{step} {fmt} variables/s"] > 0 for step in ("export", "import") for fmt in ("json", "parquet"))
    assert report["embeddings"]["file_bytes"] > 100 * 768 * 3  # zstd gains little on random floats
    assert "import parquet with history: " in report["stdout"]


def test_quick_stores_benchmark_prices_each_store(tmp_path: Path) -> None:
    report = _run_quick(tmp_path, module="benchmarks.stores")
    rows = {row["name"]: row for row in report["rows"]}
    for call in ("set_variable (float)", "get_variable (float, uncached)", "update_variables (10 floats, atomic)"):
        for store in ("memory", "sqlite full", "sqlite normal"):
            assert rows[f"{call}: {store}"]["median_us"] > 0
    assert rows["set_variable (float): sqlite full / memory"]["target"] == "<= 2x"
    assert "raw echo 32 B" in rows
