"""The zero-copy array framing is plain protobuf: checked against protobuf itself, and over the wire."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from helpers import bearer
from hypothesis import given
from hypothesis import strategies as st

from bridge import SessionContext, ValidationError
from bridge._framing import bytes_field_prefix, read_varint, split_leading_field, varint
from bridge._proto import bridge_pb2 as pb
from bridge._proto import bridge_pb2_grpc as pb_grpc
from bridge.client._arrays import framed_set_request, split_get_response
from bridge.client._rpc import call
from bridge.codec import encode


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_varints_match_protobuf(n: int) -> None:
    assert b"\x10" + varint(n) == pb.SetVariableResponse(version=n).SerializeToString()
    assert read_varint(varint(n), 0) == (n, len(varint(n)))


def test_truncated_varints_are_refused() -> None:
    with pytest.raises(ValueError, match="truncated"):
        read_varint(b"\x80\x80", 0)


@given(st.binary(max_size=300), st.text(max_size=20))
def test_a_leading_bytes_field_parses_as_protobuf_would(data: bytes, ref: str) -> None:
    rest = pb.SetVariableRequest(ref=ref).SerializeToString()
    framed = bytes_field_prefix(16, len(data)) + data + rest
    assert pb.SetVariableRequest.FromString(framed) == pb.SetVariableRequest(ref=ref, array_data=data)
    view, tail = split_leading_field(framed, 16)
    assert bytes(view) == data and tail == rest


@given(st.binary(max_size=64))
def test_anything_else_is_left_to_protobuf(raw: bytes) -> None:
    view, rest = split_leading_field(raw, 16)
    if view is None:
        assert rest == raw
    else:
        assert raw == bytes_field_prefix(16, len(view)) + bytes(view) + rest


@given(st.sampled_from([np.float32, np.float64, np.int64, np.bool_]), st.sampled_from([(), (0,), (7,), (2, 3)]))
def test_a_framed_set_request_is_the_request_protobuf_would_send(dtype: type, shape: tuple[int, ...]) -> None:
    arr = np.arange(int(np.prod(shape)), dtype=np.float64).astype(dtype).reshape(shape)
    framed = framed_set_request(pb.SetVariableRequest(ref="t", session_token="s:x"), arr)
    parsed = pb.SetVariableRequest.FromString(framed)
    assert parsed.ref == "t" and parsed.session_token == "s:x"
    assert parsed.array_data == arr.tobytes()
    assert (parsed.value.array_value.dtype, tuple(parsed.value.array_value.shape)) == (arr.dtype.name, shape)


def test_a_get_reply_splits_its_leading_array() -> None:
    rest = pb.GetVariableResponse(version=2).SerializeToString()
    message, data = split_get_response(bytes_field_prefix(16, 3) + b"abc" + rest)
    assert (message.version, bytes(data)) == (2, b"abc")


async def raw_set(session: SessionContext, request: pb.SetVariableRequest) -> pb.SetVariableResponse:
    stub = pb_grpc.BridgeServiceStub(session.channel)
    return await call(stub.SetVariable, request, bearer(session), 10.0, "set")


async def test_array_data_anywhere_in_the_message_means_the_same(session: SessionContext) -> None:
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    await session.register_variable("t", "tensor", np.zeros((2, 3), dtype=np.float32))
    request = pb.SetVariableRequest(ref="t", array_data=arr.tobytes())  # protobuf puts field 16 last
    request.value.array_value.dtype = "float32"
    request.value.array_value.shape.extend([2, 3])
    await raw_set(session, request)
    back = await session.get_variable("t")
    assert back.dtype == np.float32 and np.array_equal(back, arr)
    batch = await session.get_variables(["t"])
    assert np.array_equal(batch["t"], arr)


async def test_array_data_needs_an_array_value_without_inline_data(session: SessionContext) -> None:
    await session.register_variable("t", "tensor", np.zeros(2))
    not_array = pb.SetVariableRequest(ref="t", value=encode(1.0), array_data=b"\x00" * 16)
    with pytest.raises(ValidationError, match="t: array_data needs a value that is an array_value"):
        await raw_set(session, not_array)
    both = pb.SetVariableRequest(ref="t", value=encode(np.ones(2)), array_data=b"\x00" * 16)
    with pytest.raises(ValidationError, match="empty data"):
        await raw_set(session, both)
    assert np.array_equal(await session.get_variable("t"), np.zeros(2))


async def test_arrays_come_back_read_only_and_torch_tensors_writable(session: SessionContext) -> None:
    await session.register_variable("e", "embedding", np.ones(4, dtype=np.float32))
    back = await session.get_variable("e")
    assert not back.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        back[0] = 2.0
    assert back.copy().flags.writeable


def raw_method(session: SessionContext):
    return session.channel.unary_unary(
        "/dspex_bridge.v1.BridgeService/SetVariable", response_deserializer=pb.SetVariableResponse.FromString
    )


async def test_a_second_array_data_is_refused_not_guessed(session: SessionContext) -> None:
    await session.register_variable("t", "tensor", np.zeros(2, dtype=np.uint8))
    inner = pb.SetVariableRequest(ref="t", session_token=session.token, array_data=b"\x02\x02")
    inner.value.array_value.dtype = "uint8"
    inner.value.array_value.shape.append(2)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await raw_method(session)(bytes_field_prefix(16, 2) + b"\x01\x01" + inner.SerializeToString())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "array_data appears more than once" in info.value.details()
    assert np.array_equal(await session.get_variable("t"), np.zeros(2))


async def test_an_empty_leading_array_data_means_absent(session: SessionContext) -> None:
    await session.register_variable("f", "float", 1.0)
    rest = pb.SetVariableRequest(ref="f", session_token=session.token, value=encode(2.0))
    await raw_method(session)(bytes_field_prefix(16, 0) + rest.SerializeToString())
    assert await session.get_variable("f") == 2.0


async def test_a_small_array_does_not_pin_a_large_request(server, session: SessionContext) -> None:
    if not hasattr(server, "store"):
        pytest.skip("needs the in-process server's store")
    await session.register_variable("t", "tensor", np.zeros(1, dtype=np.uint8))
    request = pb.SetVariableRequest(ref="t", session_token=session.token)
    request.value.array_value.dtype = "uint8"
    request.value.array_value.shape.append(1)
    request.metadata.entries.add(key="note").value.string_value = "x" * 1_000_000
    await raw_method(session)(bytes_field_prefix(16, 1) + b"\x07" + request.SerializeToString())
    data = (await server.store.get_variable(session.session_id, "t")).value.data
    assert bytes(data) == b"\x07"
    assert isinstance(data, bytes) or len(data.obj) < 1000  # a copy, not a view into the 1 MB request


async def test_stored_array_bytes_are_read_only(server, session: SessionContext) -> None:
    if not hasattr(server, "store"):
        pytest.skip("needs the in-process server's store")
    await session.register_variable("e", "embedding", np.array([3.0, 4.0]), constraints={"normalize": True})
    record = await server.store.get_variable(session.session_id, "e")
    [current] = await server.store.history(record.id)
    data = current.value.data  # bytes from a store that copies (SQLite), else a view: read-only either way
    assert isinstance(data, bytes) or (isinstance(data, memoryview) and data.readonly)


async def test_conjugated_torch_tensors_are_sent_resolved(session: SessionContext) -> None:
    torch = pytest.importorskip("torch")
    t = torch.tensor([1 + 2j, 3 - 1j]).conj()
    await session.register_variable("z", "tensor", t)
    assert torch.equal(await session.get_variable("z"), t.resolve_conj())
