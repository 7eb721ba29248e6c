"""Importing through a real server: merge strategies, dry runs, atomic or not, dependencies, history, bad files."""

from __future__ import annotations

import json
from typing import Any

import grpc
import numpy as np
import pytest
import torch
from interchange_support import FORMATS, document_of, fresh, same

from bridge import SessionContext, VariableTypeError
from bridge._proto import bridge_pb2 as pb
from bridge.interchange import encode
from bridge.interchange._wire import MIN_ARRAY_RUN, import_requests


async def _revision(session: SessionContext) -> int:
    return (await session.heartbeat())["revision"]


async def _state(session: SessionContext) -> tuple[int, list[tuple[str, Any, int]]]:
    """What an import must leave alone when it fails: the revision, and every variable's value and version."""
    infos = await session.list_variables(include_values=True)
    return await _revision(session), [(i["name"], repr(i["value"]), i["version"]) for i in infos]


def _doc(*variables: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": "dspex-variables",
        "format_version": 1,
        "session_id": "elsewhere",
        "revision": 9,
        "exported_at": "2026-12-01T00:00:00+00:00",
        "variables": [{"constraints": {}, "metadata": {}, "access_rules": [], **v} for v in variables],
    }


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _outcomes(summary: dict[str, Any]) -> dict[str, str]:
    return {d["name"]: d["outcome"] for d in summary["details"]}


