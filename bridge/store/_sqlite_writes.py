"""The SQLite store's writes. Each runs on the writer thread, the only connection that writes, as one
`BEGIN IMMEDIATE ... COMMIT` transaction: all of it lands, or (on any error) none of it.

Retention follows the memory store's rules exactly (the conformance suite holds both to them):
a variable's history by count, bytes and age (the history is its versions from `hist_first` on),
a session's event log by entries and bytes. A version that left the history stays while the
event log still names it (as a write's old or new record), and goes with the last log entry
that does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from ..errors import SessionNotFoundError
from ..limits import Limits
from ._codec import RUNS, SESSIONS, TRIALS, VARIABLES
from ._records import OptimizationRecord, SessionRecord, TrialRecord, VariableRecord
from ._sqlite_reads import run_record, variable

#: What one logged change costs beyond its value and metadata, as the memory store counts it.
CHANGE_OVERHEAD_BYTES = 512
#: Log entries past the retention are refused at once but deleted from the file in batches (with the
#: versions only they named), so that a write at steady state does not also delete a row or two.
LOG_GC_BATCH = 64
_NO_HISTORY = 2**63 - 1  # "before the history's start" for any row of a deleted variable

#: A variable's history: (the row ID of its oldest version, how many versions, their bytes).
_History = tuple[int, int, int]

_dumps = json.JSONEncoder(separators=(",", ":")).encode


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; on any error (a failed COMMIT included) it is rolled back, so the connection
    is ready for the next one."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class Staged(NamedTuple):
    """One variable's part of a transaction, as the writer applies it."""

    variable_id: str
    #: The new record; None: deleted.
    record: VariableRecord | None
    #: Who wrote it (for a deletion; a put names its writer in the record).
    writer: str
    #: Earlier versions restored with it, oldest first (see Transaction.restore).
    restored: Sequence[VariableRecord]
    #: Whether this is a restore, which must create the variable.
    creates: bool


#: A committed change as published to listeners: (old record, new record, writer).
Published = tuple[VariableRecord | None, VariableRecord | None, str]


def _named_versions(events: list[tuple[str]]) -> set[int]:
    """The version row IDs some logged changes name (as a write's old or new record)."""
    return {vid for (changes,) in events for change in json.loads(changes) for vid in change[:2] if vid is not None}


