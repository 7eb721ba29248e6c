"""What another session may learn and do stays within what the rules grant it: found in review."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from bridge import SessionContext

NewSession = Callable[..., Awaitable[SessionContext]]
READ = [{"session_pattern": "any", "permissions": ["read"]}]


async def test_another_session_sees_neither_rules_nor_edges(new_session: NewSession) -> None:
    owner = await new_session("owner")
    await owner.register_variable("base", "float", 1.0)
    rules = [
        {"session_pattern": "any", "permissions": ["read"]},
        {"session_pattern": "any", "permissions": ["write"], "conditions": {"session_metadata.team": "core-7f3a"}},
    ]
    vid = await owner.register_variable("cfg", "float", 0.5, dependencies=["base"], access_rules=rules)
    reader = await new_session("reader")
    [info] = (await reader.get_variables([vid], include_metadata=True)).values()
    assert info["access_rules"] == [] and info["dependencies"] == []  # the condition's value stays secret
    [own] = await owner.list_variables("cfg")
    assert len(own["access_rules"]) == 2 and len(own["dependencies"]) == 1


async def test_a_runs_status_needs_read_on_all_its_variables(new_session: NewSession) -> None:
    owner = await new_session("owner")
    ids = await owner.register_variables(
        [
            {
                "name": "lr",
                "type": "float",
                "initial_value": 0.1,
                "constraints": {"min": 0.0, "max": 1.0},
                "access_rules": READ,
            },
            {"name": "secret_weight", "type": "float", "initial_value": 0.123, "constraints": {"min": 0.0, "max": 1.0}},
        ]
    )
    await owner.start_optimization(["lr", "secret_weight"], "random", max_iterations=3, objective=lambda c: 1.0, seed=0)
    await asyncio.wait_for(owner.wait_optimization("lr"), 30)
    stranger = await new_session("stranger")
    for call in (
        stranger.get_optimization_status(ids["lr"]),
        stranger.get_optimization_history(ids["lr"]),
        stranger.wait_optimization(ids["lr"]),
    ):
        with pytest.raises(PermissionError, match="may not read every variable"):
            await call


async def test_a_run_stops_writing_once_its_optimize_permission_is_revoked(new_session: NewSession) -> None:
    owner = await new_session("owner")
    vid = await owner.register_variable(
        "t",
        "float",
        1.0,
        constraints={"min": 0.0, "max": 2.0},
        access_rules=[{"session_pattern": "tuner_*", "permissions": ["read", "optimize"]}],
    )
    tuner = await new_session("tuner_1")
    revoked = asyncio.Event()
    calls = 0

    async def objective(x: float) -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            await owner.set_variable_permissions("t", [{"session_pattern": "tuner_*", "permissions": ["read"]}])
            revoked.set()
        return x

    await tuner.start_optimization(vid, "random", max_iterations=20, objective=objective, seed=0)
    status = await asyncio.wait_for(tuner.wait_optimization(vid), 30)
    assert revoked.is_set() and status["state"] == "failed" and status["iteration"] <= 1
    history = await owner.get_variable_history("t")
    assert not any(h["updated_by"].startswith("opt_") for h in history[:1])  # nothing written after the revocation


async def test_the_owner_can_always_change_its_rules(session: SessionContext) -> None:
    await session.register_variable("frozen", "float", 0.7)
    me = session.session_id
    await session.set_variable_permissions("frozen", [{"session_pattern": me, "permissions": ["write"]}])
    with pytest.raises(PermissionError):
        await session.get_variable("frozen", bypass_cache=True)
    await session.set_variable_permissions("frozen", [])  # even with its own read withdrawn
    assert await session.get_variable("frozen") == 0.7


async def test_an_expired_freeze_lifts(session: SessionContext) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await session.register_variable(
        "tuned",
        "float",
        0.7,
        access_rules=[
            {"session_pattern": session.session_id, "permissions": ["read"], "conditions": {"expires_at": past}}
        ],
    )
    await session.set_variable("tuned", 0.8)  # the freeze's time is up: the owner holds everything again
    assert await session.get_variable("tuned") == 0.8


async def test_a_value_the_owner_may_not_read_is_listed_without_it(session: SessionContext) -> None:
    await session.register_variable("hidden", "string", "s3cret")
    await session.set_variable_permissions(
        "hidden", [{"session_pattern": session.session_id, "permissions": ["write"]}]
    )
    [info] = await session.list_variables("hidden", include_values=True)
    assert "value" not in info


async def test_a_stranger_cannot_use_up_the_owners_watch_quota(new_session: NewSession) -> None:
    from bridge import BridgeServer, Limits, connect

    server = await BridgeServer(limits=Limits(max_watches_per_session=2)).start()
    try:
        async with connect(server.address) as channel:
            owner = await SessionContext("owner", channel).initialize()
            vid = await owner.register_variable(
                "x", "integer", 0, access_rules=[{"session_pattern": "any", "permissions": ["read", "observe"]}]
            )
            stranger = await SessionContext("stranger", channel).initialize()
            watches = [stranger.watch_variable(vid) for _ in range(2)]
            for watch in watches:
                await watch.started()
            with pytest.raises(ValueError, match="opened by session 'stranger'"):
                await stranger.watch_variable(vid).started()
            mine = owner.watch_variable("x")  # the owner's own quota is untouched
            assert await mine.started() >= 1
            for watch in (*watches, mine):
                watch.close()
    finally:
        await server.stop(1)


async def test_a_resumed_watch_replays_only_what_may_be_observed_now(new_session: NewSession) -> None:
    from bridge._proto import bridge_pb2 as pb

    owner = await new_session("owner")
    await owner.register_variable(
        "x", "string", "v0", access_rules=[{"session_pattern": "user_*", "permissions": ["read", "observe"]}]
    )
    await owner.set_variable("x", "secret-1")
    await owner.set_variable_permissions("x", [])  # observe revoked for everyone
    user = await new_session("user_2")
    request = pb.WatchRequest(refs=["x"], session_id="owner", from_revision=1)
    call = user._watch_rpc()(request, metadata=(("authorization", f"Bearer {user.token}"),))
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # nothing it may observe now: like an unknown session
        async for _ in call:
            pass
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