@pytest.fixture
async def target(channel: grpc.aio.Channel) -> SessionContext:
    """A session that already holds variables an import meets."""
    session = await fresh(channel)
    await session.register_variable("temperature", "float", 0.5, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("config", "dict", {"a": 1, "b": 2})
    await session.register_variable("label", "string", "old")
    return session


INCOMING = _doc(
    {"name": "config", "type": "dict", "value": {"b": 20, "c": 30}},
    {"name": "label", "type": "string", "value": "new"},
    {"name": "max_tokens", "type": "integer", "value": 256, "constraints": {"min": 1, "max": 4096}},
    {"name": "temperature", "type": "float", "value": 0.9, "constraints": {"min": 0.0, "max": 2.0}},
)


async def test_replace_writes_each_existing_variable_a_new_version(target: SessionContext) -> None:
    summary = await target.import_variables(encode(INCOMING, "json"))
    assert (summary["imported"], summary["skipped"], summary["errors"]) == (4, 0, 0)
    assert _outcomes(summary) == {
        "config": "replaced",
        "label": "replaced",
        "max_tokens": "created",
        "temperature": "replaced",
    }
    values = await target.get_variables(["config", "label", "max_tokens", "temperature"])
    assert values == {"config": {"b": 20, "c": 30}, "label": "new", "max_tokens": 256, "temperature": 0.9}
    info = {i["name"]: i for i in await target.list_variables()}
    assert info["temperature"]["version"] == 2 and info["max_tokens"]["version"] == 1
    assert info["temperature"]["last_update_metadata"] == {"source": "import", "merge_strategy": "replace"}
    assert [d["reason"] for d in summary["details"]][-1] == "replaced the existing variable: version 2"


async def test_keep_skips_existing_variables_and_creates_the_rest(target: SessionContext) -> None:
    summary = await target.import_variables(encode(INCOMING, "json"), merge_strategy="keep")
    assert (summary["imported"], summary["skipped"], summary["errors"]) == (1, 3, 0)
    assert _outcomes(summary)["max_tokens"] == "created" and _outcomes(summary)["label"] == "skipped"
    assert await target.get_variables(["config", "label", "temperature"]) == {
        "config": {"a": 1, "b": 2},
        "label": "old",
        "temperature": 0.5,
    }


async def test_merge_updates_dicts_key_wise_and_replaces_other_types(target: SessionContext) -> None:
    summary = await target.import_variables(encode(INCOMING, "json"), merge_strategy="merge")
    assert _outcomes(summary) == {
        "config": "merged",
        "label": "replaced",
        "max_tokens": "created",
        "temperature": "replaced",
    }
    assert await target.get_variable("config") == {"a": 1, "b": 20, "c": 30}
    assert await target.get_variable("label") == "new"


async def test_merge_fails_a_variable_whose_constraints_differ(target: SessionContext) -> None:
    doc = _doc({"name": "temperature", "type": "float", "value": 0.9, "constraints": {"min": 0.0, "max": 1.0}})
    summary = await target.import_variables(encode(doc, "json"), merge_strategy="merge")
    [detail] = summary["details"]
    assert detail["outcome"] == "failed" and summary["errors"] == 1
    assert "constraints differ (the session's {'min': 0.0, 'max': 2.0}, the import's" in detail["reason"]
    # replace writes the value under the session's own constraints
    assert (await target.import_variables(encode(doc, "json")))["imported"] == 1


async def test_a_type_other_than_the_existing_one_fails(target: SessionContext) -> None:
    doc = _doc({"name": "label", "type": "integer", "value": 3})
    for strategy in ("replace", "merge"):
        summary = await target.import_variables(encode(doc, "json"), merge_strategy=strategy)
        assert summary["details"][0]["reason"] == "label: the session's variable is a string, the import's a integer"


async def test_replace_validates_the_value_as_a_write(target: SessionContext) -> None:
    doc = _doc({"name": "temperature", "type": "float", "value": 0.9, "constraints": {"min": 0.0, "max": 5.0}})
    doc["variables"][0]["value"] = 3.0  # valid for the file's constraints, not for the session's variable
    summary = await target.import_variables(encode(doc, "json"))
    assert summary["errors"] == 1 and "temperature" in summary["details"][0]["reason"]
    assert "2.0" in summary["details"][0]["reason"]


BAD_ONE = _doc(
    {"name": "a_ok", "type": "float", "value": 1.0},
    {"name": "b_bad", "type": "float", "value": 5.0, "constraints": {"max": 1.0}},
    {"name": "label", "type": "string", "value": "new"},
)


async def test_an_atomic_import_with_one_bad_entry_applies_nothing(target: SessionContext) -> None:
    before = await _state(target)
    summary = await target.import_variables(encode(BAD_ONE, "json"))
    assert (summary["imported"], summary["skipped"], summary["errors"]) == (0, 0, 1)
    assert _outcomes(summary) == {"a_ok": "not_applied", "b_bad": "failed", "label": "not_applied"}
    assert summary["details"][0]["reason"] == (
        "not applied: the atomic import was rolled back because 1 variable(s) failed"
    )
    assert "b_bad" in summary["details"][1]["reason"] and "1.0" in summary["details"][1]["reason"]
    assert await _state(target) == before


async def test_a_non_atomic_import_applies_the_valid_entries_in_one_revision(target: SessionContext) -> None:
    revision = await _revision(target)
    summary = await target.import_variables(encode(BAD_ONE, "json"), atomic=False)
    assert (summary["imported"], summary["errors"]) == (2, 1)
    assert _outcomes(summary) == {"a_ok": "created", "b_bad": "failed", "label": "replaced"}
    assert await target.get_variables(["a_ok", "label"]) == {"a_ok": 1.0, "label": "new"}
    assert await _revision(target) == revision + 1


@pytest.mark.parametrize("strategy", ["replace", "keep", "merge"])
@pytest.mark.parametrize("atomic", [True, False])
async def test_a_dry_run_answers_what_the_import_does_and_changes_nothing(
    channel: grpc.aio.Channel, strategy: str, atomic: bool
) -> None:
    sessions = []
    for _ in range(2):  # two identical sessions: one dry run, one real run
        session = await fresh(channel)
        await session.register_variable("config", "dict", {"a": 1})
        await session.register_variable("label", "string", "old")
        sessions.append(session)
    dry, real = sessions
    doc = _doc(*BAD_ONE["variables"], {"name": "config", "type": "dict", "value": {"b": 2}})
    before = await _state(dry)
    predicted = await dry.import_variables(encode(doc, "json"), merge_strategy=strategy, dry_run=True, atomic=atomic)
    assert await _state(dry) == before
    done = await real.import_variables(encode(doc, "json"), merge_strategy=strategy, atomic=atomic)
    assert predicted == done
    assert predicted["errors"] == 1


async def test_created_variables_keep_their_version_and_history(channel: grpc.aio.Channel) -> None:
    source = await fresh(channel)
    await source.register_variable("x", "float", 0.1, metadata={"unit": "none"})
    for value in (0.2, 0.3, 0.4):
        await source.set_variable("x", value, metadata={"by": "tuner"})
    data = await source.export_variables(include_history=True)
    target = await fresh(channel)
    summary = await target.import_variables(data)
    assert summary["details"] == [
        {"name": "x", "outcome": "created", "reason": "created at version 4 with 3 earlier version(s)", "version": 4}
    ]
    [info] = await target.list_variables()
    assert (info["version"], info["metadata"]) == (4, {"unit": "none"})
    history = document_of(await target.export_variables(include_history=True), "json")["variables"][0]["history"]
    assert [(h["version"], h["value"], h["updated_by"], h["metadata"]) for h in history] == [
        (1, 0.1, source.session_id, {}),
        (2, 0.2, source.session_id, {"by": "tuner"}),
        (3, 0.3, source.session_id, {"by": "tuner"}),
    ]
    # the import itself is the current version's write, by the importing session
    assert info["updated_by"] == target.session_id
    kept = await target.get_variable_history("x")
    assert [(h["version"], h["value"]) for h in kept] == [(4, 0.4), (3, 0.3), (2, 0.2), (1, 0.1)]
    await target.rollback_variable("x", 2)  # a restored version is a version like any other
    assert await target.get_variable("x") == 0.2


async def test_dependencies_are_resolved_by_name_in_any_order(channel: grpc.aio.Channel) -> None:
    doc = _doc(
        {"name": "a_effective", "type": "float", "value": 0.7, "dependencies": ["z_base", "m_style"]},
        {"name": "m_style", "type": "float", "value": 1.0, "dependencies": ["z_base"]},
        {"name": "z_base", "type": "float", "value": 0.7},
    )
    target = await fresh(channel)
    summary = await target.import_variables(encode(doc, "json"))
    assert summary["errors"] == 0
    info = {i["name"]: i for i in await target.list_variables()}
    assert info["a_effective"]["dependencies"] == [info["z_base"]["id"], info["m_style"]["id"]]
    assert [d["name"] for d in summary["details"]] == ["a_effective", "m_style", "z_base"]  # the file's order


async def test_a_missing_dependency_or_a_cycle_fails_its_variables(channel: grpc.aio.Channel) -> None:
    doc = _doc(
        {"name": "effective_temperature", "type": "float", "value": 0.7, "dependencies": ["style_modifier"]},
        {"name": "p", "type": "float", "value": 1.0, "dependencies": ["q"]},
        {"name": "q", "type": "float", "value": 1.0, "dependencies": ["p"]},
        {"name": "r", "type": "float", "value": 1.0, "dependencies": ["effective_temperature"]},
    )
    summary = await (await fresh(channel)).import_variables(encode(doc, "json"), atomic=False)
    reasons = {d["name"]: d["reason"] for d in summary["details"]}
    assert reasons["effective_temperature"] == (
        "effective_temperature: dependency 'style_modifier' is neither in this session nor in the import"
    )
    assert reasons["p"] == "p: its dependencies form a cycle among ['p', 'q']"
    assert reasons["r"] == "r: dependency 'effective_temperature' failed to import"
    assert summary["errors"] == 4


async def test_an_existing_dependency_resolves(target: SessionContext) -> None:
    doc = _doc({"name": "scaled", "type": "float", "value": 1.0, "dependencies": ["temperature"]})
    summary = await target.import_variables(encode(doc, "json"))
    assert summary["errors"] == 0


async def test_each_entry_is_validated_as_a_registration(channel: grpc.aio.Channel) -> None:
    doc = _doc(
        {"name": "1bad name", "type": "float", "value": 1.0},
        {"name": "unknown", "type": "quaternion", "value": 1.0},
        {"name": "choice", "type": "choice", "value": "c", "constraints": {"choices": ["a", "b"]}},
        {
            "name": "ruled",
            "type": "float",
            "value": 1,
            "access_rules": [{"session_pattern": "*", "permissions": ["z"]}],
        },
        {"name": "strange", "type": "float", "value": 1.0, "constraints": {"colour": "red"}},
    )
    summary = await (await fresh(channel)).import_variables(encode(doc, "json"), atomic=False)
    reasons = [d["reason"] for d in summary["details"]]
    assert summary["errors"] == 5
    assert "is invalid: use letters" in reasons[0]
    assert "quaternion" in reasons[1]
    assert "choices" in reasons[2]
    assert "unknown permission" in reasons[3]
    assert "colour" in reasons[4]


async def test_a_batch_of_embeddings_is_validated_each_as_a_registration(channel: grpc.aio.Channel) -> None:
    vectors = [np.arange(i, i + 8, dtype=np.float32) for i in range(6)]
    doc = _doc(*({"name": f"e{i}", "type": "embedding", "value": v} for i, v in enumerate(vectors)))
    doc["variables"][3]["name"] = "3 bad"
    doc["variables"].append({"name": "e6", "type": "embedding", "value": np.arange(8)})  # ints: float64
    session = await fresh(channel)
    summary = await session.import_variables(encode(doc, "parquet"), format="parquet", atomic=False)
    assert [d["outcome"] for d in summary["details"]] == ["created"] * 3 + ["failed"] + ["created"] * 3
    assert "is invalid: use letters" in summary["details"][3]["reason"]
    for i in (0, 1, 2, 4, 5):
        assert same(await session.get_variable(f"e{i}"), vectors[i])
    assert same(await session.get_variable("e6"), np.arange(8.0))


async def test_pickle_is_refused_without_opt_in_and_nothing_is_sent(target: SessionContext) -> None:
    data = encode(INCOMING, "pickle")
    before = await _state(target)
    with pytest.raises(ValueError, match="refusing to load pickle data: unpickling can run arbitrary code"):
        await target.import_variables(data, format="pickle")
    assert await _state(target) == before
    assert (await target.import_variables(data, format="pickle", allow_pickle=True))["imported"] == 4


@pytest.mark.parametrize("format", FORMATS)
async def test_truncated_and_corrupt_files_are_refused_and_change_nothing(target: SessionContext, format: str) -> None:
    data = await target.export_variables(format=format, include_history=True)
    before = await _state(target)
    for broken in (data[: len(data) // 2], data[:-3], b"\x00" + data[1:]):
        with pytest.raises(ValueError, match=r"truncated|corrupt|not a dspex|not an export|not valid|not a readable"):
            await target.import_variables(broken, format=format, allow_pickle=True)
    assert await _state(target) == before


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda d: d.update(format_version=2), "format_version 2, newer than the 1 this dspex-dspy reads; upgrade"),
        (lambda d: d.update(format="other"), "not a dspex export"),
        (lambda d: d["variables"].append(dict(d["variables"][0])), "appears twice in the export"),
        (lambda d: d["variables"][0].update(version=0), "version must be a positive int"),
        (lambda d: d["variables"][0].update(version=2**63), "version must be a positive int64"),
        (lambda d: d["variables"][0].update(history=[{"version": 1}]), r"history\[0\] needs exactly the keys"),
        (lambda d: d["variables"][0].update(value=2**70), "outside the int64 range"),
        (lambda d: d["variables"][0].update(value=_nested(60)), "nests deeper than"),
        (
            lambda d: d["variables"][0].update(value={"$array": {"dtype": "float64", "shape": [10**11], "data": ""}}),
            "needs 800000000000 bytes, has 0",
        ),
    ],
    ids=[
        "newer-version",
        "not-an-export",
        "duplicate",
        "bad-version",
        "version-beyond-int64",
        "bad-history",
        "int-beyond-int64",
        "deep-nesting",
        "huge-declared-array",
    ],
)
async def test_a_file_that_is_not_a_valid_export_is_refused_naming_the_problem(
    target: SessionContext, mutate: Any, match: str
) -> None:
    doc = json.loads(encode(_doc({"name": "n", "type": "integer", "value": 1}), "json"))
    mutate(doc)
    before = await _state(target)
    with pytest.raises(ValueError, match=match):
        await target.import_variables(json.dumps(doc).encode())
    assert await _state(target) == before


