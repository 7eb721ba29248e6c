"""Client-side pacing of watch updates: throttle and debounce, as pure state machines over explicit times.

Each stage takes updates (`offer`) and gives back the ones to emit now; `due(now)` gives the
ones whose time has come, and `deadline()` says when that will next be. Times are passed in,
so the stages are exact under a test's clock and run on `time.monotonic` for real. Pending
state holds at most one update per variable: bounded by the names watched.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from ._updates import VariableUpdate


def coalesce(earlier: VariableUpdate | None, later: VariableUpdate) -> VariableUpdate:
    """One update standing for two of the same variable: the later state, from the earlier old value.

    A resync stays a resync (the consumer must know history was skipped) unless a deletion follows.
    """
    if earlier is None:
        return later
    kind = earlier.kind if earlier.kind == "resync" and later.kind == "update" else later.kind
    return dataclasses.replace(later, old_value=earlier.old_value, kind=kind)


def _by_revision(updates: list[VariableUpdate]) -> list[VariableUpdate]:
    return sorted(updates, key=lambda u: u.revision)


class Stage(Protocol):
    def offer(self, update: VariableUpdate, now: float) -> list[VariableUpdate]: ...

    def due(self, now: float) -> list[VariableUpdate]: ...

    def deadline(self) -> float | None: ...


class Throttle:
    """At most one update per variable per `window` seconds; a change inside the window waits for its end,
    and only the latest one pending then is emitted (so the final value always arrives)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._emitted: dict[str, float] = {}  # name -> when its last update was emitted
        self._pending: dict[str, VariableUpdate] = {}

    def offer(self, update: VariableUpdate, now: float) -> list[VariableUpdate]:
        name = update.name
        if name not in self._pending:
            last = self._emitted.get(name)
            if last is None or now - last >= self.window:
                self._emitted[name] = now
                return [update]
        self._pending[name] = coalesce(self._pending.get(name), update)
        return []

    def due(self, now: float) -> list[VariableUpdate]:
        ready = [u for name, u in self._pending.items() if now >= self._emitted[name] + self.window]
        for update in ready:
            del self._pending[update.name]
            self._emitted[update.name] = now
        return _by_revision(ready)

    def deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(self._emitted[name] for name in self._pending) + self.window


class Debounce:
    """Holds changes until none has come for `window` seconds, then emits the latest update of each changed
    variable, oldest first. Initial values pass at once: there is nothing to settle."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._pending: dict[str, VariableUpdate] = {}
        self._quiet_at: float | None = None

    def offer(self, update: VariableUpdate, now: float) -> list[VariableUpdate]:
        if update.kind == "initial":
            return [update]
        self._pending[update.name] = coalesce(self._pending.get(update.name), update)
        self._quiet_at = now + self.window
        return []

    def due(self, now: float) -> list[VariableUpdate]:
        if self._quiet_at is None or now < self._quiet_at:
            return []
        ready = list(self._pending.values())
        self._pending.clear()
        self._quiet_at = None
        return _by_revision(ready)

    def deadline(self) -> float | None:
        return self._quiet_at


class Pipeline:
    """Stages in order (debounce, then throttle): what one emits, the next takes at the same moment."""

    def __init__(self, stages: list[Stage]) -> None:
        self.stages = stages

    def offer(self, update: VariableUpdate, now: float) -> list[VariableUpdate]:
        return self._through(0, [update], now)

    def due(self, now: float) -> list[VariableUpdate]:
        out: list[VariableUpdate] = []
        for i, stage in enumerate(self.stages):
            released = stage.due(now)
            if released:
                out.extend(self._through(i + 1, released, now))
        return out

    def _through(self, start: int, updates: list[VariableUpdate], now: float) -> list[VariableUpdate]:
        for stage in self.stages[start:]:
            updates = [out for update in updates for out in stage.offer(update, now)]
        return updates

    def deadline(self) -> float | None:
        deadlines = [d for d in (stage.deadline() for stage in self.stages) if d is not None]
        return min(deadlines) if deadlines else None
