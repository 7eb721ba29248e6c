"""A checker of recorded histories: what concurrent clients did, against what the store kept.

Clients record every call (`Call`: who, when it started and ended, what it wrote or read, and
whether it was acknowledged). After the run, the store's full history of each variable (every
version, oldest first, from the initial version 1) is read. `check` then verifies, per variable:

- versions: the history's versions are 1, 2, 3, ... (strictly increasing, no gap);
- writes: every acknowledged write appears exactly once, a write of unknown outcome (the call
  broke, say the server died) at most once, a refused one never, and nothing appears that no
  client wrote;
- batches: an atomic batch appears whole or not at all, under one revision of its own (a
  revision is never shared by two calls);
- reads: every value read is in the history, from a write that had started; no client reads an
  older version after a newer one (in its own order), and no call observes an older version
  than one observed by a call that ended before it began (a write is then newer still);
- final: the value read at the end is the last version (by the checks above, the last
  acknowledged write, or a later write whose answer was lost).

`check_watch` verifies a watcher's sequence: each version of each variable once, in order,
with no gap, old values chained, up to the last version.

Values identify writes: every write of a variable must write a value no other write (or the
initial value) of it has. Times are any monotonic clock, all from one process; a client's calls
are listed in the order it made them (one at a time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["ok", "failed", "unknown"]


@dataclass(frozen=True)
class Call:
    """One client call as its client saw it."""

    client: str
    start: float
    end: float
    #: ok: acknowledged; failed: refused by the server (not applied); unknown: no answer (it may have been).
    outcome: Outcome
    #: variable -> the value this call wrote: one for a set, several for an atomic batch.
    writes: Mapping[str, Hashable] = field(default_factory=dict)
    #: variable -> the value this call read (acknowledged calls only).
    reads: Mapping[str, Hashable] = field(default_factory=dict)


@dataclass(frozen=True)
class Version:
    """One kept version of a variable."""

    version: int
    value: Hashable
    #: The session revision of the write that made it.
    revision: int


@dataclass(frozen=True)
class Update:
    """One change a watcher received."""

    variable: str
    version: int
    value: Hashable
    old_value: Hashable


Histories = Mapping[str, Sequence[Version]]


class _Index:
    """Which version holds each value, and which call wrote it."""

    def __init__(self, histories: Histories, calls: Sequence[Call]) -> None:
        self.histories = histories
        self.version_of: dict[str, dict[Hashable, list[Version]]] = {}
        for name, versions in histories.items():
            by_value: dict[Hashable, list[Version]] = defaultdict(list)
            for v in versions:
                by_value[v.value].append(v)
            self.version_of[name] = by_value
        self.writer_of: dict[tuple[str, Hashable], Call] = {}
        for call in calls:
            for name, value in call.writes.items():
                if (name, value) in self.writer_of:
                    raise ValueError(f"{name}: value {value!r} is written twice; the checker needs unique values")
                if any(v.version == 1 and v.value == value for v in histories.get(name, ())):
                    raise ValueError(f"{name}: value {value!r} is written and is also the initial value")
                self.writer_of[name, value] = call

    def version(self, name: str, value: Hashable) -> Version | None:
        found = self.version_of.get(name, {}).get(value)
        return found[0] if found else None


def check_versions(histories: Histories) -> list[str]:
    problems = []
    for name, versions in histories.items():
        numbers = [v.version for v in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{name}: versions are {numbers[:20]}..., not 1, 2, 3, ... without gaps or repeats")
    return problems


def _check_writes(index: _Index, calls: Sequence[Call]) -> list[str]:
    problems = []
    for call in calls:
        for name, value in call.writes.items():
            n = len(index.version_of.get(name, {}).get(value, ()))
            if call.outcome == "ok" and n != 1:
                problems.append(f"{name}: acknowledged write of {value!r} by {call.client} appears {n} times")
            elif call.outcome == "unknown" and n > 1:
                problems.append(f"{name}: write of {value!r} by {call.client} (no answer) appears {n} times")
            elif call.outcome == "failed" and n:
                problems.append(f"{name}: refused write of {value!r} by {call.client} appears {n} times")
    for name, versions in index.histories.items():
        for v in versions[1:]:
            if (name, v.value) not in index.writer_of:
                problems.append(f"{name}: version {v.version} holds {v.value!r}, which no client wrote")
    return problems


def _check_batches(index: _Index, calls: Sequence[Call]) -> list[str]:
    problems = []
    for call in calls:
        kept = {name: index.version(name, value) for name, value in call.writes.items()}
        present = {name for name, v in kept.items() if v is not None}
        if present and present != set(kept):
            problems.append(
                f"batch by {call.client} was applied in part: {sorted(present)} of {sorted(kept)} "
                f"(outcome {call.outcome})"
            )
        revisions = {v.revision for v in kept.values() if v is not None}
        if len(revisions) > 1:
            problems.append(f"batch by {call.client} was split over revisions {sorted(revisions)}")
    writers: dict[int, set[int]] = defaultdict(set)
    for name, versions in index.histories.items():
        for v in versions[1:]:
            writer = index.writer_of.get((name, v.value))
            if writer is not None:
                writers[v.revision].add(id(writer))
    for revision, owners in sorted(writers.items()):
        if len(owners) > 1:
            problems.append(f"revision {revision} holds the writes of {len(owners)} calls")
    return problems


def _observations(index: _Index, call: Call, problems: list[str]) -> dict[str, tuple[int, bool]]:
    """variable -> (version this call observed, whether it wrote it) for an acknowledged call."""
    seen: dict[str, tuple[int, bool]] = {}
    for name, value in call.writes.items():
        v = index.version(name, value)
        if v is not None:
            seen[name] = (v.version, True)
    for name, value in call.reads.items():
        v = index.version(name, value)
        if v is None:
            problems.append(f"{name}: {call.client} read {value!r}, which is in no version")
            continue
        writer = index.writer_of.get((name, value))
        if writer is not None and writer.start > call.end:
            problems.append(f"{name}: {call.client} read {value!r} before the write of it began")
        seen[name] = (v.version, False)
    return seen


def _check_reads(index: _Index, calls: Sequence[Call]) -> list[str]:
    problems: list[str] = []
    acknowledged = [c for c in calls if c.outcome == "ok"]
    observed = {id(c): _observations(index, c, problems) for c in acknowledged}
    # In each client's own order: never an older version after a newer one.
    latest: dict[tuple[str, str], int] = {}
    for call in acknowledged:
        for name, (version, _) in observed[id(call)].items():
            key = (call.client, name)
            if version < latest.get(key, 0):
                problems.append(f"{name}: {call.client} saw version {version} after version {latest[key]}")
            latest[key] = max(version, latest.get(key, 0))
    # In real time: a call sees at least what any call that ended before it began saw; a write, more.
    ended = sorted(acknowledged, key=lambda c: c.end)
    best: dict[str, tuple[int, Call]] = {}
    i = 0
    for call in sorted(acknowledged, key=lambda c: c.start):
        while i < len(ended) and ended[i].end < call.start:
            for name, (version, _) in observed[id(ended[i])].items():
                if version > best.get(name, (0, call))[0]:
                    best[name] = (version, ended[i])
            i += 1
        for name, (version, wrote) in observed[id(call)].items():
            floor, before = best.get(name, (0, call))
            if version < floor or (wrote and version == floor):
                what = "wrote" if wrote else "read"
                problems.append(
                    f"{name}: {call.client} {what} version {version}, older than version {floor} "
                    f"that {before.client} saw in a call that ended before it began"
                )
    return problems


def _check_final(index: _Index, finals: Mapping[str, Hashable]) -> list[str]:
    problems = []
    for name, value in finals.items():
        versions = index.histories.get(name, ())
        last = versions[-1].value if versions else None
        if value != last:
            problems.append(f"{name}: the final value is {value!r}, but the last version holds {last!r}")
    return problems


def check(histories: Histories, calls: Sequence[Call], finals: Mapping[str, Hashable]) -> list[str]:
    """Every property above; an empty list when the run kept them all."""
    index = _Index(histories, calls)
    return [
        *check_versions(histories),
        *_check_writes(index, calls),
        *_check_batches(index, calls),
        *_check_reads(index, calls),
        *_check_final(index, finals),
    ]


def check_watch(updates: Sequence[Update], histories: Histories, since: Mapping[str, int]) -> list[str]:
    """A watcher that started when each variable was at version `since[name]` got every later version of
    it once, in order, each with the value and old value the history holds, up to the last version."""
    problems = []
    by_name: dict[str, list[Update]] = defaultdict(list)
    for update in updates:
        by_name[update.variable].append(update)
    for name, start in since.items():
        versions = {v.version: v.value for v in histories.get(name, ())}
        got = [u.version for u in by_name.get(name, [])]
        expected = list(range(start + 1, max(versions, default=start) + 1))
        if got != expected:
            missing = sorted(set(expected) - set(got))
            problems.append(
                f"{name}: the watcher got versions {_span(got)}, expected {_span(expected)} "
                f"(missing {missing[:10]}, repeated {sorted({v for v in got if got.count(v) > 1})[:10]})"
            )
        for u in by_name.get(name, []):
            if versions.get(u.version) != u.value or versions.get(u.version - 1) != u.old_value:
                problems.append(
                    f"{name}: the watcher's version {u.version} was {u.old_value!r} -> {u.value!r}, the history's "
                    f"{versions.get(u.version - 1)!r} -> {versions.get(u.version)!r}"
                )
    return problems


def _span(versions: Sequence[int]) -> str:
    return f"[{versions[0]}..{versions[-1]}] ({len(versions)})" if versions else "none"