async def test_bad_options_are_refused_before_anything_is_read(target: SessionContext) -> None:
    with pytest.raises(ValueError, match="merge_strategy must be one of replace, keep, merge; got 'overwrite'"):
        await target.import_variables(b"", merge_strategy="overwrite")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        await target.import_variables(b"", format="xml")
    with pytest.raises(ValueError, match="import data must be bytes"):
        await target.import_variables("{}")  # type: ignore[arg-type]


async def test_this_clients_next_read_sees_what_it_imported(target: SessionContext) -> None:
    assert await target.get_variable("label") == "old"
    assert target.cache.version("label") == 1  # cached
    await target.import_variables(encode(INCOMING, "json"), dry_run=True)
    assert target.cache.version("label") == 1  # a dry run writes nothing
    await target.import_variables(encode(INCOMING, "json"))
    assert target.cache.version("label") is None  # dropped when the reply came, not when the server's push does
    assert await target.get_variable("label") == "new"


@pytest.mark.parametrize("format", FORMATS)
async def test_typed_dependencies_travel_with_their_type_and_metadata(channel: grpc.aio.Channel, format: str) -> None:
    source = await fresh(channel)
    for name in ("a_base", "b_style", "c_effective"):
        await source.register_variable(name, "float", 1.0)
    await source.add_dependency("c_effective", "a_base")  # plain data
    await source.add_dependency("c_effective", "b_style", dependency_type="constraint", metadata={"why": "bounds"})
    data = await source.export_variables(format=format)
    [*_, effective] = document_of(data, format)["variables"]
    assert effective["dependencies"] == [
        "a_base",
        {"name": "b_style", "type": "constraint", "metadata": {"why": "bounds"}},
    ]
    target = await fresh(channel)
    assert (await target.import_variables(data, format=format, allow_pickle=True))["errors"] == 0
    edges = {d["name"]: (d["type"], d["metadata"]) for d in await target.get_dependencies("c_effective")}
    assert edges == {"a_base": ("data", {}), "b_style": ("constraint", {"why": "bounds"})}
    assert document_of(await target.export_variables(format=format), format)["variables"][2] == effective


