"""Writing a variable by its ID: one's own, or another session's when its access rules allow it."""

from __future__ import annotations

import grpc
import pytest
from helpers import bearer

from bridge import PreconditionFailedError, SessionContext
from bridge._framing import bytes_field_prefix
from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.client._rpc import call
from bridge.codec import ARRAY_DATA_FIELD, encode
from bridge.errors import ERROR_TRAILER_KEY

SHARED = [{"session_pattern": "*", "permissions": ["read", "write"]}]


async def _revision(session: SessionContext) -> int:
    return (await session.heartbeat())["revision"]


async def test_own_variable_by_id(session: SessionContext) -> None:
    vid = await session.register_variable("t", "float", 0.5)
    await session.set_variable(vid, 0.9)
    assert await session.get_variable("t") == 0.9


async def test_write_by_id_with_a_write_rule_lands_in_the_owners_session(session: SessionContext, new_session) -> None:
    other = await new_session()
    vid = await session.register_variable("shared", "float", 1.0, access_rules=SHARED)
    owner_before, writer_before = await _revision(session), await _revision(other)

    await other.set_variable(vid, 2.0, metadata={"by": "other"})

    assert await session.get_variable("shared") == 2.0
    assert await _revision(session) == owner_before + 1  # the write took the owner's next revision
    assert await _revision(other) == writer_before
    info = (await session.get_variables(["shared"], include_metadata=True))["shared"]
    assert (info["version"], info["updated_by"], info["last_update_metadata"]) == (2, other.session_id, {"by": "other"})


async def test_shared_id_write_checks_expected_version(session: SessionContext, new_session) -> None:
    other = await new_session()
    vid = await session.register_variable("shared", "float", 1.0, access_rules=SHARED)
    stub = pb_grpc.BridgeServiceStub(other.channel)

    def request(expected: int) -> pb.SetVariableRequest:
        return pb.SetVariableRequest(ref=vid, value=encode(3.0), expected_version=expected)

    with pytest.raises(PreconditionFailedError, match="version is 1, expected 7"):
        await call(stub.SetVariable, request(7), bearer(other), 5.0, "set")
    response = await call(stub.SetVariable, request(1), bearer(other), 5.0, "set")
    assert (response.variable_id, response.version, response.created) == (vid, 2, False)
    assert await session.get_variable("shared") == 3.0


async def test_create_if_missing_on_a_shared_id_writes_the_existing_variable(
    session: SessionContext, new_session
) -> None:
    other = await new_session()
    vid = await session.register_variable("shared", "float", 1.0, access_rules=SHARED)
    await other.set_variable(vid, 4.0, create_if_missing=True)
    assert await session.get_variable("shared") == 4.0
    assert await other.list_variables() == []  # nothing was created in the writer's session


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",  # a tag with no field
        b"\x0a\x05ab",  # a string field cut short
        bytes_field_prefix(ARRAY_DATA_FIELD, 3) + b"abc" + b"\xff\xff",  # leading array bytes, then garbage
        bytes_field_prefix(ARRAY_DATA_FIELD, 1000) + b"abc",  # leading array bytes shorter than announced
    ],
)
async def test_undecodable_request_is_a_validation_error_with_its_detail(session: SessionContext, data: bytes) -> None:
    method = session.channel.unary_unary("/dspex_bridge.v1.BridgeService/SetVariable")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await method(data, metadata=bearer(session), timeout=10.0)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [detail] = [pb.ErrorDetail.FromString(v) for k, v in failed.value.trailing_metadata() if k == ERROR_TRAILER_KEY]
    assert detail.kind == "validation_error"
    assert "could not be decoded" in detail.message
