"""The watch guarantees under load, checked against the store's own event log.

Twenty watchers (all ten variables, three, or one; with and without initial values) follow a
session while three clients write 5,000 variable updates concurrently, a third of them in
atomic batches. Each watcher's sequence must be the event log restricted to its variables:
ordered by revision, without a gap or a repeat, each batch whole and contiguous under one
revision, old values chained, and ending at the store's final state.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from watch_support import WAIT

from bridge import BridgeServer, SessionContext, VariableUpdate, Watch, connect
from bridge.codec import decode
from bridge.store import LogEntry

NAMES = [f"v{i}" for i in range(10)]
UPDATES = 5_000
WRITERS = 3


@dataclass
class Watcher:
    names: list[str]
    include_initial: bool
    watch: Watch
    seen: list[VariableUpdate] = field(default_factory=list)
    target: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def consume(self) -> None:
        async for update in self.watch:
            self.seen.append(update)
            self._check_done()

    def _check_done(self) -> None:
        if self.target is not None and len(self.seen) >= self.target:
            self.done.set()

    def expect(self, count: int) -> None:
        self.target = count
        self._check_done()


async def write(session: SessionContext, seed: int, budget: int) -> None:
    """`budget` variable updates: single sets, and atomic batches of 2-4 variables (values unique per writer)."""
    rng = random.Random(seed)
    counter = 0
    while budget > 0:
        k = 1 if rng.random() < 0.6 else min(budget, rng.randint(2, 4))
        names = rng.sample(NAMES, k)
        values = {}
        for name in names:
            counter += 1
            values[name] = seed * 1_000_000 + counter
        if k == 1:
            await session.set_variable(names[0], values[names[0]])
        else:
            results = await session.update_variables(values, atomic=True)
            assert all(ok is True for ok in results.values()), results
        budget -= k


def selection(i: int) -> tuple[list[str], bool]:
    if i < 8:
        return NAMES, i % 2 == 0
    if i < 14:
        return NAMES[i - 8 : i - 5], i % 2 == 1
    return [NAMES[i - 14]], i % 2 == 0


async def test_twenty_watchers_three_writers_five_thousand_updates() -> None:
    server = await BridgeServer().start()
    channels = [connect(server.address) for _ in range(5)]
    try:
        owner = await SessionContext("checked", channels[0]).initialize()
        await owner.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in NAMES])
        watchers = []
        for i in range(20):
            client = SessionContext("checked", channels[1 + i % 4], token=owner.token)
            await client.initialize()
            names, initial = selection(i)
            if len(names) == 1:
                watch = client.watch_variable(names[0], include_initial=initial)
            else:
                watch = client.watch_variables(names, include_initial=initial)
            watchers.append(Watcher(names, initial, watch))
        assert {await w.watch.started() for w in watchers} == {1}  # all start after the registration
        consumers = [asyncio.create_task(w.consume()) for w in watchers]

        writers = [await SessionContext("checked", channels[i], token=owner.token).initialize() for i in range(3)]
        shares = [UPDATES // WRITERS + (i < UPDATES % WRITERS) for i in range(WRITERS)]
        await asyncio.gather(
            *(write(w, seed + 1, share) for seed, (w, share) in enumerate(zip(writers, shares, strict=True)))
        )

        log = await server.store.event_log("checked", 2, 1_000_000)
        assert sum(len(e.changes) for e in log.entries) == UPDATES
        assert sum(len(e.changes) > 1 for e in log.entries) > 0
        final = {n: await owner.get_variable(n) for n in NAMES}
        for watcher in watchers:
            initial = len(watcher.names) if watcher.include_initial else 0
            watcher.expect(initial + sum(len(c) for c in projection(log.entries, watcher.names).values()))
        await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in watchers)), 20 * WAIT)

        for watcher in watchers:
            check(watcher, log.entries, final)
        for consumer, watcher in zip(consumers, watchers, strict=True):
            watcher.watch.close()
            await asyncio.wait_for(consumer, WAIT)
        await asyncio.wait_for(server.servicer.watches.wait_for_count(0), WAIT)
    finally:
        for channel in channels:
            await channel.close()
        await server.stop(1)


def check(watcher: Watcher, entries: list[LogEntry], final: dict[str, int]) -> None:
    seen = watcher.seen
    label = f"watcher of {watcher.names} (initial={watcher.include_initial})"
    initial = [u for u in seen if u.kind == "initial"]
    updates = [u for u in seen if u.kind != "initial"]
    assert seen[: len(initial)] == initial, f"{label}: initial values must come first"
    assert len(initial) == (len(watcher.names) if watcher.include_initial else 0), label
    assert {u.kind for u in updates} == {"update"}, label

    revisions = [u.revision for u in updates]
    assert revisions == sorted(revisions), f"{label}: out of revision order"
    by_revision: dict[int, list[VariableUpdate]] = {}
    for position, u in enumerate(updates):  # batch-atomic: one revision's updates are contiguous
        group = by_revision.setdefault(u.revision, [])
        assert not group or updates[position - 1].revision == u.revision, f"{label}: batch {u.revision} split"
        group.append(u)

    expected = projection(entries, watcher.names)
    assert set(by_revision) <= set(expected), f"{label}: revisions that touched none of its variables"
    missing = sorted(set(expected) - set(by_revision))
    assert not missing, f"{label}: gaps at revisions {missing[:10]}"
    for revision, group in by_revision.items():
        got = [(u.name, u.version, u.value) for u in group]
        assert got == expected[revision], f"{label}: revision {revision} is {got}, the log has {expected[revision]}"

    last: dict[str, VariableUpdate] = {u.name: u for u in initial}
    for u in updates:  # each old value is the value before, and versions count up by one
        if u.name in last:
            assert (u.old_value, u.version) == (last[u.name].value, last[u.name].version + 1), f"{label}: {u}"
        last[u.name] = u
    for name in watcher.names:
        if name in last:
            assert last[name].value == final[name], f"{label}: {name} ends at {last[name].value}, not {final[name]}"


def projection(entries: list[LogEntry], names: list[str]) -> dict[int, list[tuple[str, int, int]]]:
    """The log as a watcher of `names` must see it: revision -> [(name, version, value)] of its variables."""
    picked = {
        e.revision: [
            (c.record.name, c.new.version, decode(c.new.value.to_pb())) for c in e.changes if c.record.name in names
        ]
        for e in entries
    }
    return {revision: changes for revision, changes in picked.items() if changes}