async def test_a_bad_dependency_type_fails_its_variable(channel: grpc.aio.Channel) -> None:
    doc = _doc(
        {"name": "a", "type": "float", "value": 1.0},
        {"name": "b", "type": "float", "value": 1.0, "dependencies": [{"name": "a", "type": "causal"}]},
        {"name": "c", "type": "float", "value": 1.0, "dependencies": ["a", {"name": "a", "type": "constraint"}]},
    )
    summary = await (await fresh(channel)).import_variables(encode(doc, "json"), atomic=False)
    reasons = {d["name"]: d["reason"] for d in summary["details"]}
    assert "dependency_type must be one of ['data', 'constraint', 'optimization'], got 'causal'" in reasons["b"]
    assert summary["details"][2]["outcome"] == "created"  # a name listed twice is one edge, the typed one
    with pytest.raises(ValueError, match=r"each dependency is a name, or \{'name', 'type', 'metadata'\}"):
        await (await fresh(channel)).import_variables(
            encode(_doc({"name": "x", "type": "float", "value": 1.0, "dependencies": [{"name": 3}]}), "json")
        )


async def test_a_frozen_variable_stays_frozen_for_its_new_owner(new_session) -> None:
    alice = await new_session("alice")
    await alice.register_variable("cfg", "float", 0.5)
    await alice.set_variable_permissions("cfg", [{"session_pattern": "alice", "permissions": ["read"]}])
    data = await alice.export_variables()
    bob = await new_session("bob")
    await bob.import_variables(data)
    [info] = await bob.list_variables("cfg")
    assert [r["session_pattern"] for r in info["access_rules"]] == ["bob"]  # it restricts bob, not grants alice
    with pytest.raises(PermissionError):
        await bob.set_variable("cfg", 0.9)
    with pytest.raises(KeyError):
        await alice.get_variable(info["id"])


