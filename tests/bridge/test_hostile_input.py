"""Crafted requests straight to the wire: every one is refused with a bridge error or accepted,
never answered INTERNAL/UNKNOWN, and the server keeps serving with its data intact."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from helpers import bearer
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import (
    AuthenticationError,
    BridgeError,
    BridgeServer,
    LimitExceededError,
    Limits,
    PreconditionFailedError,
    SessionContext,
    ValidationError,
    connect,
)
from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.client._rpc import call
from bridge.codec import WIRE_DTYPES, encode
from bridge.types import TYPES

CONSTRAINT_KEYS = sorted(
    {
        "nullable",
        "min",
        "max",
        "min_length",
        "max_length",
        "pattern",
        "choices",
        "dimensions",
        "normalize",
        "shape",
        "dtype",
        "item_type",
        "required_keys",
        "junk",
    }
)


def arrays() -> st.SearchStrategy[pb.Value]:
    def build(dtype: str, shape: list[int], data: bytes, framework: str) -> pb.Value:
        v = pb.Value()
        v.array_value.dtype = dtype
        v.array_value.shape.extend(shape)
        v.array_value.data = data
        v.array_value.framework = framework
        return v

    return st.builds(
        build,
        st.sampled_from([*sorted(WIRE_DTYPES), "object", "float128", ""]),
        st.lists(st.one_of(st.integers(-2, 4), st.just(2**62)), max_size=4),
        st.binary(max_size=64),
        st.sampled_from(["", "torch", "numpy", "x"]),
    )


def values() -> st.SearchStrategy[pb.Value]:
    scalars = st.one_of(
        st.builds(lambda: pb.Value(null_value=pb.NULL_VALUE)),
        st.floats().map(lambda x: pb.Value(float_value=x)),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: pb.Value(int_value=n)),
        st.text(max_size=10).map(lambda s: pb.Value(string_value=s)),
        st.booleans().map(lambda b: pb.Value(bool_value=b)),
        st.just(pb.Value()),
        arrays(),
    )

    def as_list(items: list[pb.Value]) -> pb.Value:
        v = pb.Value()
        v.list_value.SetInParent()
        v.list_value.items.extend(items)
        return v

    def as_map(pairs: list[tuple[str, pb.Value]]) -> pb.Value:
        v = pb.Value()
        v.map_value.SetInParent()
        for key, item in pairs:
            entry = v.map_value.entries.add()
            entry.key = key
            entry.value.CopyFrom(item)
        return v

    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(as_list),
            st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), children), max_size=4).map(as_map),
        ),
        max_leaves=12,
    )


def constraint_maps() -> st.SearchStrategy[pb.MapValue]:
    def build(pairs: list[tuple[str, pb.Value]]) -> pb.MapValue:
        m = pb.MapValue()
        for key, item in pairs:
            entry = m.entries.add()
            entry.key = key
            entry.value.CopyFrom(item)
        return m

    return st.lists(st.tuples(st.sampled_from(CONSTRAINT_KEYS), values()), max_size=3).map(build)


@pytest.fixture
async def target(session: SessionContext) -> SessionContext:
    await session.register_variable("anchor", "float", 0.5)
    return session


async def raw(session: SessionContext, method: str, request: object, auth: bool = True) -> object:
    stub = pb_grpc.BridgeServiceStub(session.channel)
    return await call(getattr(stub, method), request, bearer(session) if auth else (), 10.0, method)


async def still_serving(session: SessionContext) -> None:
    [info] = await session.list_variables("anchor", include_values=True)
    assert info["value"] == 0.5


@settings(max_examples=300)
@given(
    type_name=st.sampled_from([*TYPES, "map", "decimal", ""]),
    value=values(),
    constraints=constraint_maps(),
)
async def test_any_registration_is_accepted_or_refused_cleanly(
    target: SessionContext, type_name: str, value: pb.Value, constraints: pb.MapValue
) -> None:
    spec = pb.VariableSpec(name="fuzz", type=type_name)
    spec.initial_value.CopyFrom(value)
    spec.constraints.CopyFrom(constraints)
    try:
        await raw(target, "RegisterVariable", pb.RegisterVariableRequest(spec=spec))
    except BridgeError as exc:
        assert exc.message and exc.details.get("variable", "fuzz") == "fuzz"
    else:
        await target.get_variable("fuzz")  # what was accepted reads back
        await target.delete_variable("fuzz")
    await still_serving(target)


@settings(max_examples=300)
@given(value=values())
async def test_any_write_is_accepted_or_refused_cleanly(target: SessionContext, value: pb.Value) -> None:
    [before] = await target.list_variables("anchor", include_values=True)
    request = pb.SetVariableRequest(ref="anchor")
    request.value.CopyFrom(value)
    try:
        await raw(target, "SetVariable", request)
    except BridgeError:
        [after] = await target.list_variables("anchor", include_values=True)
        assert (after["value"], after["version"]) == (before["value"], before["version"])
    else:
        await target.set_variable("anchor", 0.5)
    request = pb.SetVariableRequest(ref="fresh", create_if_missing=True)
    request.value.CopyFrom(value)
    try:
        await raw(target, "SetVariable", request)
    except BridgeError:
        assert await target.get_variable("fresh", default=0) == 0
    else:
        await target.get_variable("fresh")
        await target.delete_variable("fresh")


@given(st.binary(min_size=1, max_size=64))
async def test_undecodable_request_bytes_are_invalid_argument(target: SessionContext, data: bytes) -> None:
    method = target.channel.unary_unary("/dspex_bridge.v1.BridgeService/SetVariable")
    try:
        await method(data, metadata=bearer(target), timeout=10.0)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() in {
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.PERMISSION_DENIED,
        }, exc
    await still_serving(target)


async def test_metadata_nested_past_the_limit_is_refused_and_listing_keeps_working(target: SessionContext) -> None:
    deep: object = "leaf"
    for _ in range(40):
        deep = {"k": deep}
    with pytest.raises(LimitExceededError, match="nests deeper than 32"):
        await target.set_variable("anchor", 0.5, metadata={"deep": deep})
    assert [v["name"] for v in await target.list_variables()] == ["anchor"]
    await still_serving(target)


async def test_overlong_refs_are_refused_with_a_short_message(target: SessionContext) -> None:
    with pytest.raises(LimitExceededError) as info:
        await target.get_variable("x" * 20_000, default=1)
    assert len(str(info.value)) < 200
    with pytest.raises(ValueError, match="the limit is 128"):
        await target.update_variables({"bad name " * 1000: 1, "anchor": 0.5})
    with pytest.raises(ValidationError, match="is invalid"):
        await target.update_variables({"bad name": 1, "anchor": 0.5})
    await still_serving(target)


async def test_the_servers_configured_limits_apply_to_values() -> None:
    limits = Limits(max_list_items=5, max_nesting_depth=2)
    async with BridgeServer(limits=limits) as server, connect(server.address) as channel:
        session = await SessionContext("limited", channel).initialize()
        await session.register_variable("ok", "list", [1, 2, 3, 4, 5])
        with pytest.raises(LimitExceededError, match="limit of 5"):
            await session.register_variable("long", "list", list(range(6)))
        with pytest.raises(LimitExceededError, match="deeper than 2"):
            await session.register_variable("deep", "list", [[[[1]]]])


async def test_refused_attempts_do_not_count_as_reads(target: SessionContext, new_session) -> None:
    [info] = await target.list_variables("anchor")
    intruder = await new_session()
    for _ in range(3):  # no rule grants the intruder anything: for it, the variable does not exist
        with pytest.raises(KeyError):
            await intruder.get_variable(info["id"])
    with pytest.raises(KeyError):
        await intruder.set_variable(info["id"], 1.0)
    with pytest.raises(KeyError):
        await intruder.delete_variable(info["id"])
    [after] = await target.list_variables("anchor")
    assert after["stats"]["read_count"] == info["stats"]["read_count"] == 0


async def test_a_token_resumes_only_its_own_session(target: SessionContext, new_session) -> None:
    other = await new_session()
    _, secret = target.token.split(":", 1)
    for forged in (f"{other.session_id}:{secret}", f"x:{target.session_id}:{secret}"):
        with pytest.raises(AuthenticationError, match="invalid token"):
            await SessionContext(target.session_id, target.channel, token=forged).initialize()


async def test_expected_version_guards_writes_and_creation(target: SessionContext) -> None:
    stale = pb.SetVariableRequest(ref="anchor", value=encode(0.7), expected_version=2)
    with pytest.raises(PreconditionFailedError, match="version is 1, expected 2"):
        await raw(target, "SetVariable", stale)
    ghost = pb.SetVariableRequest(ref="ghost", value=encode(1.0), expected_version=3, create_if_missing=True)
    with pytest.raises(PreconditionFailedError, match="does not exist"):
        await raw(target, "SetVariable", ghost)
    negative = pb.SetVariableRequest(ref="anchor", value=encode(0.5), expected_version=-1)
    reply = await raw(target, "SetVariable", negative)
    assert reply.version == 2


async def test_an_empty_batch_reports_the_current_revision(target: SessionContext) -> None:
    reply = await raw(target, "RegisterVariables", pb.RegisterVariablesRequest())
    assert reply.revision == 1 and not reply.variable_ids


async def test_one_variable_twice_in_an_atomic_batch_is_refused(target: SessionContext) -> None:
    [info] = await target.list_variables("anchor")
    results = await target.update_variables({"anchor": 0.1, info["id"]: 0.2})
    assert "same variable" in results[info["id"]]
    await still_serving(target)


async def test_duplicate_map_keys_on_the_wire_are_refused(target: SessionContext) -> None:
    value = pb.Value()
    for key, n in (("a", 1), ("a", 2)):
        entry = value.map_value.entries.add()
        entry.key = key
        entry.value.int_value = n
    request = pb.SetVariableRequest(ref="d", value=value, create_if_missing=True, type_hint="dict")
    with pytest.raises(ValidationError, match=r"d: map has duplicate keys \['a'\]"):
        await raw(target, "SetVariable", request)


async def test_dependencies_are_stored_once(target: SessionContext) -> None:
    [info] = await target.list_variables("anchor")
    await target.register_variable("derived", "float", 1.0, dependencies=["anchor", info["id"], "anchor"])
    [derived] = await target.list_variables("derived")
    assert derived["dependencies"] == [info["id"]]


async def test_a_stored_value_does_not_share_memory_with_its_request(target: SessionContext) -> None:
    await target.register_variables(
        [
            {"name": "big", "type": "tensor", "initial_value": np.zeros(100_000)},
            {"name": "tiny", "type": "string", "initial_value": "x"},
        ]
    )
    await target.delete_variable("big")
    assert await target.get_variable("tiny") == "x"
