"""The optional server-wide API key: creating a session needs it; resuming a live one with its token does not.

A caller without the key learns nothing about which sessions exist, creates nothing, and the key
never appears in a log record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from bridge import AuthenticationError, BridgeServer, SessionContext, connect

KEY = "k3y-0f-the-h0st"
WAIT = 10.0


class Clock:
    """A clock the test moves: session expiry without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keyed(clock: Clock) -> AsyncIterator[BridgeServer]:
    async with BridgeServer(api_key=KEY, session_ttl=60.0, clock=clock) as server:
        yield server


@pytest.fixture
async def channel(keyed: BridgeServer) -> AsyncIterator[grpc.aio.Channel]:
    async with connect(keyed.address) as ch:
        yield ch


async def test_the_right_key_creates_a_session(channel: grpc.aio.Channel) -> None:
    async with SessionContext("worker", channel, api_key=KEY, timeout=WAIT) as session:
        await session.register_variable("x", "integer", 1)
        assert await session.get_variable("x") == 1


async def test_a_missing_or_wrong_key_is_refused_with_a_clear_error_and_creates_nothing(
    keyed: BridgeServer, channel: grpc.aio.Channel
) -> None:
    with pytest.raises(AuthenticationError, match="requires an API key to create sessions; pass SessionContext"):
        await SessionContext("worker", channel, timeout=WAIT).initialize()
    for wrong in ("k3y", KEY + "!", KEY.upper(), "x" * 10_000):
        with pytest.raises(AuthenticationError, match="cannot create session 'worker': invalid API key") as info:
            await SessionContext("worker", channel, api_key=wrong, timeout=WAIT).initialize()
        assert info.value.details["rule"] == "api_key_invalid"
    assert await keyed.store.session_ids() == []


async def test_resuming_a_live_session_with_its_token_needs_no_key(channel: grpc.aio.Channel) -> None:
    first = await SessionContext("shared", channel, api_key=KEY).initialize()
    await first.register_variable("x", "integer", 1)
    other = await SessionContext("shared", channel, token=first.token).initialize()  # e.g. another process
    assert await other.get_variable("x") == 1


async def test_without_the_key_a_caller_cannot_tell_which_sessions_exist(
    keyed: BridgeServer, channel: grpc.aio.Channel
) -> None:
    owner = await SessionContext("owner", channel, api_key=KEY).initialize()
    forged = f"owner:{'A' * 43}"
    answers = []
    for session_id in ("owner", "nobody"):
        for token in (None, forged.replace("owner", session_id)):
            with pytest.raises(AuthenticationError) as info:
                await SessionContext(session_id, channel, token=token).initialize()
            answers.append(info.value.details["rule"])
    assert answers == ["api_key_missing"] * 4
    assert await keyed.store.session_ids() == ["owner"]
    # With the key, the usual answers: the session exists, the token is wrong.
    with pytest.raises(AuthenticationError, match="already exists; pass its token"):
        await SessionContext("owner", channel, api_key=KEY).initialize()
    with pytest.raises(AuthenticationError, match="invalid token for session 'owner'"):
        await SessionContext("owner", channel, token=forged, api_key=KEY).initialize()
    assert await owner.heartbeat()


async def test_re_creating_an_expired_session_needs_the_key(channel: grpc.aio.Channel, clock: Clock) -> None:
    first = await SessionContext("short_lived", channel, api_key=KEY).initialize()
    clock.now += 120.0  # past the 60 s TTL
    with pytest.raises(AuthenticationError, match="requires an API key"):
        await SessionContext("short_lived", channel, token=first.token).initialize()
    again = await SessionContext("short_lived", channel, token=first.token, api_key=KEY).initialize()
    assert again.token != first.token  # a new session, with a new token


async def test_the_key_is_never_logged(channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dspex")
    await SessionContext("logged", channel, api_key=KEY).initialize()
    with pytest.raises(AuthenticationError):
        await SessionContext("refused", channel, api_key=KEY + "wrong").initialize()
    assert any(record.getMessage() == "session refused" for record in caplog.records)
    for record in caplog.records:
        assert "k3y" not in f"{record.getMessage()} {record.__dict__}"


def test_an_empty_or_huge_key_is_refused_at_construction() -> None:
    for key in ("", "k" * 5000):
        with pytest.raises(ValueError, match="api_key must be 1 to 4096 characters"):
            BridgeServer(api_key=key)
