"""Atomic and non-atomic batches, revisions, and concurrent writers."""

from __future__ import annotations

import asyncio

import pytest

from bridge import SessionContext


@pytest.fixture
async def three(session: SessionContext) -> SessionContext:
    await session.register_variables(
        [
            {"name": "temperature", "type": "float", "initial_value": 0.7, "constraints": {"min": 0.0, "max": 2.0}},
            {"name": "max_tokens", "type": "integer", "initial_value": 256},
            {"name": "model", "type": "choice", "initial_value": "gpt-4", "constraints": {"choices": ["gpt-4", "x"]}},
        ]
    )
    return session


async def revision(session: SessionContext) -> int:
    return (await session.heartbeat())["revision"]


async def test_register_batch_takes_one_revision(three: SessionContext) -> None:
    assert await revision(three) == 1
    infos = await three.list_variables()
    assert {i["create_revision"] for i in infos} == {1}


async def test_atomic_batch_with_one_invalid_update_applies_nothing_and_consumes_no_revision(
    three: SessionContext,
) -> None:
    before = await three.get_variables(["temperature", "max_tokens", "model"])
    rev = await revision(three)

    results = await three.update_variables({"temperature": 0.9, "max_tokens": "many", "model": "x"}, atomic=True)

    assert results["max_tokens"].startswith("max_tokens: expected an int")
    assert results["temperature"].startswith("not applied: the atomic batch was rolled back")
    assert results["model"].startswith("not applied")
    assert await three.get_variables(["temperature", "max_tokens", "model"]) == before
    assert await revision(three) == rev
    assert {i["version"] for i in await three.list_variables()} == {1}


async def test_atomic_batch_success_is_one_revision(three: SessionContext) -> None:
    rev = await revision(three)
    assert await three.update_variables({"temperature": 0.9, "max_tokens": 10}) == {
        "temperature": True,
        "max_tokens": True,
    }
    assert await revision(three) == rev + 1
    infos = {i["name"]: i for i in await three.list_variables()}
    assert infos["temperature"]["mod_revision"] == infos["max_tokens"]["mod_revision"] == rev + 1


async def test_non_atomic_batch_applies_valid_updates_and_reports_each(three: SessionContext) -> None:
    rev = await revision(three)
    results = await three.update_variables(
        {"temperature": 5.0, "max_tokens": 512, "model": "x", "missing": 1}, metadata={"by": "test"}, atomic=False
    )
    assert results["max_tokens"] is True and results["model"] is True
    assert "above the maximum 2.0" in results["temperature"]
    assert "'missing' not found" in results["missing"]
    assert await three.get_variables(["temperature", "max_tokens", "model"]) == {
        "temperature": 0.7,
        "max_tokens": 512,
        "model": "x",
    }
    assert await revision(three) == rev + 2  # one revision per applied write
    [info] = await three.list_variables("max_tokens")
    assert info["last_update_metadata"] == {"by": "test"}


async def test_fifty_concurrent_sets_make_fifty_versions(session: SessionContext) -> None:
    await session.register_variable("counter", "integer", 0)
    await asyncio.gather(*(session.set_variable("counter", i, metadata={"writer": i}) for i in range(1, 51)))
    [info] = await session.list_variables("counter")
    assert info["version"] == 51
    assert info["stats"]["write_count"] == 51
    assert await revision(session) == 51


async def test_concurrent_sets_from_separate_clients_lose_nothing(session: SessionContext, new_session) -> None:
    await session.register_variable("counter", "integer", 0)
    peer = await SessionContext(session.session_id, session.channel, token=session.token).initialize()
    await asyncio.gather(*(s.set_variable("counter", i) for i in range(25) for s in (session, peer)))
    [info] = await session.list_variables("counter")
    assert info["version"] == 51


async def test_set_records_writer_and_metadata(session: SessionContext) -> None:
    await session.register_variable("t", "float", 0.1, metadata={"description": "demo", "owner": "team"})
    await session.set_variable("t", 0.2, metadata={"batch_num": 3})
    [info] = await session.list_variables("t")
    assert info["metadata"] == {"description": "demo", "owner": "team"}
    assert info["last_update_metadata"] == {"batch_num": 3}
    assert info["updated_by"] == session.session_id
    assert info["updated_at"] >= info["created_at"]


async def test_cleanup_deletes_the_session(session: SessionContext) -> None:
    await session.register_variable("t", "float", 0.1)
    assert await session.cleanup() == 1
    again = await SessionContext(session.session_id, session.channel).initialize()
    assert await again.list_variables() == []


async def test_idle_sessions_expire_after_their_ttl() -> None:
    from bridge import BridgeServer, SessionNotFoundError, connect

    now = [1_000_000.0]
    async with BridgeServer(session_ttl=60.0, clock=lambda: now[0]) as server, connect(server.address) as channel:
        idle = await SessionContext("idle", channel).initialize()
        busy = await SessionContext("busy", channel).initialize()
        await idle.register_variable("x", "integer", 1)
        now[0] += 50
        await busy.heartbeat()
        now[0] += 50  # idle: 100 s without a call; busy: 50 s
        assert await server.servicer.expire_sessions() == ["idle"]
        with pytest.raises(SessionNotFoundError, match="'idle' not found"):
            await idle.get_variable("x")
        assert (await busy.heartbeat())["revision"] == 0
        fresh = await SessionContext("idle", channel).initialize()  # the name is free again
        assert await fresh.list_variables() == []


async def test_register_variables_returns_ids_in_the_given_order(session: SessionContext) -> None:
    names = [f"v{i}" for i in range(20)][::-1]
    ids = await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in names])
    assert list(ids) == names
