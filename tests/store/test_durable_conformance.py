"""What a durable backend keeps across a restart: a store reopened on the same data finds all of it.

Each test writes through one store, closes it (a server stopping), opens another on the same
data (the server starting again) and reads everything back, then goes on writing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from store_backends import Backend, durable_fixture  # noqa: F401 (the durable fixture)
from store_samples import full_run, full_session, full_trial, full_variable
from test_conformance import bump, create, new_session, plus_one, summary, unstored
from test_optimization_conformance import run

from bridge.errors import RevisionCompactedError
from bridge.limits import Limits
from bridge.store import LogEntry, Store, Transaction, VariableRecord

LIMITS = Limits(max_history_per_variable=3, max_event_log_entries=5, max_optimization_runs=3)


async def reopened(durable: Backend, tmp_path: Path, store: Store, limits: Limits = LIMITS) -> Store:
    await store.close()
    return durable.open(tmp_path, limits)


async def test_sessions_variables_history_and_the_log_survive(durable: Backend, tmp_path: Path) -> None:
    store = durable.open(tmp_path, LIMITS)
    now = time.time()
    assert await store.create_session(full_session("s_full", now))
    await store.touch_session("s_full", now + 30)
    sid = await new_session(store, "s1")
    await create(store, sid, a=0, b=10)
    for _ in range(4):
        await bump(store, sid, "a")
    await store.update(sid, "b", plus_one)
    a = await store.get_variable(sid, "a")
    before = {
        "session": await store.get_session("s_full"),
        "variables": await store.list_variables(sid),
        "history": await store.history(a.id),
        "log": await store.event_log(sid, 2, 100),
        "revision": await store.revision(sid),
        "ids": sorted(await store.session_ids()),
        "store_id": store.store_id,
    }
    store = await reopened(durable, tmp_path, store)
    after = {
        "session": await store.get_session("s_full"),
        "variables": await store.list_variables(sid),
        "history": await store.history(a.id),
        "log": await store.event_log(sid, 2, 100),
        "revision": await store.revision(sid),
        "ids": sorted(await store.session_ids()),
        "store_id": store.store_id,
    }
    assert after == before  # the log's history_id included: a resumed watch reads on
    assert before["session"].expires_at == now + 30 + 120.0
    assert [h.version for h in after["history"]] == [5, 4, 3]
    with pytest.raises(RevisionCompactedError):
        await store.event_log(sid, 1, 10)  # 6 writes: the log keeps 5, from revision 2

    seen: list[LogEntry | None] = []
    store.listen(sid, seen.append)
    await bump(store, sid, "a")  # writing goes on at the next revision, to listeners as before
    assert [summary(e) for e in seen] == [(7, [("a", 4, 5, "w")])]  # type: ignore[arg-type]
    assert (await store.event_log(sid, 3, 100)).entries[-1] == seen[-1]
    await store.close()


async def test_every_field_survives(durable: Backend, tmp_path: Path) -> None:
    store = durable.open(tmp_path, LIMITS)
    now = time.time()
    assert await store.create_session(full_session("s_full", now))

    async def body(txn: Transaction) -> VariableRecord:
        full = full_variable("s_full", txn.revision, txn.now)
        txn.put(full)
        return full

    full, _ = await store.transact("s_full", body)
    assert await store.claim_optimization(full_run("s_full", full.id, now), now) is None
    await store.add_trial(full_trial("opt_full", now))
    store = await reopened(durable, tmp_path, store)
    assert await store.get_session("s_full") == full_session("s_full", now)
    assert await store.get_variable("s_full", "full") == full
    assert (await store.event_log("s_full", 1, 1)).entries[0].changes[0].new == full
    assert await store.get_optimization("opt_full") == full_run("s_full", full.id, now)
    assert await store.trials("opt_full") == [full_trial("opt_full", now)]
    await store.close()


async def test_stats_survive(durable: Backend, tmp_path: Path) -> None:
    store = durable.open(tmp_path, LIMITS)
    sid = await new_session(store)
    await create(store, sid, a=1)
    a = await store.get_variable(sid, "a")
    await store.count_reads([a.id, a.id, a.id])
    await bump(store, sid, "a")
    now = time.time()
    await store.claim_optimization(run("opt_a", a.id, now=now - 4), now - 4)
    await store.update_optimization("opt_a", lambda r: r._replace(state="completed", ended_at=now))
    before = await store.stats(a.id)
    store = await reopened(durable, tmp_path, store)
    assert await store.stats(a.id) == before
    assert (before.read_count, before.write_count, before.optimization_time_s) == (3, 2, pytest.approx(4.0))
    await store.close()


async def test_a_lease_of_a_dead_client_still_lapses(durable: Backend, tmp_path: Path) -> None:
    store = durable.open(tmp_path, LIMITS)
    now = time.time()
    await new_session(store)
    assert await store.claim_optimization(run("opt_a", "v1", now=now, ttl=5.0), now) is None
    store = await reopened(durable, tmp_path, store)
    [running] = await store.live_optimizations()
    assert running.id == "opt_a" and running.live(now + 1)  # still held after the restart
    holder = await store.claim_optimization(run("opt_b", "v1", now=now + 1), now + 1)
    assert holder is not None and holder.id == "opt_a"
    assert await store.claim_optimization(run("opt_b", "v1", now=now + 6), now + 6) is None  # lapsed: free
    await store.close()


async def test_retention_goes_on_where_it_was(durable: Backend, tmp_path: Path) -> None:
    store = durable.open(tmp_path, LIMITS)
    sid = await new_session(store)
    await create(store, sid, a=0)
    for _ in range(3):
        await bump(store, sid, "a")
    store = await reopened(durable, tmp_path, store)
    for _ in range(5):
        await bump(store, sid, "a")
    a = await store.get_variable(sid, "a")
    assert [h.version for h in await store.history(a.id)] == [9, 8, 7]
    log = await store.event_log(sid, 5, 100)
    assert (log.oldest_revision, [e.revision for e in log.entries]) == (5, [5, 6, 7, 8, 9])
    assert unstored(log.entries[0].changes[0].old.value) == 3  # an old version the history no longer keeps
    await store.close()


async def test_a_deleted_session_stays_deleted(durable: Backend, tmp_path: Path) -> None:
    store = durable.open(tmp_path, LIMITS)
    sid = await new_session(store)
    await create(store, sid, a=1)
    a = await store.get_variable(sid, "a")
    first = (await store.event_log(sid, 1, 10)).history_id
    await store.claim_optimization(run("opt_a", a.id), time.time())
    assert await store.delete_session(sid) == 1
    store = await reopened(durable, tmp_path, store)
    assert await store.get_session(sid) is None and await store.get_variable_by_id(a.id) is None
    assert await store.history(a.id) == [] and await store.get_optimization("opt_a") is None
    await new_session(store, sid)
    assert (await store.event_log(sid, 1, 10)).history_id != first
    await store.close()