class Writes:
    """Every write of the store, bound to its limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    # -- sessions

    def create_session(self, conn: sqlite3.Connection, record: SessionRecord, log_id: str) -> None:
        with _transaction(conn):
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, 0, ?, 1, 0)", (record.session_id, SESSIONS.dumps(record), log_id)
            )

    def save_session(self, conn: sqlite3.Connection, record: SessionRecord) -> None:
        with _transaction(conn):
            conn.execute(
                "UPDATE sessions SET record = ? WHERE session_id = ?", (SESSIONS.dumps(record), record.session_id)
            )

    def delete_session(self, conn: sqlite3.Connection, session_id: str) -> int:
        """Deletes the session with its variables, their versions, its log and its runs; how many variables went."""
        with _transaction(conn):
            ids = [vid for (vid,) in conn.execute("SELECT id FROM variables WHERE session_id = ?", (session_id,))]
            for vid in ids:
                self._forget_runs(conn, vid)
            conn.executemany("DELETE FROM versions WHERE variable_id = ?", [(vid,) for vid in ids])
            named = conn.execute("SELECT changes FROM events WHERE session_id = ?", (session_id,)).fetchall()
            conn.executemany("DELETE FROM versions WHERE id = ?", [(vid,) for vid in _named_versions(named)])
            conn.execute("DELETE FROM variables WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
            for (run_id,) in conn.execute("SELECT id FROM runs WHERE session_id = ?", (session_id,)).fetchall():
                self._drop_run(conn, run_id)
            conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        return len(ids)

    # -- variables

    def commit(
        self,
        conn: sqlite3.Connection,
        session_id: str,
        revision: int,
        now: float,
        staged: Sequence[Staged],
        known: dict[str, VariableRecord],
    ) -> tuple[list[Published], int]:
        """Applies a transaction's staged writes under `revision`, logs them as one entry, and returns the
        changes for listeners and the log's oldest revision. `known`: committed records the transaction
        read (the rest are read here)."""
        with _transaction(conn):
            row = conn.execute(
                "SELECT revision, log_oldest, log_bytes FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if row is None or row[0] != revision - 1:
                raise SessionNotFoundError(f"session {session_id!r} ended during the write", session=session_id)
            _, log_oldest, log_bytes = row
            logged: list[tuple[int | None, int | None, str]] = []
            published: list[Published] = []
            nbytes = 0
            for item in staged:
                vid, record = item.variable_id, item.record
                current = conn.execute(
                    "SELECT head, hist_first, hist_count, hist_bytes FROM variables WHERE id = ?", (vid,)
                ).fetchone()
                if current is None and record is None:  # created and deleted within the transaction
                    continue
                old_id = None if current is None else current[0]
                old = None if current is None else known.get(vid) or self._version(conn, current[0])
                if old_id is not None:  # the log names the old version as this write's old record
                    conn.execute("UPDATE versions SET log_until = ? WHERE id = ?", (revision, old_id))
                if record is None:
                    # Its history goes; versions the kept log still names go with the log entries naming them.
                    conn.execute("DELETE FROM versions WHERE variable_id = ? AND log_until < ?", (vid, log_oldest))
                    conn.execute("DELETE FROM variables WHERE id = ?", (vid,))
                    self._forget_runs(conn, vid)
                    nbytes += CHANGE_OVERHEAD_BYTES
                    logged.append((old_id, None, item.writer))
                    published.append((old, None, item.writer))
                    continue
                if item.creates and current is not None:
                    raise ValueError(f"restore() creates variables; {record.name!r} exists")
                history = (0, 0, 0) if current is None else current[1:]
                for earlier in item.restored:
                    _, history = self._add_version(conn, earlier, 0, history, log_oldest)
                head, (first, count, size) = self._add_version(conn, record, revision, history, log_oldest)
                if current is None:
                    conn.execute(
                        "INSERT INTO variables (id, session_id, name, head, version, hist_first, hist_count, "
                        "hist_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (vid, session_id, record.name, head, record.version, first, count, size),
                    )
                else:
                    conn.execute(
                        "UPDATE variables SET head = ?, version = ?, hist_first = ?, hist_count = ?, hist_bytes = ? "
                        "WHERE id = ?",
                        (head, record.version, first, count, size, vid),
                    )
                nbytes += record.value.nbytes + record.metadata_bytes + CHANGE_OVERHEAD_BYTES
                logged.append((old_id, head, record.updated_by))
                published.append((old, record, record.updated_by))
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)", (session_id, revision, now, nbytes, _dumps(logged))
            )
            log_bytes += nbytes
            compacted = log_oldest
            limits = self.limits
            while revision - log_oldest >= 1 and (
                revision - log_oldest + 1 > limits.max_event_log_entries or log_bytes > limits.max_event_log_bytes
            ):
                (dropped,) = conn.execute(
                    "SELECT nbytes FROM events WHERE session_id = ? AND revision = ?", (session_id, log_oldest)
                ).fetchone()
                log_bytes -= dropped
                log_oldest += 1
            if log_oldest // LOG_GC_BATCH != compacted // LOG_GC_BATCH:
                self._collect(conn, session_id, log_oldest)
            conn.execute(
                "UPDATE sessions SET revision = ?, log_oldest = ?, log_bytes = ? WHERE session_id = ?",
                (revision, log_oldest, log_bytes, session_id),
            )
        return published, log_oldest

    def _version(self, conn: sqlite3.Connection, version_id: int) -> VariableRecord:
        row = conn.execute("SELECT record, head, data FROM versions WHERE id = ?", (version_id,)).fetchone()
        return variable(*row)

    def _add_version(
        self, conn: sqlite3.Connection, record: VariableRecord, log_until: int, history: _History, log_oldest: int
    ) -> tuple[int, _History]:
        """Stores a version as the newest of its variable's history, then moves the history's start past the
        oldest versions over the count, byte or age budget (the newest always stays). One the kept log does
        not name goes at once; the others, with the log entries naming them. Returns the version's row ID and
        the history (first row ID, count, bytes)."""
        value = record.value
        nbytes = len(value.head) + (len(value.data) if value.data is not None else 0) + record.metadata_bytes
        head = conn.execute(
            "INSERT INTO versions (variable_id, log_until, nbytes, updated_at, record, head, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.id, log_until, nbytes, record.updated_at, VARIABLES.dumps(record), *value),
        ).lastrowid
        assert head is not None
        first, count, size = history
        first, count, size = first if count else head, count + 1, size + nbytes
        limits = self.limits
        cutoff = record.updated_at - limits.max_history_age_seconds if limits.max_history_age_seconds else None
        while count > 1:
            over = count > limits.max_history_per_variable or size > limits.max_history_bytes
            if not over and cutoff is None:
                break
            (oldest, oldest_bytes, oldest_at, oldest_until), (after, *_) = conn.execute(
                "SELECT id, nbytes, updated_at, log_until FROM versions WHERE variable_id = ? AND id >= ? "
                "ORDER BY id LIMIT 2",
                (record.id, first),
            ).fetchall()
            if not over and oldest_at >= cutoff:  # type: ignore[operator]
                break
            if oldest_until < log_oldest:
                conn.execute("DELETE FROM versions WHERE id = ?", (oldest,))
            first, count, size = after, count - 1, size - oldest_bytes
        return head, (first, count, size)

    def _collect(self, conn: sqlite3.Connection, session_id: str, log_oldest: int) -> None:
        """Deletes the log entries before `log_oldest` (already refused to readers) and the versions that
        only they still named."""
        named = conn.execute(
            "SELECT changes FROM events WHERE session_id = ? AND revision < ?", (session_id, log_oldest)
        ).fetchall()
        conn.execute("DELETE FROM events WHERE session_id = ? AND revision < ?", (session_id, log_oldest))
        conn.executemany(
            "DELETE FROM versions WHERE id = ? AND log_until < ? AND id < "
            "COALESCE((SELECT hist_first FROM variables WHERE variables.id = versions.variable_id), ?)",
            [(vid, log_oldest, _NO_HISTORY) for vid in _named_versions(named)],
        )

    def count_reads(self, conn: sqlite3.Connection, counts: dict[str, int]) -> None:
        with _transaction(conn):
            conn.executemany(
                "UPDATE variables SET read_count = read_count + ? WHERE id = ?", [(n, vid) for vid, n in counts.items()]
            )

    # -- optimization runs

    def claim_optimization(
        self, conn: sqlite3.Connection, record: OptimizationRecord, now: float
    ) -> OptimizationRecord | None:
        """See Store.claim_optimization: the check and the claim are one transaction."""
        with _transaction(conn):
            for vid in record.variable_ids:
                row = conn.execute(
                    "SELECT r.record FROM var_runs vr JOIN runs r ON r.id = vr.run_id WHERE vr.variable_id = ? "
                    "ORDER BY vr.position DESC LIMIT 1",
                    (vid,),
                ).fetchone()
                if row is not None:
                    holder = run_record(row[0])
                    if holder.live(now):
                        return holder
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, 0, ?) ON CONFLICT (id) DO UPDATE SET "
                "state = excluded.state, record = excluded.record, seq = seq + 1",
                (record.id, record.session_id, record.state, RUNS.dumps(record)),
            )
            for vid in record.variable_ids:
                conn.execute("DELETE FROM var_runs WHERE variable_id = ? AND run_id = ?", (vid, record.id))
                conn.execute(
                    "INSERT INTO var_runs SELECT ?, COALESCE(MAX(position), 0) + 1, ? FROM var_runs "
                    "WHERE variable_id = ?",
                    (vid, record.id, vid),
                )
                while True:
                    oldest = conn.execute(
                        "SELECT run_id, (SELECT COUNT(*) FROM var_runs WHERE variable_id = ?) FROM var_runs "
                        "WHERE variable_id = ? ORDER BY position LIMIT 1",
                        (vid, vid),
                    ).fetchone()
                    if oldest[1] <= self.limits.max_optimization_runs:
                        break
                    self._release_run(conn, oldest[0], vid)
        return None

    def update_optimization(
        self, conn: sqlite3.Connection, record: OptimizationRecord, seq: int, segment: float | None
    ) -> bool:
        """Stores the run's next record if it is still at change `seq` (compare-and-set); False if another
        change came first. `segment`: the seconds to add to its variables' optimization time (it ended)."""
        with _transaction(conn):
            cursor = conn.execute(
                "UPDATE runs SET state = ?, record = ?, seq = seq + 1 WHERE id = ? AND seq = ?",
                (record.state, RUNS.dumps(record), record.id, seq),
            )
            if cursor.rowcount == 0:
                return False
            if segment is not None:
                conn.executemany(
                    "UPDATE variables SET opt_time = opt_time + ? WHERE id = ?",
                    [(segment, vid) for vid in record.variable_ids],
                )
        return True

    def add_trial(self, conn: sqlite3.Connection, trial: TrialRecord) -> None:
        with _transaction(conn):
            conn.execute(
                "INSERT INTO trials (optimization_id, record) SELECT ?, ? "
                "WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)",
                (trial.optimization_id, TRIALS.dumps(trial), trial.optimization_id),
            )

    def _forget_runs(self, conn: sqlite3.Connection, variable_id: str) -> None:
        """A deleted variable keeps no runs; each goes once no variable keeps it."""
        run_ids = [r for (r,) in conn.execute("SELECT run_id FROM var_runs WHERE variable_id = ?", (variable_id,))]
        conn.execute("DELETE FROM var_runs WHERE variable_id = ?", (variable_id,))
        for run_id in run_ids:
            self._release_run(conn, run_id)

    def _release_run(self, conn: sqlite3.Connection, run_id: str, variable_id: str | None = None) -> None:
        if variable_id is not None:
            conn.execute("DELETE FROM var_runs WHERE variable_id = ? AND run_id = ?", (variable_id, run_id))
        if conn.execute("SELECT 1 FROM var_runs WHERE run_id = ? LIMIT 1", (run_id,)).fetchone() is None:
            self._drop_run(conn, run_id)

    def _drop_run(self, conn: sqlite3.Connection, run_id: str) -> None:
        conn.execute("DELETE FROM trials WHERE optimization_id = ?", (run_id,))
        conn.execute("DELETE FROM var_runs WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
