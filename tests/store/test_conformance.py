"""The store contract. Every backend runs this same suite: add it to BACKENDS in store_backends.py."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from store_backends import Backend, backend_fixture, store_fixture  # noqa: F401 (the backend fixture)
from store_samples import check_every_field_set, full_run, full_session, full_trial, full_variable

from bridge._proto import bridge_pb2 as pb
from bridge.codec import decode, encode
from bridge.errors import RevisionCompactedError, SessionNotFoundError
from bridge.limits import Limits
from bridge.store import (
    LogEntry,
    SessionRecord,
    Store,
    StoredValue,
    Transaction,
    VariableRecord,
)


def stored(value: object) -> StoredValue:
    return StoredValue(encode(value).SerializeToString())


def unstored(value: StoredValue) -> object:
    return decode(value.to_pb())


LIMITS = Limits(max_history_per_variable=5, max_history_bytes=4096, max_event_log_entries=8, max_event_log_bytes=8192)


store = store_fixture(LIMITS)


async def new_session(store: Store, session_id: str = "s1") -> str:
    now = time.time()
    assert await store.create_session(SessionRecord(session_id, "hash", now, now, 60.0))
    return session_id


def record(txn: Transaction, session_id: str, name: str, value: object, vid: str | None = None) -> VariableRecord:
    return VariableRecord(
        id=vid or f"var_{name:0>24}"[:28],
        session_id=session_id,
        name=name,
        type="integer",
        value=stored(value),
        constraints={},
        metadata={},
        dependencies=(),
        access_rules=(),
        version=1,
        create_revision=txn.revision,
        mod_revision=txn.revision,
        created_at=txn.now,
        updated_at=txn.now,
        updated_by=session_id,
        last_update_metadata={},
    )


async def create(store: Store, session_id: str, **values: int) -> None:
    async def body(txn: Transaction) -> None:
        for name, value in values.items():
            txn.put(record(txn, session_id, name, value, vid=f"var_{session_id}{name}".ljust(28, "0")))

    await store.transact(session_id, body)


async def bump(store: Store, session_id: str, name: str, value: int | None = None) -> VariableRecord:
    async def body(txn: Transaction) -> VariableRecord:
        current = await txn.get(name)
        assert current is not None
        new_value = unstored(current.value) + 1 if value is None else value
        updated = current.next_version(stored(new_value), txn.revision, txn.now, "w", {"n": new_value})
        txn.put(updated)
        return updated

    updated, _ = await store.transact(session_id, body)
    return updated


async def test_sessions_are_created_once(store: Store) -> None:
    await new_session(store)
    now = time.time()
    assert not await store.create_session(SessionRecord("s1", "other", now, now, 1.0))
    assert (await store.get_session("s1")).token_hash == "hash"
    assert await store.session_ids() == ["s1"]


async def test_touch_moves_expiry(store: Store) -> None:
    await new_session(store)
    before = (await store.get_session("s1")).expires_at
    await store.touch_session("s1", time.time() + 10)
    assert (await store.get_session("s1")).expires_at > before


async def test_a_transaction_is_one_revision(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=2)
    assert (await store.revision(sid)) == 1
    records = [await store.get_variable(sid, n) for n in ("a", "b")]
    assert [(r.create_revision, r.mod_revision, r.version) for r in records] == [(1, 1, 1), (1, 1, 1)]


async def test_a_failing_body_applies_nothing(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)

    async def body(txn: Transaction) -> None:
        current = await txn.get("a")
        txn.put(current.next_version(stored(99), txn.revision, txn.now, "w", {}))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await store.transact(sid, body)
    a = await store.get_variable(sid, "a")
    assert (unstored(a.value), a.version) == (1, 1)
    assert (await store.revision(sid)) == 1


async def test_reads_inside_a_transaction_see_staged_writes(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)

    async def body(txn: Transaction) -> tuple[int, int, bool]:
        txn.put(record(txn, sid, "b", 2, vid="var_" + "b" * 24))
        current = await txn.get("a")
        txn.delete(current)
        return await txn.variable_count(), unstored((await txn.get("b")).value), await txn.get("a") is None

    assert await store.transact(sid, body) == ((1, 2, True), 2)
    assert [r.name for r in await store.list_variables(sid)] == ["b"]
    assert await store.revision(sid) == 2


async def test_updates_keep_versions_history_and_old_values(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=0)
    for _ in range(3):
        await bump(store, sid, "a")
    a = await store.get_variable(sid, "a")
    assert (unstored(a.value), a.version, a.mod_revision) == (3, 4, 4)
    history = await store.history(a.id)
    assert [(h.version, unstored(h.value), h.mod_revision) for h in history] == [
        (4, 3, 4),
        (3, 2, 3),
        (2, 1, 2),
        (1, 0, 1),
    ]
    assert [h.version for h in await store.history(a.id, limit=2, offset=1)] == [3, 2]


async def test_history_is_bounded_newest_kept(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=0)
    for _ in range(9):
        await bump(store, sid, "a")
    a = await store.get_variable(sid, "a")
    assert [h.version for h in await store.history(a.id)] == [10, 9, 8, 7, 6]


async def test_lookup_by_name_or_id_is_scoped_to_the_session(store: Store) -> None:
    s1, s2 = await new_session(store, "s1"), await new_session(store, "s2")
    await create(store, s1, a=1)
    a = await store.get_variable(s1, "a")
    assert (await store.get_variable(s1, a.id)).name == "a"
    assert await store.get_variable(s2, "a") is None
    assert await store.get_variable(s2, a.id) is None
    assert (await store.get_variable_by_id(a.id)).session_id == s1


async def test_batch_get_returns_found_only(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=2)
    found = await store.get_variables(sid, ["a", "zzz", "b"])
    assert {k: unstored(v.value) for k, v in found.items()} == {"a": 1, "b": 2}


async def test_list_is_sorted_and_glob_filtered(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, temp_b=1, temp_a=2, other=3)
    assert [r.name for r in await store.list_variables(sid, "temp*")] == ["temp_a", "temp_b"]
    assert [r.name for r in await store.list_variables(sid)] == ["other", "temp_a", "temp_b"]


async def test_stats_count_reads_and_writes(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)
    a = await store.get_variable(sid, "a")
    await store.get_variable_by_id(a.id)
    assert (await store.stats(a.id)).read_count == 0  # looking is not reading: the caller counts served reads
    await store.count_reads([a.id, a.id, "var_gone"])
    await bump(store, sid, "a")
    stats = await store.stats(a.id)
    assert (stats.read_count, stats.write_count) == (2, 2)


async def test_delete_session_takes_its_variables(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=2)
    a = await store.get_variable(sid, "a")
    assert await store.delete_session(sid) == 2
    assert await store.get_session(sid) is None
    assert await store.get_variable_by_id(a.id) is None
    assert await store.history(a.id) == []


async def test_concurrent_read_modify_write_transactions_serialize(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, counter=0)
    await asyncio.gather(*(bump(store, sid, "counter") for _ in range(50)))
    counter = await store.get_variable(sid, "counter")
    assert (unstored(counter.value), counter.version) == (50, 51)
    assert (await store.revision(sid)) == 51


async def test_values_are_kept_as_sent(store: Store) -> None:
    sid = await new_session(store)
    value = StoredValue(
        pb.Value(array_value=pb.NDArray(dtype="float32", shape=[2])).SerializeToString(), b"\x00\x00\x80\x3f" * 2
    )

    async def body(txn: Transaction) -> None:
        txn.put(record(txn, sid, "arr", 0)._replace(value=value))

    await store.transact(sid, body)
    assert (await store.get_variable(sid, "arr")).value == value


async def test_history_is_bounded_in_bytes_keeping_the_newest(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, blob=0)

    async def write_blob(size: int) -> None:
        async def body(txn: Transaction) -> None:
            current = await txn.get("blob")
            txn.put(current.next_version(stored("x" * size), txn.revision, txn.now, "w", {}))

        await store.transact(sid, body)

    for _ in range(3):
        await write_blob(1500)  # 3 x ~1.5 KB in a 4 KB history budget
    blob = await store.get_variable(sid, "blob")
    assert [h.version for h in await store.history(blob.id)] == [4, 3]
    await write_blob(10_000)  # alone over the budget: still kept
    assert [h.version for h in await store.history(blob.id)] == [5]


async def test_a_transaction_that_stages_nothing_takes_no_revision(store: Store) -> None:
    sid = await new_session(store)

    async def body(txn: Transaction) -> int:
        return txn.revision

    assert await store.transact(sid, body) == (1, 0)  # it would have taken 1
    assert (await store.revision(sid)) == 0


def plus_one(record: VariableRecord, revision: int, now: float) -> VariableRecord:
    return record.next_version(stored(unstored(record.value) + 1), revision, now, "w", {})


async def test_update_writes_one_variable_as_one_revision(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)
    updated, revision = await store.update(sid, "a", plus_one)
    assert (unstored(updated.value), updated.version, revision) == (2, 2, 2)
    assert await store.update(sid, "missing", plus_one) is None
    assert (await store.revision(sid)) == 2
    assert [h.version for h in await store.history(updated.id)] == [2, 1]


async def test_a_failing_update_changes_nothing(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)

    def refuse(record: VariableRecord, revision: int, now: float) -> VariableRecord:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.update(sid, "a", refuse)
    a = await store.get_variable(sid, "a")
    assert (unstored(a.value), a.version, (await store.revision(sid))) == (1, 1, 1)


async def test_updates_and_transactions_interleave_without_lost_writes(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, counter=0)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_bump(txn: Transaction) -> None:
        current = await txn.get("counter")
        entered.set()
        await release.wait()  # a transaction that yields while holding its session
        txn.put(plus_one(current, txn.revision, txn.now))

    slow = asyncio.create_task(store.transact(sid, slow_bump))
    await entered.wait()
    quick = [asyncio.create_task(store.update(sid, "counter", plus_one)) for _ in range(10)]
    release.set()
    await asyncio.gather(slow, *quick)
    counter = await store.get_variable(sid, "counter")
    assert (unstored(counter.value), counter.version) == (11, 12)


async def test_history_budget_counts_each_writes_metadata(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=0)

    def with_big_metadata(record: VariableRecord, revision: int, now: float) -> VariableRecord:
        return record.next_version(record.value, revision, now, "w", {"note": "x" * 3000}, metadata_bytes=3010)

    for _ in range(3):
        await store.update(sid, "a", with_big_metadata)
    a = await store.get_variable(sid, "a")
    assert [h.version for h in await store.history(a.id)] == [4]  # 3 KB each in a 4 KB budget


# ---------------------------------------------------------------- the event log


def summary(entry: LogEntry) -> tuple[int, list[tuple[str, object, object, str]]]:
    """(revision, [(name, old value, new value, writer)]) of one logged write; None for a missing side."""
    return entry.revision, [
        (
            c.record.name,
            None if c.old is None else unstored(c.old.value),
            None if c.new is None else unstored(c.new.value),
            c.writer,
        )
        for c in entry.changes
    ]


async def test_each_write_is_one_log_entry_at_its_revision(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=2)  # a batch: one entry, two changes
    await bump(store, sid, "a")
    await store.update(sid, "b", plus_one)  # the single-write path logs the same way
    log = await store.event_log(sid, 1, 100)
    assert (log.oldest_revision, log.revision) == (1, 3)
    assert [summary(e) for e in log.entries] == [
        (1, [("a", None, 1, sid), ("b", None, 2, sid)]),
        (2, [("a", 1, 2, "w")]),
        (3, [("b", 2, 3, "w")]),
    ]
    a2 = log.entries[1].changes[0].new
    assert (a2.version, a2.mod_revision, a2.last_update_metadata) == (2, 2, {"n": 2})
    assert log.entries[1].time == a2.updated_at


async def test_the_log_reads_from_a_revision_with_a_limit(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=0)
    for _ in range(4):
        await bump(store, sid, "a")
    assert [e.revision for e in (await store.event_log(sid, 3, 100)).entries] == [3, 4, 5]
    assert [e.revision for e in (await store.event_log(sid, 2, 2)).entries] == [2, 3]
    caught_up = await store.event_log(sid, 6, 100)  # the next revision: nothing yet
    assert (caught_up.entries, caught_up.revision) == ([], 5)


async def test_a_deletion_is_logged_with_the_last_record_and_its_writer(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=2)

    async def body(txn: Transaction) -> None:
        txn.delete(await txn.get("a"), writer="other_session")
        txn.delete(await txn.get("b"))

    await store.transact(sid, body)
    [entry] = (await store.event_log(sid, 2, 10)).entries
    assert summary(entry) == (2, [("a", 1, None, "other_session"), ("b", 2, None, sid)])


async def test_failed_and_empty_writes_log_nothing(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)

    async def fails(txn: Transaction) -> None:
        txn.put((await txn.get("a")).next_version(stored(5), txn.revision, txn.now, "w", {}))
        raise RuntimeError("boom")

    async def stages_nothing(txn: Transaction) -> None:
        await txn.get("a")

    with pytest.raises(RuntimeError):
        await store.transact(sid, fails)
    await store.transact(sid, stages_nothing)
    assert [e.revision for e in (await store.event_log(sid, 1, 10)).entries] == [1]


async def test_the_log_is_bounded_in_writes_and_refuses_compacted_revisions(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=0)
    for _ in range(11):
        await bump(store, sid, "a")
    log = await store.event_log(sid, 5, 100)  # 12 writes, 8 kept
    assert (log.oldest_revision, [e.revision for e in log.entries]) == (5, list(range(5, 13)))
    with pytest.raises(RevisionCompactedError) as info:
        await store.event_log(sid, 4, 100)
    assert info.value.details["oldest_revision"] == "5"
    assert info.value.details["revision"] == "4"


async def test_the_log_is_bounded_in_bytes_keeping_the_latest_write_whole(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, blob=0)

    async def write_blobs(size: int, names: tuple[str, ...] = ("blob",)) -> None:
        async def body(txn: Transaction) -> None:
            for name in names:
                current = await txn.get(name)
                if current is None:
                    txn.put(record(txn, sid, name, 0, vid=f"var_{name:0>24}"[:28]))
                else:
                    txn.put(current.next_version(stored("x" * size), txn.revision, txn.now, "w", {}))

        await store.transact(sid, body)

    for _ in range(3):
        await write_blobs(3000)  # ~3 KB each in an 8 KB log budget
    assert (await store.event_log(sid, 3, 10)).oldest_revision == 3
    await write_blobs(0, ("c", "d"))
    await write_blobs(5000, ("blob", "c", "d"))  # one write of ~15 KB: alone over the budget, kept whole
    log = await store.event_log(sid, 6, 10)
    assert [(e.revision, len(e.changes)) for e in log.entries] == [(6, 3)]


async def test_listeners_see_each_write_in_order_then_the_session_end(store: Store) -> None:
    sid = await new_session(store)
    seen: list[LogEntry | None] = []
    stop = store.listen(sid, seen.append)
    await create(store, sid, a=1, b=1)
    await bump(store, sid, "a")
    await store.update(sid, "b", plus_one)
    assert seen == (await store.event_log(sid, 1, 10)).entries
    stop()
    await bump(store, sid, "a")
    assert len(seen) == 3
    store.listen(sid, seen.append)
    await store.delete_session(sid)
    assert seen[-1] is None


async def test_a_recreated_session_has_another_history(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1)
    first = await store.event_log(sid, 1, 10)
    await store.delete_session(sid)
    await new_session(store)
    second = await store.event_log(sid, 1, 10)
    assert second.history_id != first.history_id
    assert (second.revision, second.entries) == (0, [])


async def test_snapshot_reads_the_revision_with_the_named_variables(store: Store) -> None:
    sid = await new_session(store)
    await create(store, sid, a=1, b=2)
    await bump(store, sid, "a")
    revision, records = await store.snapshot(sid, ["a", "missing"])
    assert revision == 2
    assert {name: (unstored(r.value), r.version) for name, r in records.items()} == {"a": (2, 2)}


async def test_the_log_of_an_unknown_session_is_refused(store: Store) -> None:
    with pytest.raises(SessionNotFoundError):
        await store.event_log("nobody", 1, 10)
    with pytest.raises(SessionNotFoundError):
        store.listen("nobody", print)
    with pytest.raises(SessionNotFoundError):
        await store.snapshot("nobody", ["a"])


async def test_stores_name_their_data(store: Store, backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = backend.open(tmp_path / "other", LIMITS)  # another store of the same kind holds other data
    assert store.store_id and other.store_id != store.store_id
    await other.close()


async def test_every_field_of_every_record_is_kept(store: Store) -> None:
    now = time.time()
    session = full_session("s_full", now)
    check_every_field_set(session)
    assert await store.create_session(session)
    assert await store.get_session("s_full") == session
    seen: list[LogEntry | None] = []
    store.listen("s_full", seen.append)

    async def body(txn: Transaction) -> VariableRecord:
        full = full_variable("s_full", txn.revision, txn.now)
        txn.put(full)
        return full

    full, _ = await store.transact("s_full", body)
    check_every_field_set(full)
    snap = await store.export_snapshot("s_full", include_history=True)
    read_back = [
        await store.get_variable("s_full", "full"),
        await store.get_variable_by_id(full.id),
        *await store.history(full.id),
        *(await store.get_variables("s_full", ["full"])).values(),
        *(await store.snapshot("s_full", ["full"]))[1].values(),
        *await store.list_variables("s_full"),
        *snap.variables,
        (await store.event_log("s_full", 1, 10)).entries[0].changes[0].new,
        seen[0].changes[0].new,  # type: ignore[union-attr]
    ]
    assert read_back == [full] * len(read_back)
    run, trial = full_run("s_full", full.id, now), full_trial("opt_full", now)
    check_every_field_set(run)
    check_every_field_set(trial)
    assert await store.claim_optimization(run, now) is None
    await store.add_trial(trial)
    assert await store.get_optimization(run.id) == run
    assert await store.variable_optimizations(full.id) == [run]
    assert await store.trials(run.id) == [trial]
