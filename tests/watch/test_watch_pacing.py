"""Throttle, debounce and reconnect backoff: exact on a fake clock (they are pure), and end to end on real time."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime

from watch_support import take, until

from bridge import SessionContext, VariableUpdate
from bridge.client._backoff import Backoff
from bridge.client._pacing import Debounce, Pipeline, Throttle, coalesce


def update(name: str, value: int, revision: int, kind: str = "update", old: int | None = None) -> VariableUpdate:
    return VariableUpdate(
        variable_id=f"id_{name}",
        name=name,
        value=value,
        old_value=value - 1 if old is None else old,
        metadata={},
        timestamp=datetime.now(UTC),
        source="s",
        version=value + 1,
        revision=revision,
        kind=kind,  # type: ignore[arg-type]
    )


def seen(updates: list[VariableUpdate]) -> list[tuple[str, int, int]]:
    return [(u.name, u.old_value, u.value) for u in updates]


def test_throttle_emits_the_first_at_once_and_the_latest_when_the_window_closes() -> None:
    throttle = Throttle(1.0)
    assert seen(throttle.offer(update("a", 1, 1), now=0.0)) == [("a", 0, 1)]
    assert throttle.offer(update("a", 2, 2), now=0.2) == []
    assert throttle.offer(update("a", 3, 3), now=0.5) == []
    assert throttle.deadline() == 1.0
    assert throttle.due(0.99) == []
    assert seen(throttle.due(1.0)) == [("a", 1, 3)]  # the latest value, from the last one emitted
    assert throttle.deadline() is None
    assert throttle.offer(update("a", 4, 4), now=1.5) == []  # within the new window
    assert seen(throttle.due(2.0)) == [("a", 3, 4)]
    assert seen(throttle.offer(update("a", 5, 5), now=3.5)) == [("a", 4, 5)]  # a quiet window: at once


def test_throttle_is_per_variable() -> None:
    throttle = Throttle(1.0)
    assert len(throttle.offer(update("a", 1, 1), 0.0)) == 1
    assert len(throttle.offer(update("b", 1, 2), 0.1)) == 1
    throttle.offer(update("b", 2, 3), 0.2)
    throttle.offer(update("a", 2, 4), 0.3)
    assert throttle.deadline() == 1.0
    assert seen(throttle.due(1.0)) == [("a", 1, 2)]
    assert seen(throttle.due(1.1)) == [("b", 1, 2)]


def test_debounce_waits_for_quiet_then_emits_the_latest_of_each_changed_variable() -> None:
    debounce = Debounce(0.5)
    assert seen(debounce.offer(update("q", 1, 1, kind="initial"), 0.0)) == [("q", 0, 1)]  # nothing to settle
    for t, (name, value, revision) in enumerate([("q", 2, 2), ("f", 1, 3), ("q", 3, 4)]):
        assert debounce.offer(update(name, value, revision), now=t * 0.4) == []
    assert debounce.deadline() == 0.8 + 0.5
    assert debounce.due(1.29) == []
    assert seen(debounce.due(1.3)) == [("f", 0, 1), ("q", 1, 3)]  # by revision of their latest change
    assert debounce.deadline() is None and debounce.due(10.0) == []


def test_debounce_then_throttle() -> None:
    pipeline = Pipeline([Debounce(0.5), Throttle(1.0)])
    pipeline.offer(update("a", 1, 1), 0.0)
    assert seen(pipeline.due(0.5)) == [("a", 0, 1)]
    pipeline.offer(update("a", 2, 2), 0.6)
    assert pipeline.due(1.1) == []  # settled, but throttled until 1.5
    assert pipeline.deadline() == 1.5
    assert seen(pipeline.due(1.5)) == [("a", 1, 2)]


def test_coalescing_keeps_a_resync_visible_and_a_delete_final() -> None:
    resync = update("a", 5, 5, kind="resync", old=1)
    assert coalesce(resync, update("a", 6, 6)).kind == "resync"
    assert coalesce(update("a", 6, 6), update("a", 0, 7, kind="delete")).kind == "delete"
    assert coalesce(None, resync) is resync


async def test_a_throttled_watch_always_delivers_the_final_value(session: SessionContext) -> None:
    await session.register_variable("metrics", "integer", 0)
    watch = session.watch_variable("metrics", throttle_ms=200)
    [initial] = await take(watch, 1)
    started = time.monotonic()
    for value in range(1, 31):
        await session.set_variable("metrics", value)
    updates = await until(watch, lambda u: u.value == 30)
    elapsed = time.monotonic() - started
    assert [u.value for u in updates] == sorted(u.value for u in updates)
    assert len(updates) <= elapsed / 0.2 + 2  # at most one per window, plus the one closing it
    assert len(updates) < 30
    assert updates[0].old_value == initial.value  # each emission reads from the one before it
    assert all(later.old_value == earlier.value for earlier, later in itertools.pairwise(updates))
    watch.close()


async def test_a_debounced_watch_emits_once_after_changes_settle(session: SessionContext) -> None:
    await session.register_variables(
        [{"name": n, "type": "integer", "initial_value": 0} for n in ("query", "filters", "sentinel")]
    )
    watch = session.watch_variables(["query", "filters", "sentinel"], include_initial=False, debounce_ms=300)
    await watch.started()
    await asyncio.gather(*(session.set_variable("query", v) for v in range(1, 11)))
    [settled] = await take(watch, 1)
    assert (settled.name, settled.old_value) == ("query", 0)
    assert settled.value == (await session.get_variable("query"))
    await session.set_variable("sentinel", 1)
    [after] = await take(watch, 1)  # the next emission is the sentinel: query was emitted once
    assert after.name == "sentinel"
    watch.close()


def test_reconnect_backoff_doubles_with_jitter_up_to_its_cap_and_resets() -> None:
    lowest = Backoff(base=0.1, cap=1.0, rng=lambda: 0.0)
    assert [round(lowest.next_delay(), 3) for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    highest = Backoff(base=0.1, cap=1.0, rng=lambda: 0.999999)
    assert [round(highest.next_delay(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    highest.reset()
    assert round(highest.next_delay(), 3) == 0.1
