"""Access control across sessions through a real server: rules, conditions, the owner's own rules, watches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from spec_examples import run_example

from bridge import SessionContext
from bridge.errors import AuthenticationError

WAIT = 5.0
NewSession = Callable[..., Awaitable[SessionContext]]

SPEC_RULES = [
    {"session_pattern": "any", "permissions": ["read"]},
    {"session_pattern": "admin_*", "permissions": ["read", "write", "optimize"]},
]


async def stored(session: SessionContext, name: str) -> tuple[Any, int]:
    [info] = await session.list_variables(name, include_values=True)
    return info["value"], info["version"]


async def test_the_cross_session_case(new_session: NewSession, channel: grpc.aio.Channel) -> None:
    owner = await new_session("owner")
    vid = await owner.register_variable("api_key", "string", "k-1", access_rules=SPEC_RULES)
    admin = await new_session("admin_1")
    user = await new_session("user_2")

    await admin.set_variable(vid, "k-2")
    assert await owner.get_variable("api_key", bypass_cache=True) == "k-2"
    assert await user.get_variable(vid) == "k-2"
    before = await stored(owner, "api_key")
    with pytest.raises(PermissionError, match="may not write variable 'api_key'") as denied:
        await user.set_variable(vid, "stolen")
    assert denied.value.details["rule"] == "write"
    with pytest.raises(PermissionError, match="may not write"):
        await user.rollback_variable(vid, 1)
    results = await user.update_variables({vid: "stolen"}, atomic=False)
    assert "may not write" in str(results[vid])
    rate = await owner.register_variable(
        "rate", "float", 0.5, constraints={"min": 0.0, "max": 1.0}, access_rules=SPEC_RULES
    )
    with pytest.raises(PermissionError, match="may not optimize"):
        await user.start_optimization(rate, "random", objective=lambda x: x)
    with pytest.raises(PermissionError, match="only session 'owner' may change"):
        await user.set_variable_permissions(vid, [{"session_pattern": "any", "permissions": ["write"]}])
    with pytest.raises(PermissionError, match="only session 'owner' may delete"):
        await user.delete_variable(vid)
    assert await user.check_variable_access(vid, "read") is True
    assert await user.check_variable_access(vid, "write") is False
    assert await admin.check_variable_access(vid, "optimize") is True
    assert await owner.check_variable_access("api_key", "write") is True

    # user_2 may read but not observe: its watch is refused; once it may observe, it sees writes
    with pytest.raises(PermissionError, match="may not observe"):
        watch = user.watch_variable(vid)
        await watch.started()
    # a client forging owner's session without its token is refused
    forged = SessionContext("owner", channel, token="owner:not-the-secret")
    with pytest.raises(AuthenticationError):
        await forged.initialize()
    assert await stored(owner, "api_key") == before  # none of the refused calls changed anything


async def test_a_watch_never_sends_what_its_session_may_not_observe(new_session: NewSession) -> None:
    owner = await new_session("owner")
    vid = await owner.register_variable(
        "config", "integer", 1, access_rules=[{"session_pattern": "user_*", "permissions": ["read", "observe"]}]
    )
    user = await new_session("user_2")
    watch = user.watch_variable(vid, include_initial=False)
    await watch.started()
    await owner.set_variable("config", 2)
    assert (await asyncio.wait_for(anext(watch), WAIT)).value == 2
    await owner.set_variable_permissions("config", [{"session_pattern": "user_*", "permissions": ["read"]}])
    await owner.set_variable("config", 3)  # not observable by user_2 any more: never sent
    await owner.set_variable_permissions("config", [{"session_pattern": "user_*", "permissions": ["read", "observe"]}])
    await owner.set_variable("config", 4)
    regranted = await asyncio.wait_for(anext(watch), WAIT)
    latest = await asyncio.wait_for(anext(watch), WAIT)
    # Versions 3 (observe revoked) and 4 (the write of 3 while hidden) were never sent; version 5
    # (observe granted again) is, with the value it carries, then the write of 4.
    assert [(u.version, u.value) for u in (regranted, latest)] == [(5, 3), (6, 4)]
    assert regranted.metadata == {"change": "permissions"}
    watch.close()


async def test_conditions_expiry_and_session_metadata(new_session: NewSession, channel: grpc.aio.Channel) -> None:
    owner = await new_session("owner")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    expired = await owner.register_variable(
        "expired",
        "integer",
        1,
        access_rules=[{"session_pattern": "any", "permissions": ["read"], "conditions": {"expires_at": past}}],
    )
    current = await owner.register_variable(
        "current",
        "integer",
        1,
        access_rules=[{"session_pattern": "any", "permissions": ["read"], "conditions": {"expires_at": future}}],
    )
    teams = await owner.register_variable(
        "teams",
        "integer",
        1,
        access_rules=[
            {"session_pattern": "any", "permissions": ["read"], "conditions": {"session_metadata.team": "ml"}}
        ],
    )
    ml = await SessionContext("member", channel, metadata={"team": "ml"}).initialize()
    other = await SessionContext("outsider", channel, metadata={"team": "web"}).initialize()
    with pytest.raises(KeyError):  # its only rule has expired: nothing is granted, so nothing is shown
        await ml.get_variable(expired)
    assert await ml.get_variable(current) == 1
    assert await ml.get_variable(teams) == 1
    with pytest.raises(KeyError):
        await other.get_variable(teams)
    with pytest.raises(ValueError, match="unknown access rule condition 'ip_range'"):
        await owner.set_variable_permissions(
            "teams", [{"session_pattern": "any", "permissions": ["read"], "conditions": {"ip_range": "10.0.0.0/8"}}]
        )
    with pytest.raises(ValueError, match="expires_at must be an ISO 8601 time"):
        await owner.set_variable_permissions(
            "teams", [{"session_pattern": "any", "permissions": ["read"], "conditions": {"expires_at": "soon"}}]
        )


async def test_the_owner_can_freeze_its_own_variable_read_only(session: SessionContext) -> None:
    await session.register_variable("tuned", "float", 0.7)
    me = session.session_id
    await session.set_variable_permissions("tuned", [{"session_pattern": me, "permissions": ["read", "observe"]}])
    with pytest.raises(PermissionError, match="may not write variable 'tuned'"):
        await session.set_variable("tuned", 0.9)  # the spec's read-only case
    assert "may not write" in str((await session.update_variables({"tuned": 0.9}))["tuned"])
    assert await session.get_variable("tuned") == 0.7
    assert await session.check_variable_access("tuned", "write") is False
    await session.set_variable_permissions("tuned", [])  # the owner may always change its rules
    await session.set_variable("tuned", 0.9)
    assert await session.get_variable("tuned") == 0.9


async def test_no_rule_means_private(new_session: NewSession) -> None:
    owner = await new_session("owner")
    vid = await owner.register_variable("secret", "string", "s")
    stranger = await new_session("stranger")
    # A session holding no permission at all is not even told the variable exists.
    for call in (
        stranger.get_variable(vid),
        stranger.get_variable_history(vid),
        stranger.get_variable_stats(vid),
        stranger.check_variable_access(vid, "read"),
        stranger.get_dependencies(vid),
    ):
        with pytest.raises(KeyError, match="not found") as missing:
            await call
        assert "secret" not in str(missing.value) and "owner" not in str(missing.value)


async def test_the_specs_permissions_example(session: SessionContext) -> None:
    await session.register_variable("api_key", "string", "k")
    await run_example("set_variable_permissions", session=session)
    [info] = await session.list_variables("api_key")
    assert [(r["session_pattern"], r["permissions"]) for r in info["access_rules"]] == [
        ("any", ["read"]),
        ("admin_*", ["read", "write", "optimize"]),
    ]
