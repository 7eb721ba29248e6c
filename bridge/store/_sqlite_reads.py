"""The SQLite store's queries. Each runs on the reader thread with its connection; a query of several
statements is one read transaction, so it sees one committed state (WAL: writers go on meanwhile)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple

from ._codec import RUNS, SESSIONS, TRIALS, VARIABLES
from ._records import (
    Change,
    LogEntry,
    OptimizationRecord,
    SessionRecord,
    SessionSnapshot,
    StoredValue,
    TrialRecord,
    VariableRecord,
)

_new_tuple = tuple.__new__

#: Bound parameters per statement, under every SQLite build's limit (999 before 3.32).
CHUNK = 500

_CURRENT = "SELECT r.record, r.head, r.data FROM variables v JOIN versions r ON r.id = v.head"


def variable(record: str, head: bytes, data: bytes | None) -> VariableRecord:
    """A version row as its record."""
    return VARIABLES.loads(record, value=_new_tuple(StoredValue, (head, data)))


def run_record(record: str) -> OptimizationRecord:
    return RUNS.loads(record)


@contextlib.contextmanager
def _read(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement inside sees the same committed state."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _marks(n: int) -> str:
    return ",".join("?" * n)


# -- sessions


def sessions(conn: sqlite3.Connection) -> list[tuple[SessionRecord, int, str, int]]:
    """Every session with its revision, its log's history ID and oldest revision: what a store opening the
    file starts from."""
    rows = conn.execute("SELECT record, revision, log_id, log_oldest FROM sessions").fetchall()
    return [(SESSIONS.loads(record), revision, log_id, oldest) for record, revision, log_id, oldest in rows]


# -- variables


def get_variable(conn: sqlite3.Connection, session_id: str, ref: str) -> VariableRecord | None:
    """The session's variable by name, else by ID."""
    row = conn.execute(f"{_CURRENT} WHERE v.session_id = ? AND v.name = ?", (session_id, ref)).fetchone()
    if row is None:
        row = conn.execute(f"{_CURRENT} WHERE v.id = ? AND v.session_id = ?", (ref, session_id)).fetchone()
    return None if row is None else variable(*row)


def get_variable_by_id(conn: sqlite3.Connection, variable_id: str) -> VariableRecord | None:
    row = conn.execute(f"{_CURRENT} WHERE v.id = ?", (variable_id,)).fetchone()
    return None if row is None else variable(*row)


def get_variables(conn: sqlite3.Connection, session_id: str, refs: list[str]) -> dict[str, VariableRecord]:
    """Found refs only: names first, then the rest as IDs, in one read."""
    found: dict[str, VariableRecord] = {}
    with _read(conn):
        unique = list(dict.fromkeys(refs))
        by_name = _current_where(conn, "v.session_id = ? AND v.name IN ({})", session_id, unique)
        found.update({record.name: record for record in by_name})
        rest = [ref for ref in unique if ref not in found]
        by_id = {r.id: r for r in _current_where(conn, "v.session_id = ? AND v.id IN ({})", session_id, rest)}
        found.update({ref: by_id[ref] for ref in rest if ref in by_id})
    return {ref: found[ref] for ref in refs if ref in found}


def _current_where(conn: sqlite3.Connection, where: str, session_id: str, keys: Sequence[str]) -> list[VariableRecord]:
    records = []
    for chunk in _chunks(keys):
        sql = f"{_CURRENT} WHERE {where.format(_marks(len(chunk)))}"
        records += [variable(*row) for row in conn.execute(sql, (session_id, *chunk))]
    return records


