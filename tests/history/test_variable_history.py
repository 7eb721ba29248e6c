"""Version history and rollback through a real server: newest first, pages, retention, rollback as a new version."""

from __future__ import annotations

from datetime import datetime

import pytest
from helpers import other_client
from spec_examples import run_example

from bridge import BridgeServer, Limits, SessionContext, connect


async def test_history_is_newest_first_with_the_specs_fields(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.1)
    for i, value in enumerate((0.2, 0.3, 0.4), start=1):
        await session.set_variable("temperature", value, metadata={"iteration": i})
    history = await session.get_variable_history("temperature")
    assert [h["version"] for h in history] == [4, 3, 2, 1]
    assert [h["value"] for h in history] == [0.4, 0.3, 0.2, 0.1]
    assert history[0]["metadata"] == {"iteration": 3}  # ints stay ints
    assert isinstance(history[0]["updated_at"], datetime) and history[0]["updated_by"] == session.session_id
    assert (history.current_version, history.oldest_version, history.kept) == (4, 1, 4)
    bare = await session.get_variable_history("temperature", include_metadata=False)
    assert "metadata" not in bare[0]


async def test_pagination_with_limit_and_offset(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 1)
    for value in range(2, 11):
        await session.set_variable("x", value)
    pages = [await session.get_variable_history("x", limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [[h["version"] for h in page] for page in pages] == [[10, 9, 8], [7, 6, 5], [4, 3, 2], [1]]
    assert await session.get_variable_history("x", limit=3, offset=10) == []
    with pytest.raises(ValueError, match="limit must be in"):
        await session.get_variable_history("x", limit=0 - 1)


async def test_rollback_after_five_versions_makes_version_six(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.5)
    for value in (0.6, 0.7, 0.8, 0.9):
        await session.set_variable("temperature", value)
    assert await session.get_variable("temperature") == 0.9  # cached: the rollback must not leave it stale
    await session.rollback_variable("temperature", version=2, reason="optimization_diverged")
    assert await session.get_variable("temperature") == 0.6
    [latest] = await session.get_variable_history("temperature", limit=1)
    assert latest["version"] == 6 and latest["value"] == 0.6
    assert latest["metadata"] == {
        "rollback_from_version": 5,
        "rollback_to_version": 2,
        "rollback_reason": "optimization_diverged",
    }
    assert len(await session.get_variable_history("temperature")) == 6  # history only grows


async def test_rollback_to_an_unknown_version_names_the_oldest_kept(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 1)
    await session.set_variable("x", 2)
    with pytest.raises(ValueError, match=r"version 7 is not kept \(versions 1\.\.2 are\)"):
        await session.rollback_variable("x", version=7)
    assert await session.get_variable("x", bypass_cache=True) == 2


async def test_retention_drops_the_oldest_and_reports_it() -> None:
    server = await BridgeServer(limits=Limits(max_history_per_variable=3)).start()
    try:
        async with connect(server.address) as channel:
            session = await SessionContext("retained", channel).initialize()
            await session.register_variable("x", "integer", 1)
            for value in range(2, 7):
                await session.set_variable("x", value)
            history = await session.get_variable_history("x")
            assert [h["version"] for h in history] == [6, 5, 4]
            assert (history.current_version, history.oldest_version, history.kept) == (6, 4, 3)
            with pytest.raises(ValueError, match=r"version 2 is not kept \(versions 4\.\.6 are\)") as info:
                await session.rollback_variable("x", version=2)
            assert info.value.details["oldest_version"] == "4"
            await session.close()
    finally:
        await server.stop(1)


async def test_retention_by_age_keeps_the_current_version() -> None:
    server = await BridgeServer(limits=Limits(max_history_age_seconds=1e-9)).start()
    try:
        async with connect(server.address) as channel:
            session = await SessionContext("aged", channel).initialize()
            await session.register_variable("x", "integer", 1)
            for value in range(2, 5):
                await session.set_variable("x", value)
            history = await session.get_variable_history("x")
            assert [h["version"] for h in history] == [4] and history.oldest_version == 4
            await session.close()
    finally:
        await server.stop(1)


async def test_another_session_needs_read_for_history_and_write_for_rollback(
    session: SessionContext, new_session: object
) -> None:
    vid = await session.register_variable(
        "shared", "integer", 1, access_rules=[{"session_pattern": "reader_*", "permissions": ["read"]}]
    )
    await session.set_variable("shared", 2)
    reader = await new_session("reader_1")  # type: ignore[operator]
    stranger = await new_session("stranger")  # type: ignore[operator]
    assert [h["value"] for h in await reader.get_variable_history(vid)] == [2, 1]
    with pytest.raises(PermissionError, match="may not write"):
        await reader.rollback_variable(vid, version=1)
    with pytest.raises(KeyError, match="not found"):  # no permission at all: not even told it exists
        await stranger.get_variable_history(vid)
    assert await session.get_variable("shared", bypass_cache=True) == 2
    b = await other_client(session)
    await b.rollback_variable("shared", version=1)  # a client of the owner session: allowed
    assert await session.get_variable("shared", bypass_cache=True) == 1


async def test_the_specs_rollback_example(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.1)
    for value in (0.2, 0.3, 0.4, 0.5, 0.6):
        await session.set_variable("temperature", value)
    await run_example("rollback_variable", session=session)
    history = await session.get_variable_history("temperature", limit=1)
    assert history[0]["value"] == 0.5 and history[0]["metadata"]["rollback_reason"] == "optimization_diverged"


async def test_dspex_serve_takes_the_retention_as_options() -> None:
    from bridge.server import serve_process

    with serve_process(("--port", "0", "--history-versions", "2")) as proc:
        async with connect(proc.address) as channel:
            session = await SessionContext("cli_retention", channel).initialize()
            await session.register_variable("x", "integer", 1)
            for value in (2, 3, 4):
                await session.set_variable("x", value)
            history = await session.get_variable_history("x")
            assert [h["version"] for h in history] == [4, 3] and history.oldest_version == 3
            await session.close()
