"""Import streams crafted on the wire: each is applied or refused with a bridge error (never INTERNAL), a
refused one changes nothing, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from helpers import bearer
from hypothesis import given, settings
from hypothesis import strategies as st
from interchange_support import core_tests

from bridge import BridgeError, BridgeServer, LimitExceededError, Limits, SessionContext, ValidationError, connect
from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.client._rpc import call
from bridge.codec import encode

_hostile = core_tests("test_hostile_input")


def item(name: str, value: object = 1.0, type_: str = "float", version: int = 0) -> pb.ExportedVariable:
    spec = pb.VariableSpec(name=name, type=type_, initial_value=encode(value))
    return pb.ExportedVariable(spec=spec, version=version)


def arrays(*names: str, versions: list[int] | None = None, data: bytes | None = None) -> pb.ExportedArrays:
    """An ExportedArrays batch of 2-d float32 embeddings (zeros unless `data` is given)."""
    return pb.ExportedArrays(
        type="embedding",
        dtype="float32",
        shape=[2],
        names=names,
        versions=[1] * len(names) if versions is None else versions,
        data=b"\0" * 8 * len(names) if data is None else data,
    )


def first(variables: int, versions: int = 0, **options: object) -> pb.ImportVariablesRequest:
    return pb.ImportVariablesRequest(
        options=pb.ImportOptions(
            merge_strategy=str(options.get("merge_strategy", "replace")),
            atomic=bool(options.get("atomic", True)),
            variable_count=variables,
            version_count=versions,
        )
    )


async def send(session: SessionContext, requests: Iterable[pb.ImportVariablesRequest]) -> pb.ImportVariablesResponse:
    stub = pb_grpc.BridgeServiceStub(session.channel)
    return await call(stub.ImportVariables, iter(list(requests)), bearer(session), 10.0, "import")


@pytest.fixture
async def target(session: SessionContext) -> SessionContext:
    await session.register_variable("anchor", "float", 0.5)
    return session


async def unchanged(session: SessionContext) -> None:
    """Still serving, with only the anchor, untouched."""
    [info] = await session.list_variables(include_values=True)
    assert (info["name"], info["value"], info["version"]) == ("anchor", 0.5, 1)
    assert (await session.heartbeat())["revision"] == 1


@pytest.mark.parametrize(
    "requests,match",
    [
        ([], "needs at least its first message"),
        ([first(2), pb.ImportVariablesRequest(variables=[item("a")])], "incomplete import: it announced 2 variables"),
        ([first(1), pb.ImportVariablesRequest(options=pb.ImportOptions(), variables=[item("a")])], "only the first"),
        ([first(2), pb.ImportVariablesRequest(variables=[item("a"), item("a")])], "'a' appears twice in the import"),
        (
            [first(1, 1), pb.ImportVariablesRequest(variables=[item("a")], versions=[pb.ExportedVersion(name="b")])],
            "a version of 'b' before or without that variable",
        ),
        ([first(0, merge_strategy="clobber")], "merge_strategy must be one of replace, keep, merge; got 'clobber'"),
        ([first(0), pb.ImportVariablesRequest(arrays=[arrays()])], "got 0 names, 0 versions and 0 bytes"),
        ([first(2), pb.ImportVariablesRequest(arrays=[arrays("a", "b", versions=[1])])], "got 2 names, 1 versions"),
        ([first(2), pb.ImportVariablesRequest(arrays=[arrays("a", "b", data=b"\0" * 17)])], "and 17 bytes"),
        ([first(2), pb.ImportVariablesRequest(variables=[item("a")], arrays=[arrays("a")])], "'a' appears twice"),
        ([first(1), pb.ImportVariablesRequest(arrays=[arrays("a", "b")])], "more variables than the 1 it announced"),
    ],
    ids=[
        *("empty", "cut-short", "options-twice", "duplicate", "stray-versions", "bad-strategy"),
        *("batch-empty", "batch-versions", "batch-bytes", "batch-duplicate", "batch-count"),
    ],
)
async def test_malformed_streams_are_refused_and_change_nothing(
    target: SessionContext, requests: list[pb.ImportVariablesRequest], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        await send(target, requests)
    await unchanged(target)


async def test_a_stream_needs_the_sessions_token(target: SessionContext) -> None:
    stub = pb_grpc.BridgeServiceStub(target.channel)
    with pytest.raises(PermissionError):
        await call(stub.ImportVariables, iter([first(0)]), (), 10.0, "import")
    await unchanged(target)


async def test_undecodable_messages_are_invalid_argument(target: SessionContext) -> None:
    method = target.channel.stream_unary(
        "/dspex_bridge.v1.BridgeService/ImportVariables", response_deserializer=pb.ImportVariablesResponse.FromString
    )
    head = first(1)
    head.session_token = target.token or ""
    with pytest.raises(ValidationError, match="could not be decoded"):
        await call(method, iter([head.SerializeToString(), b"\x0a\xff\xff\xff"]), (), 10.0, "import")
    await unchanged(target)


async def test_the_stream_and_its_variables_are_bounded() -> None:
    limits = Limits(max_import_bytes=20_000, max_variables_per_session=5)
    async with BridgeServer(limits=limits) as server, connect(server.address) as channel:
        session = await SessionContext("bounded", channel).initialize()
        big = [item(f"v{i}", "x" * 5000, "string") for i in range(5)]
        with pytest.raises(LimitExceededError, match="the import stream exceeds 20000 bytes"):
            await send(session, [first(5), *(pb.ImportVariablesRequest(variables=[b]) for b in big)])
        many = pb.ImportVariablesRequest(variables=[item(f"v{i}") for i in range(6)])
        with pytest.raises(LimitExceededError, match="variables in one import: 6 exceeds the limit of 5"):
            await send(session, [first(6), many])
        await session.register_variable("existing", "float", 1.0)
        four = pb.ImportVariablesRequest(variables=[item(f"v{i}") for i in range(5)])
        response = await send(session, [first(5, atomic=False), four])
        assert [r.outcome for r in response.results] == ["created"] * 4 + ["failed"]
        assert "variables in this session: 6 exceeds the limit of 5" in response.results[4].reason
        assert len(await session.list_variables()) == 5


def version(name: str, number: int, value: object = 0.5, by: str = "someone", seconds: int = 1) -> pb.ExportedVersion:
    v = pb.ExportedVersion(name=name, version=number, value=encode(value), updated_by=by)
    v.updated_at.seconds = seconds
    return v


@pytest.mark.parametrize(
    "versions,match",
    [
        ([version("h", 2), version("h", 1)], "earlier version 1 is not between 2 and the variable's version 5"),
        ([version("h", 5)], "earlier version 5 is not between 0 and the variable's version 5"),
        ([version("h", 1, seconds=-5)], "version 1 has an invalid updated_at"),
        ([version("h", 1, by="not a writer!")], "updated_by"),
        ([version("h", 1, value="text")], "h"),
    ],
    ids=["descending", "not-earlier", "bad-time", "bad-writer", "bad-value"],
)
async def test_bad_history_fails_its_variable_only(
    target: SessionContext, versions: list[pb.ExportedVersion], match: str
) -> None:
    request = pb.ImportVariablesRequest(variables=[item("h", version=5), item("ok")], versions=versions)
    response = await send(target, [first(2, len(versions), atomic=False), request])
    assert [r.outcome for r in response.results] == ["failed", "created"]
    assert match in response.results[0].reason


@settings(max_examples=200)
@given(
    type_name=st.sampled_from(["float", "integer", "string", "choice", "embedding", "tensor", "list", "dict", "x"]),
    value=_hostile.values(),
    constraints=_hostile.constraint_maps(),
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    strategy=st.sampled_from(["replace", "keep", "merge"]),
)
async def test_any_entry_is_applied_or_refused_cleanly(
    target: SessionContext, type_name: str, value: pb.Value, constraints: pb.MapValue, number: int, strategy: str
) -> None:
    spec = pb.VariableSpec(name="anchor", type=type_name, initial_value=value, constraints=constraints)
    entries = [pb.ExportedVariable(spec=spec, version=number), item("fresh_one", version=max(number, 0))]
    try:
        response = await send(
            target, [first(2, merge_strategy=strategy, atomic=False), pb.ImportVariablesRequest(variables=entries)]
        )
    except BridgeError:
        pass
    else:
        assert all(r.outcome in ("created", "replaced", "merged", "skipped", "failed") for r in response.results)
    infos = {i["name"]: i for i in await target.list_variables(include_values=True)}
    assert set(infos) <= {"anchor", "fresh_one"}
    assert infos["anchor"]["type"] == "float"
    if "fresh_one" in infos:
        await target.delete_variable("fresh_one")
