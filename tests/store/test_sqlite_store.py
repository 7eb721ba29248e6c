"""What only the SQLite store does: its file, its lock, its settings, and its writer under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_conformance import bump, create, new_session, plus_one, unstored

from bridge.errors import ValidationError
from bridge.limits import Limits
from bridge.store import LogEntry, SQLiteStore, Transaction, open_store
from bridge.store._sqlite_schema import DatabaseInUseError
from bridge.store._sqlite_writes import LOG_GC_BATCH


def _count(path: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchone()[0]


async def test_open_store_takes_a_path_and_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    store = open_store(f"sqlite:{tmp_path / 'a.db'}", Limits(), synchronous="normal")
    assert isinstance(store, SQLiteStore) and store.synchronous == "normal"
    await store.close()
    with pytest.raises(ValidationError, match="the sqlite store is written sqlite:PATH, not 'sqlite:'"):
        open_store("sqlite:")
    with pytest.raises(ValidationError, match="the memory store is written memory, not 'memory:x'"):
        open_store("memory:x")
    with pytest.raises(ValidationError, match="unknown store 'postgres://db': use memory or sqlite:PATH"):
        open_store("postgres://db")
    with pytest.raises(ValidationError, match="takes no options"):
        open_store("memory", synchronous="full")
    with pytest.raises(ValueError, match="must be one of full, normal"):
        SQLiteStore(tmp_path / "b.db", synchronous="off")
    with pytest.raises(OSError, match=r"directory .* does not exist"):
        SQLiteStore(tmp_path / "missing" / "c.db")  # the directory is not made for you


async def test_one_server_per_file(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(DatabaseInUseError, match="in use by another server process"):
        SQLiteStore(tmp_path / "s.db")
    await first.close()
    again = SQLiteStore(tmp_path / "s.db")  # closed: free again, with the same identity
    assert again.store_id == first.store_id
    await again.close()


async def test_the_file_is_in_wal_mode_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await SQLiteStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(OSError, match="schema version 99"):
        SQLiteStore(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 1")
    await SQLiteStore(path).close()  # the refusal let go of the file


async def test_versions_only_the_log_names_are_collected(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, Limits(max_history_per_variable=2, max_event_log_entries=3))
    sid = await new_session(store)
    await create(store, sid, a=0, b=0)
    # Kept: 2 versions of a and 1 of b, and the versions the log's rows name; compacted rows of the log
    # (with the versions only they name) are deleted in batches of LOG_GC_BATCH.
    bound = 2 + 1 + (3 + LOG_GC_BATCH) + 1
    for writes in (200, 400):
        while await store.revision(sid) < writes:
            await bump(store, sid, "a")
        assert _count(path, "SELECT COUNT(*) FROM versions") <= bound
        assert _count(path, "SELECT COUNT(*) FROM events") <= 3 + LOG_GC_BATCH
    log = await store.event_log(sid, 398, 10)
    assert [unstored(e.changes[0].new.value) for e in log.entries] == [397, 398, 399]

    async def delete_a(txn: Transaction) -> None:
        txn.delete(await txn.get("a"))

    await store.transact(sid, delete_a)
    for _ in range(LOG_GC_BATCH + 3):
        await bump(store, sid, "b")  # the deletion leaves the log: a's versions go with it
    assert _count(path, "SELECT COUNT(*) FROM versions WHERE variable_id LIKE 'var_s1a%'") == 0
    await store.close()


async def test_a_write_the_file_refuses_changes_nothing_and_the_store_goes_on(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sid = await new_session(store)
    await create(store, sid, a=1)
    a = await store.get_variable(sid, "a")

    async def restore_unread(txn: Transaction) -> None:  # the transaction never looked at a: the commit checks
        txn.put(plus_one(a, txn.revision, txn.now)._replace(id="var_" + "9" * 24, name="b"))
        txn.restore(a._replace(version=5), [])

    with pytest.raises(ValueError, match="restore\\(\\) creates variables; 'a' exists"):
        await store.transact(sid, restore_unread)
    assert await store.get_variable(sid, "b") is None and await store.revision(sid) == 1
    updated, revision = await store.update(sid, "a", plus_one)
    assert (unstored(updated.value), revision) == (2, 2)
    await store.close()


async def test_a_cancelled_commit_still_lands_and_frees_the_session(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sid = await new_session(store)
    await create(store, sid, a=0)
    published: list[LogEntry | None] = []
    landed = asyncio.Event()
    store.listen(sid, lambda entry: (published.append(entry), landed.set()))
    body_done = asyncio.Event()

    async def body(txn: Transaction) -> None:
        txn.put(plus_one(await txn.get("a"), txn.revision, txn.now))  # type: ignore[arg-type]
        body_done.set()  # nothing awaits from here to the commit: the task now waits for the writer

    task = asyncio.create_task(store.transact(sid, body))
    await body_done.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(landed.wait(), 10)
    assert [e.revision for e in published] == [2]  # type: ignore[union-attr]
    updated, revision = await asyncio.wait_for(store.update(sid, "a", plus_one), 10)  # the session is free
    assert (unstored(updated.value), revision) == (2, 3)
    await store.close()


async def test_many_concurrent_writers_never_see_a_locked_database(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", synchronous="normal")
    sessions = [await new_session(store, f"s{i}") for i in range(4)]
    for sid in sessions:
        await create(store, sid, a=0)

    async def writer(sid: str) -> None:
        for _ in range(25):
            await store.update(sid, "a", plus_one)
            await store.get_variable(sid, "a")

    await asyncio.gather(*(writer(sid) for sid in sessions for _ in range(4)))
    for sid in sessions:
        a = await store.get_variable(sid, "a")
        assert (unstored(a.value), a.version, await store.revision(sid)) == (100, 101, 101)
        log = await store.event_log(sid, 1, 1000)
        assert [e.revision for e in log.entries] == list(range(1, 102))
    await store.close()


async def test_a_session_recreated_while_its_deletion_runs_waits_for_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sid = await new_session(store)
    await create(store, sid, a=1)
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(txn: Transaction) -> None:  # a write holds the session while the deletion begins
        entered.set()
        await release.wait()

    writing = asyncio.create_task(store.transact(sid, held))
    await entered.wait()
    deleting = asyncio.create_task(store.delete_session(sid))
    await asyncio.sleep(0)  # let the deletion take the session out of memory (it then waits for the write)
    assert await store.get_session(sid) is None
    creating = asyncio.create_task(new_session(store, sid))
    release.set()
    await asyncio.wait_for(asyncio.gather(writing, deleting, creating), 10)
    assert await store.revision(sid) == 0 and await store.list_variables(sid) == []
    await store.close()


async def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    sid = await new_session(store)
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(RuntimeError, match="is closed"):
        await store.get_variable(sid, "a")


async def test_read_counts_are_written_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    sid = await new_session(store)
    await create(store, sid, a=1)
    a = await store.get_variable(sid, "a")
    await store.count_reads([a.id, a.id])
    assert (await store.stats(a.id)).read_count == 2  # pending ones count at once
    deadline = time.monotonic() + 10
    while _count(path, "SELECT read_count FROM variables") != 2:  # the flush is on a timer: poll the file
        assert time.monotonic() < deadline, "read counts were not written"
        await asyncio.sleep(0.05)
    await store.close()


def test_import_bridge_does_not_load_sqlite() -> None:
    code = "import sys, bridge, bridge.store, bridge.server; print('sqlite3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
