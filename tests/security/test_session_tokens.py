"""A client without a session's token cannot act as that session, on any RPC, unary or streaming.

Every RPC but Ping and InitializeSession is called (through the raw wire, so the server and
not the client does the refusing) with a missing, wrong, forged, malformed, over-long or stale
token, in the request field and in `authorization` metadata; each must fail UNAUTHENTICATED
(NOT_FOUND for a session that does not exist) and none may change anything stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor

from bridge import BridgeServer, SessionContext, connect
from bridge._proto import bridge_pb2 as pb
from bridge.codec import encode

SERVICE = pb.DESCRIPTOR.services_by_name["BridgeService"]
WAIT = 10.0
VICTIM = "owner"

#: Requests that would do harm if the server let them through; other RPCs are sent empty.
HARMFUL: dict[str, dict[str, Any]] = {
    "RegisterVariable": {
        "spec": pb.VariableSpec(name="planted", type="integer", initial_value=encode(5)),
    },
    "RegisterVariables": {
        "specs": [pb.VariableSpec(name="planted", type="integer", initial_value=encode(5))],
    },
    "GetVariable": {"ref": "api_key"},
    "GetVariables": {"refs": ["api_key"]},
    "SetVariable": {"ref": "api_key", "value": encode("stolen")},
    "UpdateVariables": {"updates": [pb.MapEntry(key="api_key", value=encode("stolen"))], "atomic": True},
    "DeleteVariable": {"ref": "api_key"},
    "StartOptimization": {
        "refs": ["budget"],
        "optimizer_type": "random",
        "max_iterations": 3,
        "direction": "maximize",
    },
    "Watch": {"refs": ["api_key"]},
}

TOKENLESS = {"Ping", "InitializeSession"}


def guarded_methods() -> list[MethodDescriptor]:
    return [m for m in SERVICE.methods if m.name not in TOKENLESS]


def test_every_rpc_but_ping_and_initialize_carries_a_session_token() -> None:
    """A new RPC without the field would be one that no token guards (or only metadata does)."""
    without = {m.name for m in SERVICE.methods if "session_token" not in m.input_type.fields_by_name}
    assert without == TOKENLESS


def request_for(method: MethodDescriptor, token: str) -> Any:
    message_class = getattr(pb, method.input_type.name)
    return message_class(session_token=token, **HARMFUL.get(method.name, {}))


async def invoke(channel: grpc.aio.Channel, method: MethodDescriptor, request: Any, metadata: tuple) -> object:
    """Calls `method` on the raw channel and returns its reply (a stream read to its end)."""
    path = f"/{SERVICE.full_name}/{method.name}"
    reply = getattr(pb, method.output_type.name).FromString
    serialize = type(request).SerializeToString
    if method.client_streaming:
        rpc = channel.stream_unary(path, request_serializer=serialize, response_deserializer=reply)
        return await rpc(iter([request]), metadata=metadata, timeout=WAIT)
    if method.server_streaming:
        stream = channel.unary_stream(path, request_serializer=serialize, response_deserializer=reply)
        return [message async for message in stream(request, metadata=metadata, timeout=WAIT)]
    rpc = channel.unary_unary(path, request_serializer=serialize, response_deserializer=reply)
    return await rpc(request, metadata=metadata, timeout=WAIT)


@pytest.fixture
async def server() -> AsyncIterator[BridgeServer]:
    async with BridgeServer() as srv:
        yield srv


@pytest.fixture
async def channel(server: BridgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with connect(server.address) as ch:
        yield ch


@pytest.fixture
async def owner(channel: grpc.aio.Channel) -> SessionContext:
    session = await SessionContext(VICTIM, channel).initialize()
    await session.register_variable("api_key", "string", "s3cr3t")
    await session.register_variable("budget", "float", 1.0, constraints={"min": 0.0, "max": 10.0})
    return session


@pytest.fixture
async def attacker(channel: grpc.aio.Channel) -> SessionContext:
    """A session of its own: it holds a valid token, just not the owner's."""
    return await SessionContext("attacker", channel).initialize()


async def stored_state(server: BridgeServer, owner: SessionContext) -> object:
    """Everything a refused call could have changed: sessions, the owner's variables and revision, open streams."""
    variables = [(v["name"], v["value"], v["version"]) for v in await owner.list_variables(include_values=True)]
    revision = (await owner.heartbeat())["revision"]
    servicer = server.servicer
    streams = (servicer.watches.count, servicer.invalidation_hubs.count)
    return sorted(await server.store.session_ids()), variables, revision, streams


