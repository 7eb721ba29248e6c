"""Exporting through a real server: one snapshot at one revision, filters, dependencies, history and runs, chunks."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import torch
from interchange_support import document_of, fresh, without_volatile

from bridge import BridgeServer, Limits, SessionContext, ValidationError, connect
from bridge._proto import bridge_pb2 as pb
from bridge.interchange import encode
from bridge.interchange._wire import ExportReader


async def _workflow(session: SessionContext) -> None:
    """The spec's workflow variables, a model choice and an embedding."""
    temp_id = await session.register_variable("base_temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    style_id = await session.register_variable("style_modifier", "float", 1.0, constraints={"min": 0.5, "max": 1.5})
    await session.register_variable("effective_temperature", "float", 0.7, dependencies=[temp_id, style_id])
    await session.register_variable(
        "model_name",
        "choice",
        "gpt-4o-mini",
        constraints={"choices": ["gpt-4o-mini", "llama-3"]},
        metadata={"owner": "ml", "tags": ["prod", 1, 2.5]},
        access_rules=[
            {
                "session_pattern": "worker_*",
                "permissions": ["read"],
                "conditions": {"session_metadata.team": "ml", "session_metadata.env": "prod"},
            }
        ],
    )
    await session.register_variable("query_embedding", "embedding", np.linspace(-1, 1, 16, dtype=np.float32))


async def test_an_export_records_everything_a_variable_is(session: SessionContext) -> None:
    await _workflow(session)
    doc = document_of(await session.export_variables(), "json")
    assert (doc["format"], doc["format_version"], doc["session_id"]) == ("dspex-variables", 1, session.session_id)
    assert doc["revision"] == (await session.heartbeat())["revision"] == 5
    assert [v["name"] for v in doc["variables"]] == sorted(v["name"] for v in doc["variables"])
    by_name = {v["name"]: v for v in doc["variables"]}
    assert by_name["model_name"] == {
        "name": "model_name",
        "type": "choice",
        "value": "gpt-4o-mini",
        "constraints": {"choices": ["gpt-4o-mini", "llama-3"]},
        "metadata": {"owner": "ml", "tags": ["prod", 1, 2.5]},
        "access_rules": [
            {
                "session_pattern": "worker_*",
                "permissions": ["read"],
                "conditions": {"session_metadata.env": "prod", "session_metadata.team": "ml"},  # sorted
            }
        ],
        "dependencies": [],
        "version": 1,
    }
    assert by_name["effective_temperature"]["dependencies"] == ["base_temperature", "style_modifier"]
    embedding = by_name["query_embedding"]["value"]
    assert embedding.dtype == np.float32 and embedding.shape == (16,)
    assert "optimization_runs" not in doc and "history" not in by_name["base_temperature"]


async def test_without_dependencies_an_export_leaves_the_graph_out(session: SessionContext) -> None:
    await _workflow(session)
    doc = document_of(await session.export_variables(include_dependencies=False), "json")
    assert all("dependencies" not in v for v in doc["variables"])
    target = await SessionContext(f"{session.session_id}_b", session.channel).initialize()
    await target.import_variables(await session.export_variables(include_dependencies=False))
    assert {i["name"]: i["dependencies"] for i in await target.list_variables()}["effective_temperature"] == []


async def test_a_filter_pattern_is_a_regex_over_whole_names(session: SessionContext) -> None:
    await _workflow(session)

    async def names(pattern: str | None) -> list[str]:
        doc = document_of(await session.export_variables(filter_pattern=pattern), "json")
        return [v["name"] for v in doc["variables"]]

    assert await names(r".*model.*") == ["model_name"]
    assert await names(r".*temperature.*") == ["base_temperature", "effective_temperature"]
    assert await names("temperature") == []  # the whole name must match
    assert await names(r"(base|style)_.*") == ["base_temperature", "style_modifier"]
    assert len(await names(None)) == len(await names("")) == 5


@pytest.mark.parametrize(
    "pattern,match",
    [
        ("(", r"filter_pattern: '\(' is not a valid RE2 pattern"),
        (r"(?=model).*", "backreferences and lookaround are not supported"),
        ("a" * 300, "filter_pattern is 300 characters; the limit is 256"),
    ],
)
async def test_a_bad_filter_pattern_is_refused_clearly(session: SessionContext, pattern: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await session.export_variables(filter_pattern=pattern)


async def test_a_dependency_outside_the_filter_keeps_its_name(session: SessionContext) -> None:
    await _workflow(session)
    doc = document_of(await session.export_variables(filter_pattern=r".*temperature.*"), "json")
    assert doc["variables"][1]["dependencies"] == ["base_temperature", "style_modifier"]


async def test_history_and_optimization_runs_are_exported_when_asked(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 1.0, constraints={"min": 0.0, "max": 2.0})
    await session.start_optimization(
        "temperature",
        "random",
        max_iterations=6,
        objective=lambda t: {"accuracy": -((t - 0.3) ** 2)},
        metric="accuracy",
        seed=1,
        convergence_threshold=0,
    )
    status = await session.wait_optimization("temperature", timeout=60)
    doc = document_of(await session.export_variables(include_history=True), "json")
    [var] = doc["variables"]
    assert var["version"] == len(var["history"]) + 1 >= 7  # registration, six candidates, the best written back
    assert [h["version"] for h in var["history"]] == list(range(1, var["version"]))
    assert var["history"][1]["updated_by"] == status["optimization_id"]
    assert var["history"][1]["metadata"] == {"optimization_id": status["optimization_id"], "iteration": 1}
    [run] = doc["optimization_runs"]
    assert run["optimization_id"] == status["optimization_id"] and run["optimizer_type"] == "random"
    assert (run["variables"], run["state"], run["iteration"]) == (["temperature"], status["state"], 6)
    assert run["best_score"] == status["best_score"] and run["best_candidate"] == {"temperature": var["value"]}
    assert [t["iteration"] for t in run["trials"]] == [1, 2, 3, 4, 5, 6]
    assert all(set(t["metrics"]) == {"accuracy"} and t["state"] == "ok" for t in run["trials"])
    # Runs are for the record: an import restores the variable and its history, not the run.
    target = await SessionContext(f"{session.session_id}_b", session.channel).initialize()
    assert (await target.import_variables(await session.export_variables(include_history=True)))["imported"] == 1
    assert (await target.get_optimization_status("temperature"))["optimization_id"] is None
    again = document_of(await target.export_variables(include_history=True), "json")
    assert again["variables"] == doc["variables"] and again["optimization_runs"] == []


async def test_an_export_is_one_snapshot_while_atomic_batches_go_on(channel: grpc.aio.Channel) -> None:
    limits = Limits(max_export_chunk_bytes=256)  # many messages per export: writes land between them
    async with BridgeServer(limits=limits) as server, connect(server.address) as ch:
        session = await fresh(ch)
        names = [f"v{i:02d}" for i in range(40)]
        await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in names])
        writer = await SessionContext(session.session_id, ch, token=session.token).initialize()
        stop = asyncio.Event()

        async def write() -> int:
            i = 0
            while not stop.is_set():
                i += 1
                await writer.update_variables(dict.fromkeys(names, i))
            return i

        task = asyncio.create_task(write())
        seen = set()
        for _ in range(15):
            doc = document_of(await session.export_variables(), "json")
            values = {v["value"] for v in doc["variables"]}
            versions = {v["version"] for v in doc["variables"]}
            assert len(values) == 1 and versions == {values.pop() + 1}  # every batch whole, or not at all
            assert doc["revision"] == 1 + next(iter(versions)) - 1  # registration, then one revision per batch
            seen.add(doc["revision"])
        stop.set()
        assert await task > 0 and len(seen) > 1