async def test_an_export_with_history_keeps_evaluation_entries(session) -> None:
    import asyncio

    from bridge.interchange import decode
    from bridge.optimization import record_evaluation

    await session.register_variable("x", "float", 0.5, constraints={"min": 0.0, "max": 1.0})

    def objective(x: float) -> float:
        record_evaluation(x / 2, {"description": "inner"})
        return x

    await session.start_optimization("x", "random", max_iterations=2, objective=objective, seed=0)
    await asyncio.wait_for(session.wait_optimization("x"), 30)
    document = decode(await session.export_variables(include_history=True), "json")
    [run] = [r for v in document["variables"] for r in v.get("optimization_runs", ())] or document.get(
        "optimization_runs", []
    )
    assert [(t["iteration"], t.get("kind", "trial")) for t in run["trials"]] == [
        (1, "evaluation"),
        (1, "trial"),
        (2, "evaluation"),
        (2, "trial"),
    ]


def _mixed_arrays() -> dict[str, Any]:
    """Runs of plain arrays long enough to travel as ExportedArrays batches, among variables that do not."""
    vectors = [np.arange(i, i + 8, dtype=np.float32) for i in range(60)]
    old = {"updated_at": "2026-11-30T00:00:00+00:00", "updated_by": "someone", "metadata": {}}
    variables: list[dict[str, Any]] = [
        {"name": f"a{i:02d}", "type": "embedding", "value": vectors[i]} for i in range(20)
    ]
    variables[5] |= {"version": 3, "history": [{**old, "version": v, "value": vectors[v]} for v in (1, 2)]}
    variables.append({"name": "between", "type": "float", "value": 0.5})
    variables += [{"name": f"b{i}", "type": "embedding", "value": vectors[20 + i]} for i in range(3)]  # a short run
    variables += [{"name": f"t{i:02d}", "type": "tensor", "value": torch.full((2, 3), float(i))} for i in range(18)]
    variables += [{"name": f"c{i:02d}", "type": "embedding", "value": vectors[30 + i]} for i in range(17)]
    variables[-9]["name"] = "9 bad"
    return _doc(*variables)


