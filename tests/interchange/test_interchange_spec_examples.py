"""The spec's "Variable Export/Import" examples, and the exports that end its "Complete Optimization Workflow"
and its "Migration Guide", run as written against a real server."""

from __future__ import annotations

import textwrap
from pathlib import Path

import grpc
import pytest
from interchange_support import document_of, fresh, same
from spec_examples import run_code, run_example, usage_example

from bridge import SessionContext


def _tail(code: str, start: str) -> str:
    """The example from the line that starts with `start` (a comment) to its end, dedented."""
    lines = code.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith(start))
    return textwrap.dedent("\n".join(lines[first:])) + "\n"


async def _optimized(session: SessionContext) -> None:
    """The workflow's variables after its optimization (a short one, with an objective of known optimum)."""
    temp_id = await session.register_variable("base_temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    style_id = await session.register_variable("style_modifier", "float", 1.0, constraints={"min": 0.5, "max": 1.5})
    await session.register_variable("effective_temperature", "float", 0.7, dependencies=[temp_id, style_id])
    await session.register_variable("model_name", "choice", "small", constraints={"choices": ["small", "large"]})
    await session.start_optimization(
        "base_temperature",
        "random",
        max_iterations=8,
        objective=lambda t: {"accuracy": 1 - abs(t - 0.55)},
        metric="accuracy",
        seed=0,
        convergence_threshold=0,
    )
    await session.wait_optimization("base_temperature", timeout=60)


async def test_export_variables_examples(
    session: SessionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _optimized(session)
    monkeypatch.chdir(tmp_path)

    out = await run_example("export_variables", session=session)

    backup = (tmp_path / "variables_backup.json").read_bytes()
    assert backup == out["export_data"]
    doc = document_of(backup, "json")
    assert [v["name"] for v in doc["variables"]] == [
        "base_temperature",
        "effective_temperature",
        "model_name",
        "style_modifier",
    ]
    assert len(doc["variables"][0]["history"]) == 9  # registration and eight candidates; the best is current
    assert len(doc["optimization_runs"][0]["trials"]) == 8
    model = document_of(out["model_vars"], "json")
    assert [v["name"] for v in model["variables"]] == ["model_name"] and "history" not in model["variables"][0]


async def test_import_variables_example(
    session: SessionContext, channel: grpc.aio.Channel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _optimized(session)
    monkeypatch.chdir(tmp_path)
    await run_example("export_variables", session=session)  # writes variables_backup.json
    target = await fresh(channel)

    out = await run_example("import_variables", session=target)

    assert out["summary"]["errors"] == 0 and out["summary"]["imported"] == 4
    assert {d["outcome"] for d in out["summary"]["details"]} == {"created"}
    names = ["base_temperature", "effective_temperature", "model_name", "style_modifier"]
    assert same(await target.get_variables(names), await session.get_variables(names))
    # run again, the dry run now reports what replace would do to the existing variables
    again = await run_example("import_variables", session=target)
    assert {d["outcome"] for d in again["summary"]["details"]} == {"replaced"}


async def test_the_workflows_export_of_its_results(
    session: SessionContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _optimized(session)
    monkeypatch.chdir(tmp_path)
    code = _tail(usage_example("Complete Optimization Workflow"), "# Export results")

    await run_code(code, "<spec: Complete Optimization Workflow, export>", session=session)

    doc = document_of((tmp_path / "optimization_results.json").read_bytes(), "json")
    by_name = {v["name"]: v for v in doc["variables"]}
    assert set(by_name) == {"base_temperature", "effective_temperature"}  # filter_pattern=r'.*temperature.*'
    assert by_name["effective_temperature"]["dependencies"] == ["base_temperature", "style_modifier"]
    [run] = doc["optimization_runs"]
    best = max(run["trials"], key=lambda t: t["score"])
    assert (
        by_name["base_temperature"]["value"]
        == best["candidate"]["base_temperature"]
        == run["best_candidate"]["base_temperature"]
    )


async def test_the_migration_guides_export_of_its_configuration(session: SessionContext) -> None:
    await _optimized(session)
    code = _tail(usage_example("From Basic to Advanced Variables"), "# Export configuration")

    out = await run_code(code, "<spec: Migration Guide, export>", session=session)

    assert out["config"].startswith(b"format: dspex-variables\nformat_version: 1\n")
    doc = document_of(out["config"], "yaml")
    assert len(doc["variables"]) == 4 and all("history" in v for v in doc["variables"])