async def test_chunked_and_whole_streams_give_the_same_export(session: SessionContext) -> None:
    await _workflow(session)
    for i in range(30):
        await session.set_variable("base_temperature", i / 30, metadata={"i": str(i)})
    await session.register_variable("big", "tensor", np.arange(100_000, dtype=np.float64))
    expected = await session.export_variables(include_history=True)
    async with BridgeServer(limits=Limits(max_export_chunk_bytes=512)) as server, connect(server.address) as ch:
        small = await fresh(ch)
        assert (await small.import_variables(expected))["errors"] == 0
        again = await small.export_variables(include_history=True)
    assert without_volatile(again, "json") == without_volatile(expected, "json")


async def test_a_long_run_is_split_over_several_items(session: SessionContext) -> None:
    async with BridgeServer(limits=Limits(max_export_chunk_bytes=2048)) as server, connect(server.address) as ch:
        small = await fresh(ch)
        await small.register_variable("x", "float", 1.0, constraints={"min": 0.0, "max": 2.0})
        await small.start_optimization(
            "x", "random", max_iterations=80, objective=lambda x: -x, seed=0, convergence_threshold=0
        )
        await small.wait_optimization("x", timeout=60)
        [run] = document_of(await small.export_variables(include_history=True), "json")["optimization_runs"]
    assert [t["iteration"] for t in run["trials"]] == list(range(1, 81))


@pytest.mark.parametrize("format", ["json", "yaml", "pickle", "parquet"])
async def test_an_empty_session_exports_and_imports(session: SessionContext, format: str) -> None:
    data = await session.export_variables(format=format, include_history=True)
    assert document_of(data, format)["variables"] == []
    assert await session.import_variables(data, format=format, allow_pickle=True) == {
        "imported": 0,
        "skipped": 0,
        "errors": 0,
        "details": [],
    }


