"""Bad input: each gets a clear error naming the variable and rule; the server keeps serving; data is unchanged.

Most cases go through the raw stub too, so they prove the server (not only the client) refuses them.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from helpers import bearer

from bridge import (
    AuthenticationError,
    BridgeServer,
    ConstraintViolationError,
    LimitExceededError,
    Limits,
    SessionContext,
    SessionNotFoundError,
    UnknownTypeError,
    ValidationError,
    VariableExistsError,
    VariableTypeError,
    connect,
)
from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.client._rpc import call
from bridge.codec import encode


@pytest.fixture
async def anchored(session: SessionContext) -> SessionContext:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    return session


async def assert_unchanged(session: SessionContext) -> None:
    """The server still answers and the anchor variable is exactly as registered."""
    [info] = await session.list_variables("temperature", include_values=True)
    assert (info["value"], info["version"]) == (0.7, 1)


async def raw(session: SessionContext, method: str, request: object) -> object:
    stub = pb_grpc.BridgeServiceStub(session.channel)
    return await call(getattr(stub, method), request, bearer(session), 5.0, method)


def spec(name: str, type_: str, value: object, **constraints: object) -> pb.VariableSpec:
    from bridge.codec import encode_map

    return pb.VariableSpec(name=name, type=type_, initial_value=encode(value), constraints=encode_map(constraints))


async def test_unknown_type(anchored: SessionContext) -> None:
    with pytest.raises(UnknownTypeError, match="unknown variable type 'decimal'; known types: float"):
        await anchored.register_variable("price", "decimal", 1.0)
    with pytest.raises(UnknownTypeError, match="'decimal'"):
        await raw(anchored, "RegisterVariable", pb.RegisterVariableRequest(spec=spec("price", "decimal", 1.0)))
    await assert_unchanged(anchored)


async def test_constraint_violation_names_variable_and_rule(anchored: SessionContext) -> None:
    with pytest.raises(
        ConstraintViolationError, match=r"temperature: 2.5 is above the maximum 2.0 \(constraint 'max'\)"
    ):
        await anchored.set_variable("temperature", 2.5)
    with pytest.raises(ConstraintViolationError) as info:
        await raw(anchored, "RegisterVariable", pb.RegisterVariableRequest(spec=spec("p", "float", -1.0, min=0.0)))
    assert info.value.details == {"variable": "p", "rule": "min"}
    await assert_unchanged(anchored)


async def test_wrong_type(anchored: SessionContext) -> None:
    with pytest.raises(VariableTypeError, match="temperature: expected a float or int for type 'float', got str"):
        await anchored.set_variable("temperature", "hot")
    with pytest.raises(TypeError):
        await anchored.set_variable("temperature", [0.5])
    await assert_unchanged(anchored)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("x" * 129, "the limit is 128"),
        ("has space", "is invalid"),
        ("1starts_with_digit", "is invalid"),
        ("slash/name", "is invalid"),
        ("nul\x00", "is invalid"),
        ("var_0123456789abcdef01234567", "reserved"),
    ],
)
async def test_bad_names_are_refused_by_client_and_server(anchored: SessionContext, name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await anchored.register_variable(name, "float", 1.0)
    with pytest.raises(ValueError, match=message):
        await raw(anchored, "RegisterVariable", pb.RegisterVariableRequest(spec=spec(name, "float", 1.0)))
    await assert_unchanged(anchored)


async def test_duplicate_registration(anchored: SessionContext) -> None:
    with pytest.raises(VariableExistsError, match="variable 'temperature' already exists"):
        await anchored.register_variable("temperature", "float", 1.5)
    assert isinstance(VariableExistsError("x"), ValueError)
    await assert_unchanged(anchored)


async def test_atomic_register_batch_with_one_bad_spec_registers_nothing(anchored: SessionContext) -> None:
    with pytest.raises(ConstraintViolationError, match="b: 5 is above"):
        await anchored.register_variables(
            [
                {"name": "a", "type": "integer", "initial_value": 1},
                {"name": "b", "type": "integer", "initial_value": 5, "constraints": {"max": 3}},
            ]
        )
    assert [v["name"] for v in await anchored.list_variables()] == ["temperature"]
    with pytest.raises(VariableExistsError):
        await anchored.register_variables(
            [{"name": "a", "type": "integer", "initial_value": 1}, {"name": "a", "type": "integer", "initial_value": 2}]
        )
    assert (await anchored.heartbeat())["revision"] == 1


async def test_unknown_session(channel: grpc.aio.Channel) -> None:
    ghost = SessionContext("ghost", channel)
    ghost._token = "ghost:not-a-real-secret"
    with pytest.raises(SessionNotFoundError, match="session 'ghost' not found"):
        await ghost.get_variable("temperature")


async def test_missing_token(anchored: SessionContext) -> None:
    stub = pb_grpc.BridgeServiceStub(anchored.channel)
    with pytest.raises(AuthenticationError, match="missing session token"):
        await call(stub.GetVariable, pb.GetVariableRequest(ref="temperature"), (), 5.0, "get")
    fresh = SessionContext("never_initialized", anchored.channel)
    with pytest.raises(AuthenticationError, match="not initialized"):
        await fresh.get_variable("temperature")
    await assert_unchanged(anchored)


async def test_wrong_token(anchored: SessionContext) -> None:
    stub = pb_grpc.BridgeServiceStub(anchored.channel)
    forged = (("authorization", f"Bearer {anchored.session_id}:forged"),)
    with pytest.raises(AuthenticationError, match=f"invalid token for session '{anchored.session_id}'"):
        await call(stub.SetVariable, pb.SetVariableRequest(ref="temperature", value=encode(1.0)), forged, 5.0, "set")
    with pytest.raises(AuthenticationError, match="already exists; pass its token"):
        await SessionContext(anchored.session_id, anchored.channel).initialize()
    with pytest.raises(AuthenticationError, match="invalid token"):
        await SessionContext(anchored.session_id, anchored.channel, token=f"{anchored.session_id}:nope").initialize()
    await assert_unchanged(anchored)


async def test_resume_with_the_token(anchored: SessionContext) -> None:
    again = await SessionContext(anchored.session_id, anchored.channel, token=anchored.token).initialize()
    assert await again.get_variable("temperature") == 0.7


async def test_one_session_cannot_read_anothers_variable_without_a_rule(anchored: SessionContext, new_session) -> None:
    other = await new_session()
    [info] = await anchored.list_variables("temperature")
    with pytest.raises(KeyError, match="not found") as hidden:  # no rule grants it anything: it is not there
        await other.get_variable(info["id"])
    assert "temperature" not in str(hidden.value)
    with pytest.raises(KeyError):
        await other.get_variable("temperature")  # names are per session
    shared_id = await anchored.register_variable(
        "shared", "float", 1.0, access_rules=[{"session_pattern": "any", "permissions": ["read"]}]
    )
    assert await other.get_variable(shared_id) == 1.0
    with pytest.raises(PermissionError, match="may not write"):
        await other.set_variable(shared_id, 2.0)
    await assert_unchanged(anchored)


async def test_unknown_permission_in_access_rule(anchored: SessionContext) -> None:
    with pytest.raises(ValidationError, match="unknown permission"):
        await anchored.register_variable(
            "k", "string", "x", access_rules=[{"session_pattern": "any", "permissions": ["fly"]}]
        )


async def test_missing_dependency_is_named(anchored: SessionContext) -> None:
    with pytest.raises(KeyError, match="derived: dependency 'nope' not found"):
        await anchored.register_variable("derived", "float", 1.0, dependencies=["nope"])
    await assert_unchanged(anchored)


async def test_delete_refused_while_depended_on(anchored: SessionContext) -> None:
    await anchored.register_variable("derived", "float", 1.0, dependencies=["temperature"])
    with pytest.raises(ValueError, match=r"cannot delete 'temperature': \['derived'\] depend on it"):
        await anchored.delete_variable("temperature")
    await anchored.delete_variable("derived")
    with pytest.raises(KeyError):
        await anchored.get_variable("derived")
    await assert_unchanged(anchored)


async def test_oversize_message_is_refused_and_server_keeps_serving() -> None:
    limits = Limits(max_message_bytes=1024 * 1024)
    async with BridgeServer(limits=limits) as server, connect(server.address) as channel:
        s = await SessionContext("big", channel).initialize()
        await s.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
        await s.register_variable("blob", "tensor", np.zeros(4))
        with pytest.raises(LimitExceededError, match=r"set_variable\('blob'\): the message \(\d+ bytes sent\) exceeds"):
            await s.set_variable("blob", np.zeros(300_000))  # 2.4 MB
        assert isinstance(LimitExceededError("x"), ValueError)
        np.testing.assert_array_equal(await s.get_variable("blob"), np.zeros(4))
        await assert_unchanged(s)


async def test_oversize_response_on_a_default_channel_is_a_clear_error(server: BridgeServer) -> None:
    async with connect(server.address) as big, grpc.aio.insecure_channel(server.address) as default:
        writer = await SessionContext("writer", big).initialize()
        await writer.register_variable("huge", "tensor", np.zeros(1_000_000))  # 8 MB > grpc's 4 MB default
        reader = await SessionContext("writer", default, token=writer.token).initialize()
        with pytest.raises(LimitExceededError, match="exceeds a max message size"):
            await reader.get_variable("huge")
        assert (await writer.get_variable("huge")).shape == (1_000_000,)


async def test_batch_limits(anchored: SessionContext) -> None:
    with pytest.raises(LimitExceededError, match="limit of 10000"):
        await anchored.get_variables([f"v{i}" for i in range(10_001)])
    with pytest.raises(ValidationError, match="more than once"):
        await raw(
            anchored,
            "UpdateVariables",
            pb.UpdateVariablesRequest(updates=[pb.MapEntry(key="temperature", value=encode(1.0))] * 2, atomic=True),
        )
    await assert_unchanged(anchored)


async def test_malformed_array_bytes_are_refused(anchored: SessionContext) -> None:
    bad = pb.Value(array_value=pb.NDArray(dtype="float32", shape=[4], data=b"\x00" * 3))
    with pytest.raises(ValidationError, match="needs 16 bytes, got 3"):
        await raw(
            anchored,
            "SetVariable",
            pb.SetVariableRequest(ref="e", value=bad, create_if_missing=True, type_hint="tensor"),
        )
    weird = pb.Value(array_value=pb.NDArray(dtype="object", shape=[1], data=b"\x00" * 8))
    with pytest.raises(TypeError, match="unknown wire dtype"):
        await raw(
            anchored,
            "SetVariable",
            pb.SetVariableRequest(ref="e", value=weird, create_if_missing=True, type_hint="tensor"),
        )
    await assert_unchanged(anchored)


async def test_a_64_mib_tensor_fits_the_default_limits(session: SessionContext) -> None:
    big = np.arange(16 * 1024 * 1024, dtype=np.float32)  # 64 MiB
    await session.register_variable("big", "tensor", big)
    back = await session.get_variable("big")
    assert back.dtype == np.float32 and back.shape == big.shape
    assert back[-1] == big[-1] and np.array_equal(back, big)


async def test_ping_needs_no_session(channel: grpc.aio.Channel) -> None:
    reply = await pb_grpc.BridgeServiceStub(channel).Ping(pb.PingRequest())
    assert reply.protocol_version == "dspex_bridge.v1"
    assert reply.max_message_bytes == Limits().max_message_bytes


async def test_an_old_token_does_not_open_a_recreated_session(channel: grpc.aio.Channel) -> None:
    first = await SessionContext("reborn", channel).initialize()
    await first.register_variable("x", "integer", 1)  # the token is now verified and remembered
    stale = first.token
    await first.cleanup()
    second = await SessionContext("reborn", channel).initialize()
    await second.register_variable("x", "integer", 2)
    impostor = SessionContext("reborn", channel)
    impostor._token = stale
    with pytest.raises(AuthenticationError, match="invalid token for session 'reborn'"):
        await impostor.get_variable("x")
    assert await second.get_variable("x") == 2