async def test_runs_of_plain_arrays_travel_batched_and_import_as_each_one_would(channel: grpc.aio.Channel) -> None:
    doc = _mixed_arrays()
    _, messages = import_requests(doc, "replace", True, False)
    sent = [pb.ImportVariablesRequest.FromString(m) for m in messages]
    order = [n for m in sent for n in [*(v.spec.name for v in m.variables), *(n for b in m.arrays for n in b.names)]]
    assert order == [v["name"] for v in doc["variables"]]  # a message's batches follow its variables
    batched = [len(b.names) for m in sent for b in m.arrays]
    assert sum(batched) == 20 + 18 + 17 and min(batched) >= 1 and MIN_ARRAY_RUN > 3

    session = await fresh(channel)
    summary = await session.import_variables(encode(doc, "parquet"), format="parquet", atomic=False)
    assert [d["name"] for d in summary["details"]] == [v["name"] for v in doc["variables"]]
    failed = [d for d in summary["details"] if d["outcome"] != "created"]
    assert [(d["name"], d["outcome"]) for d in failed] == [("9 bad", "failed")]
    assert "is invalid: use letters" in failed[0]["reason"]
    for var in doc["variables"]:
        if var["name"] != "9 bad":
            assert same(await session.get_variable(var["name"]), var["value"]), var["name"]
    kept = await session.get_variable_history("a05")
    assert [(h["version"], h["value"].tolist()) for h in kept] == [
        (3, list(range(5, 13))),
        (2, list(range(2, 10))),
        (1, list(range(1, 9))),
    ]

    again = _mixed_arrays()
    for var in again["variables"]:
        if var["type"] == "embedding":
            var["value"] = var["value"] * 2
    replaced = await session.import_variables(encode(again, "parquet"), format="parquet", atomic=False)
    assert {d["outcome"] for d in replaced["details"] if d["name"].startswith(("a", "c"))} == {"replaced"}
    assert same(await session.get_variable("a05"), doc["variables"][5]["value"] * 2)
    assert (await session.get_variable_history("a05"))[0]["version"] == 4


async def test_a_host_that_reads_no_batches_gets_items(channel: grpc.aio.Channel) -> None:
    """The client asks the host once (Ping) whether it reads ExportedArrays; to one that does not (an older
    host), the same import goes as items only."""
    doc = _mixed_arrays()
    _, messages = import_requests(doc, "replace", True, False, array_batches=False)
    assert not any(pb.ImportVariablesRequest.FromString(m).arrays for m in messages)
    session = await fresh(channel)
    assert session._host_batches is None
    await session.import_variables(encode(doc, "parquet"), format="parquet", atomic=False)
    assert session._host_batches is True
    older = await fresh(channel)
    older._host_batches = False
    summary = await older.import_variables(encode(doc, "parquet"), format="parquet", atomic=False)
    assert [d["outcome"] for d in summary["details"]].count("created") == len(doc["variables"]) - 1


def test_an_array_the_wire_cannot_carry_is_named_in_a_batched_run_too() -> None:
    doc = _doc(
        *({"name": f"v{i:02d}", "type": "tensor", "value": torch.zeros(2, dtype=torch.bfloat16)} for i in range(20))
    )
    _, messages = import_requests(doc, "replace", True, False)
    with pytest.raises(VariableTypeError, match="v00: cannot send this torch tensor") as refused:
        list(messages)
    assert refused.value.details["variable"] == "v00"