def test_a_cut_or_garbled_export_stream_is_refused_by_the_client() -> None:
    header = pb.ExportHeader(session_id="s", revision=3, variable_count=2, version_count=0, run_count=1)
    variable = pb.ExportedVariable(spec=pb.VariableSpec(name="a", type="float"), version=1)
    run = pb.ExportedRun(run=pb.OptimizationStatus(exists=True, optimization_id="opt_1"))
    cut = ExportReader(include_history=True, include_dependencies=True)
    cut.add(pb.ExportVariablesResponse(header=header, variables=[variable]))
    with pytest.raises(ValueError, match=r"the export stream ended early: \(1, 0, 0\) of \(2, 0, 1\)"):
        cut.document()
    with pytest.raises(ValueError, match="did not start with its header"):
        ExportReader(False, True).add(pb.ExportVariablesResponse(variables=[variable]))
    twice = ExportReader(False, True)
    twice.add(pb.ExportVariablesResponse(header=header))
    with pytest.raises(ValueError, match="two headers"):
        twice.add(pb.ExportVariablesResponse(header=header))
    stray = ExportReader(True, True)
    stray.add(pb.ExportVariablesResponse(header=header, runs=[run]))
    with pytest.raises(ValueError, match="continued a run it had not started"):
        stray.add(pb.ExportVariablesResponse(runs=[pb.ExportedRun(run=pb.OptimizationStatus(optimization_id="opt_2"))]))
    with pytest.raises(ValueError, match="a version of no variable it sent"):
        stray.add(pb.ExportVariablesResponse(versions=[pb.ExportedVersion(name="nobody")]))


async def test_batched_and_unbatched_streams_give_the_same_export(session: SessionContext) -> None:
    """Runs of plain arrays come as ExportedArrays batches to a client that reads them, and make the same
    document as items do; a message's batches follow its variables, so the name order holds."""
    await _workflow(session)  # among them a lone embedding, with a dependent and constrained variables around
    await session.register_variables(
        [{"name": f"emb_{i:02d}", "type": "embedding", "initial_value": np.full(8, i, np.float32)} for i in range(40)]
        + [{"name": f"t_{i:02d}", "type": "tensor", "initial_value": torch.full((2, 2), float(i))} for i in range(20)]
        + [{"name": f"z_{i:02d}", "type": "tensor", "initial_value": np.zeros(0)} for i in range(16)]
        + [{"name": "emb_20x", "type": "float", "initial_value": 1.0}]  # cuts the embeddings' run in two
    )
    await session.set_variable("emb_05", np.ones(8, np.float32))  # a later version: batched all the same

    async def streamed(batches: bool) -> tuple[list[pb.ExportVariablesResponse], bytes]:
        request = pb.ExportVariablesRequest(include_history=True, include_dependencies=True, array_batches=batches)
        request.session_token = session.token or ""
        responses = [r async for r in session._stub.ExportVariables(request, timeout=10)]
        reader = ExportReader(True, True)
        for response in responses:
            reader.add(response)
        return responses, encode(reader.document(), "json")

    batched, batched_doc = await streamed(True)
    items, items_doc = await streamed(False)
    assert without_volatile(batched_doc, "json") == without_volatile(items_doc, "json")
    assert not any(r.arrays for r in items)
    assert sorted(len(b.names) for r in batched for b in r.arrays) == [16, 19, 20, 21]
    exported = document_of(await session.export_variables(format="pickle"), "pickle")
    variables = {v["name"]: v for v in exported["variables"]}
    assert isinstance(variables["t_03"]["value"], torch.Tensor)
    assert variables["z_00"]["value"].shape == (0,)


@pytest.mark.parametrize(
    "batch",
    [
        pb.ExportedArrays(type="embedding", dtype="float32", shape=[2]),
        pb.ExportedArrays(type="embedding", dtype="float32", shape=[2], names="a", versions=[1], data=b"\0" * 7),
        pb.ExportedArrays(type="embedding", dtype="float32", shape=[2], names="ab", versions=[1], data=b"\0" * 16),
    ],
    ids=["no-names", "short-data", "missing-version"],
)
def test_a_malformed_batch_in_an_export_stream_is_refused(batch: pb.ExportedArrays) -> None:
    reader = ExportReader(False, True)
    reader.add(pb.ExportVariablesResponse(header=pb.ExportHeader(session_id="s", variable_count=2)))
    with pytest.raises(ValidationError, match="the export stream sent an array batch of"):
        reader.add(pb.ExportVariablesResponse(arrays=[batch]))


async def test_a_batch_of_empty_arrays_with_huge_dimensions_exports(session: SessionContext) -> None:
    """Empty arrays whose other dimensions numpy could not multiply by one more (a batch's rows) come back
    one by one, as items would."""
    huge = (0, 2**62)
    await session.register_variables(
        [{"name": f"e{i:02d}", "type": "tensor", "initial_value": np.empty(huge, np.int8)} for i in range(16)]
    )
    exported = document_of(await session.export_variables(format="pickle"), "pickle")
    assert [(v["value"].shape, v["value"].dtype) for v in exported["variables"]] == [(huge, np.int8)] * 16
