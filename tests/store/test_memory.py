"""What only the memory store does: single writes skip the transaction machinery unless one is running."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.store import MemoryStore, SessionRecord, Transaction


async def _store_with_session() -> MemoryStore:
    store = MemoryStore()
    now = time.time()
    assert await store.create_session(SessionRecord("s1", "hash", now, now, 60.0))
    return store


def _in_transaction(store: MemoryStore) -> bool:
    return store._sessions["s1"].in_transaction


async def test_the_flag_is_set_only_while_a_transaction_runs() -> None:
    store = await _store_with_session()
    seen = []

    async def body(txn: Transaction) -> None:
        seen.append(_in_transaction(store))

    await store.transact("s1", body)
    assert seen == [True]
    assert not _in_transaction(store)


async def test_a_failed_transaction_clears_the_flag() -> None:
    store = await _store_with_session()

    async def body(txn: Transaction) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await store.transact("s1", body)
    assert not _in_transaction(store)


async def test_a_cancelled_transaction_clears_the_flag() -> None:
    store = await _store_with_session()
    entered, never = asyncio.Event(), asyncio.Event()

    async def body(txn: Transaction) -> None:
        entered.set()
        await never.wait()

    task = asyncio.create_task(store.transact("s1", body))
    await asyncio.wait_for(entered.wait(), 5.0)
    assert _in_transaction(store)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _in_transaction(store)
