"""Clients that record every call they make for the history checker, and what they record against.

`Recorder` wraps SessionContext calls (a set, an atomic batch, a read) and records each as a
`Call` with its start and end time and outcome: acknowledged (ok), refused by the server (a
BridgeError: not applied), or unknown (a transport error: the server may have applied it and
died before answering). `storm` is one client's random mix of them, with values unique to it.
`kept_history` reads what a store kept, for `check`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from history_checker import Call, Outcome, Update, Version

from bridge import SessionContext, VariableUpdate
from bridge.codec import decode
from bridge.errors import BridgeError
from bridge.store import Store


class Recorder:
    """Every call of every client, in the order each client made them."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.acknowledged_writes = 0
        self._targets: list[tuple[int, asyncio.Event]] = []

    def after_writes(self, n: int) -> asyncio.Event:
        """Set once `n` more writes (sets or batches) have been acknowledged."""
        event = asyncio.Event()
        self._targets.append((self.acknowledged_writes + n, event))
        self._notify()
        return event

    def _notify(self) -> None:
        for target, event in self._targets:
            if self.acknowledged_writes >= target:
                event.set()
        self._targets = [(t, e) for t, e in self._targets if not e.is_set()]

    async def _record(
        self, client: str, call: Awaitable[Any], writes: dict[str, int], read: Sequence[str] = ()
    ) -> Outcome:
        start = time.monotonic()
        outcome: Outcome = "ok"
        result: Any = None
        try:
            result = await call
        except grpc.RpcError:
            outcome = "unknown"
        except BridgeError:
            outcome = "failed"
        if outcome == "ok" and writes and isinstance(result, dict) and not all(v is True for v in result.values()):
            outcome = "failed"  # an atomic batch that reported errors was rolled back whole
        reads = {name: result[name] for name in read} if outcome == "ok" and read else {}
        self.calls.append(Call(client, start, time.monotonic(), outcome, writes, reads))
        if outcome == "ok" and writes:
            self.acknowledged_writes += 1
            self._notify()
        return outcome

    def set(self, client: str, session: SessionContext, name: str, value: int) -> Awaitable[Outcome]:
        return self._record(client, session.set_variable(name, value), {name: value})

    def batch(self, client: str, session: SessionContext, values: dict[str, int]) -> Awaitable[Outcome]:
        return self._record(client, session.update_variables(values, atomic=True), dict(values))

    def read(self, client: str, session: SessionContext, names: list[str]) -> Awaitable[Outcome]:
        """Reads from the server (the session's cache must be off: a cached value is not a read of the store)."""
        return self._record(client, session.get_variables(names), {}, names)


async def storm(
    recorder: Recorder,
    client: int,
    session: SessionContext,
    names: list[str],
    stop: asyncio.Event,
    on_broken: Callable[[], Awaitable[None]],
) -> None:
    """Sets (60 %), atomic batches of 2-3 variables (25 %) and reads (15 %) until `stop`; after a call with
    no answer, waits on `on_broken` (for the connection to come back) before the next one."""
    rng = random.Random(client)
    who = f"client{client}"
    counter = 0
    while not stop.is_set():
        roll = rng.random()
        counter += 1
        base = (client * 1_000_000 + counter) * 10  # + the position in a batch: unique to this write
        if roll < 0.6:
            outcome = await recorder.set(who, session, rng.choice(names), base)
        elif roll < 0.85:
            picked = rng.sample(names, rng.randint(2, 3))
            outcome = await recorder.batch(who, session, {name: base + i for i, name in enumerate(picked)})
        else:
            outcome = await recorder.read(who, session, rng.sample(names, 3))
        if outcome == "unknown":
            await on_broken()


async def kept_history(store: Store, session_id: str, names: list[str]) -> dict[str, list[Version]]:
    """Every version the store kept of each variable, oldest first."""
    histories = {}
    for name in names:
        record = await store.get_variable(session_id, name)
        assert record is not None, name
        kept = await store.history(record.id, limit=record.version + 1)
        histories[name] = [Version(r.version, decode(r.value.to_pb()), r.mod_revision) for r in reversed(kept)]
    return histories


def as_updates(updates: Sequence[VariableUpdate]) -> list[Update]:
    return [Update(u.name, u.version, u.value, u.old_value) for u in updates]
