"""The export half of the store contract (snapshots with history and runs, restored variables), for every backend."""

from __future__ import annotations

import asyncio
import time

import pytest
from store_backends import backend_fixture, store_fixture  # noqa: F401 (the backend fixture)
from test_conformance import bump, create, new_session, record, stored, unstored

from bridge.errors import SessionNotFoundError
from bridge.limits import Limits
from bridge.store import OptimizationRecord, Store, Transaction, TrialRecord, VariableRecord

LIMITS = Limits(max_history_per_variable=4, max_event_log_entries=50)

store = store_fixture(LIMITS)


def _run(run_id: str, variable_ids: tuple[str, ...], now: float) -> OptimizationRecord:
    return OptimizationRecord(
        id=run_id,
        session_id="s1",
        optimizer_type="tpe",
        variable_ids=variable_ids,
        variable_names=tuple(f"n{v}" for v in variable_ids),
        config={},
        max_iterations=5,
        convergence_threshold=0.0,
        direction="maximize",
        metric="",
        seed=None,
        state="completed",
        started_at=now,
        last_update=now,
        lease_ttl=10.0,
        lease_expires_at=now,
        initial_values={},
        ended_at=now,
    )


async def test_a_snapshot_selects_by_name_sorted_at_the_revision(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, b=2, a=1, c=3)
    await bump(store, sid, "b")
    snap = await store.export_snapshot(sid, lambda name: name != "c")
    assert snap.revision == 2
    assert [(r.name, unstored(r.value), r.version) for r in snap.variables] == [("a", 1, 1), ("b", 3, 2)]
    assert sorted(snap.names.values()) == ["a", "b", "c"]  # every variable, for naming dependencies
    assert (snap.history, snap.runs, snap.trials) == ({}, [], {})
    assert [r.name for r in (await store.export_snapshot(sid)).variables] == ["a", "b", "c"]


async def test_a_snapshot_with_history_has_earlier_versions_and_runs_once(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=10)
    for _ in range(5):
        await bump(store, sid, "a")
    a, b = (await store.export_snapshot(sid)).variables
    now = time.time()
    for run_id, ids in (("opt_1", (a.id, b.id)), ("opt_2", (b.id,))):
        assert await store.claim_optimization(_run(run_id, ids, now), now) is None
        await store.add_trial(TrialRecord(run_id, 1, {"x": 1}, 0.5, {}, now))
    snap = await store.export_snapshot(sid, include_history=True)
    assert [unstored(r.value) for r in snap.history[a.id]] == [3, 4, 5]  # retention 4: three before the current
    assert snap.history[b.id] == []
    assert [r.id for r in snap.runs] == ["opt_1", "opt_2"]  # by variable in name order, each run once
    assert [t.iteration for t in snap.trials["opt_1"]] == [1]


async def test_a_snapshot_is_one_state_while_writes_go_on(store: Store) -> None:
    sid = await new_session(store)
    names = [chr(ord("a") + i) for i in range(20)]  # create() derives IDs from names: no v1 and v10
    await create(store, sid, **dict.fromkeys(names, 0))

    async def write_all(value: int) -> None:
        async def body(txn: Transaction) -> None:
            for name in names:
                current = await txn.get(name)
                assert current is not None
                txn.put(current.next_version(stored(value), txn.revision, txn.now, "w", {}))
                await asyncio.sleep(0)  # let a snapshot try to run in between

        await store.transact(sid, body)

    writers = [asyncio.create_task(write_all(i)) for i in range(1, 30)]
    snaps = []
    while not all(w.done() for w in writers):
        snaps.append(await store.export_snapshot(sid))
        await asyncio.sleep(0)
    await asyncio.gather(*writers)
    for snap in snaps:
        assert len({unstored(r.value) for r in snap.variables}) == 1
        assert {r.mod_revision for r in snap.variables} <= {snap.revision}


async def test_restore_creates_a_variable_with_its_earlier_versions(store: Store) -> None:
    sid = await new_session(store)

    async def body(txn: Transaction) -> VariableRecord:
        current = record(txn, sid, "x", 30)._replace(version=7)
        earlier = [current._replace(version=v, value=stored(v * 10), updated_by="old") for v in (2, 5, 6)]
        txn.restore(current, earlier)
        return current

    current, revision = await store.transact(sid, body)
    assert revision == 1
    history = await store.history(current.id)
    assert [(r.version, unstored(r.value), r.updated_by) for r in history] == [
        (7, 30, sid),
        (6, 60, "old"),
        (5, 50, "old"),
        (2, 20, "old"),
    ]
    log = await store.event_log(sid, 1, 10)
    [entry] = log.entries
    assert [(c.old, c.new) for c in entry.changes] == [(None, current)]  # one creation, at its version
    assert (await store.get_variable(sid, "x")) == current


async def test_restore_keeps_within_the_retention_and_refuses_an_existing_variable(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)

    async def body(txn: Transaction) -> str:
        current = record(txn, sid, "x", 9)._replace(version=9)
        txn.restore(current, [current._replace(version=v, value=stored(v)) for v in range(1, 9)])
        existing = await txn.get("a")
        assert existing is not None
        with pytest.raises(ValueError, match="creates variables"):
            txn.restore(existing, [])
        return current.id

    vid, _ = await store.transact(sid, body)
    assert [r.version for r in await store.history(vid)] == [9, 8, 7, 6]


async def test_a_failed_restore_changes_nothing(store: Store) -> None:
    sid = await new_session(store)

    async def body(txn: Transaction) -> None:
        current = record(txn, sid, "x", 1)._replace(version=3)
        txn.restore(current, [current._replace(version=1)])
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await store.transact(sid, body)
    assert await store.get_variable(sid, "x") is None
    assert await store.revision(sid) == 0


async def test_a_snapshot_of_an_unknown_session_is_refused(store: Store) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.export_snapshot("nobody")


async def test_a_variable_restored_after_its_deletion_has_only_the_restored_history(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, x=0)
    for _ in range(3):
        await bump(store, sid, "x")
    x = await store.get_variable(sid, "x")

    async def delete_x(txn: Transaction) -> None:
        txn.delete(await txn.get("x"))

    await store.transact(sid, delete_x)

    async def restore_x(txn: Transaction) -> None:  # an import of an export taken before the deletion
        current = x._replace(version=2, value=stored(20), mod_revision=txn.revision)
        txn.restore(current, [current._replace(version=1, value=stored(10))])

    await store.transact(sid, restore_x)
    assert [(r.version, unstored(r.value)) for r in await store.history(x.id)] == [(2, 20), (1, 10)]
    deleted, restored = (await store.event_log(sid, 5, 10)).entries
    assert (unstored(deleted.changes[0].old.value), deleted.changes[0].new) == (3, None)
    assert (restored.changes[0].old, unstored(restored.changes[0].new.value)) == (None, 20)
    await bump(store, sid, "x")
    assert [r.version for r in await store.history(x.id)] == [3, 2, 1]
