"""get_variable_stats and get_variables(include_stats=True): the server's counts and this client's cache figures."""

from __future__ import annotations

import asyncio

import pytest
from helpers import other_client
from spec_examples import run_example

from bridge import SessionContext

STAT_KEYS = {
    "read_count",
    "write_count",
    "cache_hits",
    "cache_misses",
    "cache_hit_rate",
    "avg_read_latency_ms",
    "avg_write_latency_ms",
    "total_optimization_time_s",
}


async def test_one_variables_stats(session: SessionContext) -> None:
    vid = await session.register_variable("temperature", "float", 0.7)
    for _ in range(3):
        await session.get_variable("temperature")  # one miss, then two hits
    await session.get_variable(vid, bypass_cache=True)  # a server read by ID
    await session.set_variable("temperature", 0.8)
    await session.set_variable("temperature", 0.9)
    stats = await session.get_variable_stats("temperature")
    assert set(stats) == STAT_KEYS
    assert stats["read_count"] == 2  # the server served two reads; the hits never reached it
    assert stats["write_count"] == 3  # registration and two writes
    assert (stats["cache_hits"], stats["cache_misses"]) == (2, 2)
    assert stats["cache_hit_rate"] == pytest.approx(0.5)
    assert stats["avg_read_latency_ms"] > 0 and stats["avg_write_latency_ms"] > 0
    assert stats["total_optimization_time_s"] == 0.0
    assert await session.get_variable_stats(vid) == {**stats, "read_count": 3}  # by ID: that lookup is a read


async def test_reads_and_writes_of_other_clients_are_counted_by_the_server(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 0)
    b = await other_client(session)
    try:
        for value in range(4):
            await b.set_variable("x", value)
            await b.get_variable("x", bypass_cache=True)
        stats = await session.get_variable_stats("x")
        assert (stats["read_count"], stats["write_count"]) == (4, 5)  # B's, seen by A
        assert (stats["cache_hits"], stats["cache_misses"]) == (0, 0)  # A's own: it read nothing
        assert stats["avg_read_latency_ms"] == 0.0
    finally:
        await b.close()


async def test_the_sessions_stats_add_up(session: SessionContext) -> None:
    await session.register_variables([{"name": n, "type": "integer", "initial_value": 1} for n in ("a", "b")])
    for _ in range(3):
        await session.get_variables(["a", "b"])  # one batch miss, then two batch hits
    await session.set_variable("a", 2)
    overall = await session.get_variable_stats()
    assert set(overall) == STAT_KEYS | {"variables"}
    assert overall["variables"] == 2
    assert (overall["read_count"], overall["write_count"]) == (2, 3)
    assert (overall["cache_hits"], overall["cache_misses"]) == (4, 2)
    assert overall["cache_hit_rate"] == pytest.approx(4 / 6)


async def test_optimization_time_comes_from_the_server(session: SessionContext) -> None:
    await session.register_variable("x", "float", 0.5, constraints={"min": 0.0, "max": 1.0})
    await session.start_optimization("x", "random", max_iterations=5, objective=lambda x: -x, seed=1)
    await asyncio.wait_for(session.wait_optimization("x"), 30)
    assert (await session.get_variable_stats("x"))["total_optimization_time_s"] > 0


async def test_unknown_variable(session: SessionContext) -> None:
    with pytest.raises(KeyError, match="nope"):
        await session.get_variable_stats("nope")
    with pytest.raises(KeyError):
        await session.get_variable_stats("var_" + "0" * 24)


async def test_get_variables_with_stats_has_the_spec_shape(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7)
    for _ in range(3):
        await session.get_variable("temperature")
    info = await session.get_variables(["temperature"], include_metadata=True, include_stats=True)
    entry = info["temperature"]
    assert entry["value"] == 0.7 and isinstance(entry["metadata"], dict)
    assert set(entry["stats"]) >= STAT_KEYS
    assert entry["stats"]["read_count"] == 2  # the miss, and this call
    assert (entry["stats"]["cache_hits"], entry["stats"]["cache_misses"]) == (2, 2)


async def test_the_specs_stats_examples(session: SessionContext, capsys: pytest.CaptureFixture[str]) -> None:
    await session.register_variable("temperature", "float", 0.7)
    for _ in range(4):
        await session.get_variable("temperature")
    out = await run_example("get_variable_stats", session=session)
    assert "Cache hit rate: 75.00%" in capsys.readouterr().out
    assert out["overall"]["cache_hits"] == 3


async def test_the_specs_cache_config_examples(session: SessionContext) -> None:
    await run_example("set_cache_config", session=session)
    info = session.get_cache_info()
    assert (info["ttl"], info["max_size"], info["eviction_policy"]) == (5.0, 10000, "lru")
    assert {"size", "ttl", "hit_rate", "eviction_count"} <= set(info)