def _session_revision(conn: sqlite3.Connection, session_id: str) -> int | None:
    row = conn.execute("SELECT revision FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
    return None if row is None else row[0]


def snapshot(
    conn: sqlite3.Connection, session_id: str, names: list[str]
) -> tuple[int, dict[str, VariableRecord]] | None:
    """The session's revision and its variables among `names`, as one state; None if the session is gone."""
    with _read(conn):
        revision = _session_revision(conn, session_id)
        if revision is None:
            return None
        records = _current_where(conn, "v.session_id = ? AND v.name IN ({})", session_id, list(dict.fromkeys(names)))
    return revision, {record.name: record for record in records}


def list_variables(conn: sqlite3.Connection, session_id: str, pattern: str) -> list[VariableRecord]:
    """Sorted by name; the glob is matched here (fnmatch's rules, as the memory store's) before decoding."""
    with _read(conn):
        names = [n for (n,) in conn.execute("SELECT name FROM variables WHERE session_id = ?", (session_id,))]
        chosen = sorted(n for n in names if not pattern or fnmatchcase(n, pattern))
        records = _current_where(conn, "v.session_id = ? AND v.name IN ({})", session_id, chosen)
    return sorted(records, key=lambda r: r.name)


def count_variables(conn: sqlite3.Connection, session_id: str, ids: list[str]) -> tuple[int, set[str]]:
    """How many variables the session holds, and which of `ids` are among them."""
    with _read(conn):
        (count,) = conn.execute("SELECT COUNT(*) FROM variables WHERE session_id = ?", (session_id,)).fetchone()
        existing: set[str] = set()
        for chunk in _chunks(ids):
            sql = f"SELECT id FROM variables WHERE session_id = ? AND id IN ({_marks(len(chunk))})"
            existing.update(vid for (vid,) in conn.execute(sql, (session_id, *chunk)))
    return count, existing


def dependents(conn: sqlite3.Connection, session_id: str, variable_id: str) -> dict[str, VariableRecord]:
    """The session's variables (by ID) whose dependencies name `variable_id`. Only records holding its
    ID at all (a text search in SQL) are decoded."""
    rows = conn.execute(
        "SELECT r.record, r.head, r.data FROM variables v JOIN versions r ON r.id = v.head "
        "WHERE v.session_id = ? AND v.id != ? AND instr(r.record, ?) > 0",
        (session_id, variable_id, json.dumps(variable_id)),
    ).fetchall()
    records = (variable(*row) for row in rows)
    return {r.id: r for r in records if variable_id in r.dependencies}


def history(conn: sqlite3.Connection, variable_id: str, limit: int, offset: int) -> list[VariableRecord]:
    """Retained versions, newest first."""
    rows = conn.execute(
        "SELECT record, head, data FROM versions WHERE variable_id = ? "
        "AND id >= (SELECT hist_first FROM variables WHERE id = ?) ORDER BY id DESC LIMIT ? OFFSET ?",
        (variable_id, variable_id, max(limit, 0), max(offset, 0)),
    ).fetchall()
    return [variable(*row) for row in rows]


class Stats(NamedTuple):
    read_count: int
    version: int
    optimization_time_s: float
    current_run: OptimizationRecord | None


def stats(conn: sqlite3.Connection, variable_id: str) -> Stats:
    with _read(conn):
        row = conn.execute(
            "SELECT read_count, version, opt_time FROM variables WHERE id = ?", (variable_id,)
        ).fetchone()
        current = _runs_of(conn, variable_id, current_only=True)
    reads, version, optimizing = row if row is not None else (0, 0, 0.0)
    return Stats(reads, version, optimizing, current[0] if current else None)


# -- snapshots for export


def export_snapshot(
    conn: sqlite3.Connection, session_id: str, select: Callable[[str], bool] | None, include_history: bool
) -> SessionSnapshot | None:
    """See Store.export_snapshot; None if the session is gone. `select` runs here, on the reader thread."""
    with _read(conn):
        revision = _session_revision(conn, session_id)
        if revision is None:
            return None
        names = dict(conn.execute("SELECT id, name FROM variables WHERE session_id = ?", (session_id,)).fetchall())
        chosen = sorted(name for name in names.values() if select is None or select(name))
        records = sorted(
            _current_where(conn, "v.session_id = ? AND v.name IN ({})", session_id, chosen), key=lambda r: r.name
        )
        earlier: dict[str, list[VariableRecord]] = {}
        runs: list[OptimizationRecord] = []
        trials: dict[str, list[TrialRecord]] = {}
        if include_history:
            for record in records:
                rows = conn.execute(
                    "SELECT r.record, r.head, r.data FROM versions r JOIN variables v ON v.id = r.variable_id "
                    "WHERE r.variable_id = ? AND r.id >= v.hist_first AND r.id != v.head ORDER BY r.id",
                    (record.id,),
                ).fetchall()
                earlier[record.id] = [variable(*row) for row in rows]
                for run in _runs_of(conn, record.id):
                    if run.id not in trials:
                        runs.append(run)
                        trials[run.id] = get_trials(conn, run.id)
    return SessionSnapshot(revision, records, names, earlier, runs, trials)


# -- the event log


class LogRead(NamedTuple):
    history_id: str
    oldest_revision: int
    revision: int
    entries: list[LogEntry]


def event_log(conn: sqlite3.Connection, session_id: str, from_revision: int, limit: int) -> LogRead | None:
    """The session's log from `from_revision` (if still held), with what names it; None if the session is gone.
    Entries are read only when `from_revision` is held (the caller refuses an older one)."""
    with _read(conn):
        row = conn.execute(
            "SELECT log_id, log_oldest, revision FROM sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        if row is None:
            return None
        log_id, oldest, revision = row
        if from_revision < oldest or limit <= 0:
            return LogRead(log_id, oldest, revision, [])
        rows = conn.execute(
            "SELECT revision, time, changes FROM events WHERE session_id = ? AND revision >= ? "
            "ORDER BY revision LIMIT ?",
            (session_id, from_revision, limit),
        ).fetchall()
        logged = [(rev, when, json.loads(changes)) for rev, when, changes in rows]
        versions = _versions(conn, {vid for _, _, changes in logged for change in changes for vid in change[:2] if vid})
    entries = [
        _new_tuple(
            LogEntry,
            (rev, when, tuple([_new_tuple(Change, (versions.get(o), versions.get(n), w)) for o, n, w in changes])),
        )
        for rev, when, changes in logged
    ]
    return LogRead(log_id, oldest, revision, entries)


def _versions(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, VariableRecord]:
    """Version rows by ID, each decoded once (a write's old record is the previous write's new one)."""
    found: dict[int, VariableRecord] = {}
    wanted = sorted(ids)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        sql = f"SELECT id, record, head, data FROM versions WHERE id IN ({_marks(len(chunk))})"
        for vid, record, head, data in conn.execute(sql, chunk):
            found[vid] = variable(record, head, data)
    return found


# -- optimization runs


def get_run(conn: sqlite3.Connection, optimization_id: str) -> tuple[int, OptimizationRecord] | None:
    """A run with its change counter (for compare-and-set)."""
    row = conn.execute("SELECT seq, record FROM runs WHERE id = ?", (optimization_id,)).fetchone()
    return None if row is None else (row[0], run_record(row[1]))


def _runs_of(conn: sqlite3.Connection, variable_id: str, current_only: bool = False) -> list[OptimizationRecord]:
    order = "DESC LIMIT 1" if current_only else ""
    rows = conn.execute(
        "SELECT r.record FROM var_runs vr JOIN runs r ON r.id = vr.run_id WHERE vr.variable_id = ? "
        f"ORDER BY vr.position {order}",
        (variable_id,),
    ).fetchall()
    return [run_record(record) for (record,) in rows]


def variable_runs(conn: sqlite3.Connection, variable_id: str) -> list[OptimizationRecord]:
    """The variable's retained runs, oldest first."""
    return _runs_of(conn, variable_id)


def running(conn: sqlite3.Connection) -> list[OptimizationRecord]:
    return [run_record(record) for (record,) in conn.execute("SELECT record FROM runs WHERE state = 'running'")]


def get_trials(conn: sqlite3.Connection, optimization_id: str) -> list[TrialRecord]:
    rows = conn.execute("SELECT record FROM trials WHERE optimization_id = ? ORDER BY id", (optimization_id,))
    return [TRIALS.loads(record) for (record,) in rows]