async def assert_all_refused(
    channel: grpc.aio.Channel, token: str, metadata: tuple, code: grpc.StatusCode, message: str
) -> None:
    """Every guarded RPC, sent with `token` and `metadata`, fails with `code` and `message` in its details."""
    wrong = []
    for method in guarded_methods():
        try:
            reply = await invoke(channel, method, request_for(method, token), metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != code or message not in (exc.details() or ""):
                wrong.append(f"{method.name}: {exc.code().name} {exc.details()!r}")
        else:
            wrong.append(f"{method.name}: answered {reply!r}")
    assert not wrong, f"not refused as {code.name} ({message!r}):\n" + "\n".join(wrong)


def secret_of(session: SessionContext) -> str:
    assert session.token is not None
    return session.token.rpartition(":")[2]


UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def test_a_missing_token_is_refused_everywhere(server, channel, owner) -> None:
    before = await stored_state(server, owner)
    await assert_all_refused(channel, "", (), UNAUTHENTICATED, "missing session token")
    assert await stored_state(server, owner) == before


async def test_a_wrong_secret_for_the_owners_session_is_refused_everywhere(server, channel, owner) -> None:
    before = await stored_state(server, owner)
    guess = f"{VICTIM}:{'A' * len(secret_of(owner))}"
    await assert_all_refused(channel, guess, (), UNAUTHENTICATED, f"invalid token for session '{VICTIM}'")
    assert await stored_state(server, owner) == before


async def test_another_sessions_valid_secret_under_the_owners_id_is_refused_everywhere(
    server, channel, owner, attacker
) -> None:
    """The token names its session: a valid secret does not open any other session than its own."""
    before = await stored_state(server, owner)
    forged = f"{VICTIM}:{secret_of(attacker)}"
    await assert_all_refused(channel, forged, (), UNAUTHENTICATED, f"invalid token for session '{VICTIM}'")
    assert await stored_state(server, owner) == before


async def test_forged_tokens_in_the_authorization_header_are_refused_everywhere(
    server, channel, owner, attacker
) -> None:
    before = await stored_state(server, owner)
    forged = (("authorization", f"Bearer {VICTIM}:{secret_of(attacker)}"),)
    await assert_all_refused(channel, "", forged, UNAUTHENTICATED, f"invalid token for session '{VICTIM}'")
    basic = (("authorization", f"Basic {owner.token}"),)  # the right token, in the wrong scheme
    await assert_all_refused(channel, "", basic, UNAUTHENTICATED, "must be 'Bearer <token>'")
    assert await stored_state(server, owner) == before


async def test_malformed_and_over_long_tokens_are_refused_everywhere(server, channel, owner) -> None:
    before = await stored_state(server, owner)
    await assert_all_refused(channel, VICTIM, (), UNAUTHENTICATED, "malformed session token")
    huge = f"{VICTIM}:{'A' * 100_000}"
    await assert_all_refused(channel, huge, (), UNAUTHENTICATED, "malformed session token")
    assert await stored_state(server, owner) == before


async def test_a_token_of_an_ended_session_does_not_open_its_successor(server, channel, owner) -> None:
    """A session re-created under the same name gets a new secret; the old token (verified before) opens nothing."""
    first = await SessionContext("recycled", channel).initialize()
    await first.heartbeat()  # the old token is now among the server's verified ones
    stale = first.token
    await first.cleanup()
    successor = await SessionContext("recycled", channel).initialize()
    await successor.register_variable("api_key", "string", "new")
    before = await stored_state(server, owner), await successor.list_variables(include_values=True)
    await assert_all_refused(channel, stale, (), UNAUTHENTICATED, "invalid token for session 'recycled'")
    assert (await stored_state(server, owner), await successor.list_variables(include_values=True)) == before


async def test_a_token_for_a_session_that_does_not_exist_creates_nothing(server, channel, owner) -> None:
    before = await stored_state(server, owner)
    await assert_all_refused(channel, f"ghost:{secret_of(owner)}", (), grpc.StatusCode.NOT_FOUND, "'ghost' not found")
    assert await stored_state(server, owner) == before


async def test_resuming_the_owners_session_needs_its_token(server, channel, owner, attacker) -> None:
    before = await stored_state(server, owner)
    for token in (None, f"{VICTIM}:{secret_of(attacker)}", attacker.token, VICTIM):
        with pytest.raises(PermissionError, match=f"session '{VICTIM}'|malformed"):
            await SessionContext(VICTIM, channel, token=token).initialize()
    assert await stored_state(server, owner) == before
    again = await SessionContext(VICTIM, channel, token=owner.token).initialize()
    assert await again.get_variable("api_key") == "s3cr3t"


async def test_the_same_requests_with_the_owners_token_do_act(server, channel, owner) -> None:
    """The control: what the tests above send would have changed the owner's data, had a token been accepted."""
    before = await stored_state(server, owner)
    methods = {m.name: m for m in guarded_methods()}
    for name in ("RegisterVariable", "SetVariable", "UpdateVariables", "StartOptimization", "DeleteVariable"):
        await invoke(channel, methods[name], request_for(methods[name], owner.token), ())
    assert await stored_state(server, owner) != before
    assert [v["name"] for v in await owner.list_variables()] == ["budget", "planted"]
