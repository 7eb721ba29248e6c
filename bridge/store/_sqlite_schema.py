"""The SQLite store's file: its tables, how each connection is set up, and the lock that keeps it to one server.

One server process owns a database file (an exclusive lock on `PATH.lock`, which the kernel
drops when the process dies, even by SIGKILL): the store keeps sessions and revisions in
memory as the only writer, so a second server on the same file would corrupt that.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

#: Bumped when the tables change; a file of a newer version is refused rather than misread.
SCHEMA_VERSION = 1

#: `PRAGMA synchronous` levels a server may run with (docs/stores.md says what each survives).
SYNCHRONOUS = ("full", "normal")

#: Milliseconds a connection waits on another's lock before failing. Within one server only the
#: checkpointer can hold one, briefly; the writer is a single connection, so writers never wait.
BUSY_TIMEOUT_MS = 30_000

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
-- A session: its record (JSON), its revision, and its event log's ID, oldest revision and bytes.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    revision INTEGER NOT NULL,
    log_id TEXT NOT NULL,
    log_oldest INTEGER NOT NULL,
    log_bytes INTEGER NOT NULL
) WITHOUT ROWID;
-- A live variable: its current version (a row of versions) and number, its history (the versions
-- from hist_first on) and the history's size, and its stats.
CREATE TABLE variables (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    head INTEGER NOT NULL,
    version INTEGER NOT NULL,
    hist_first INTEGER NOT NULL,
    hist_count INTEGER NOT NULL,
    hist_bytes INTEGER NOT NULL,
    read_count INTEGER NOT NULL DEFAULT 0,
    opt_time REAL NOT NULL DEFAULT 0,
    UNIQUE (session_id, name)
) WITHOUT ROWID;
-- Every kept version, in the order written: in its variable's history, or only still named by the
-- event log (log_until: the last logged revision naming it), and deleted once neither holds it.
CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    variable_id TEXT NOT NULL,
    log_until INTEGER NOT NULL,
    nbytes INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    record TEXT NOT NULL,
    head BLOB NOT NULL,
    data BLOB
);
CREATE INDEX versions_variable ON versions (variable_id);
-- Each session's event log: one row per write, its changes as [old version id, new version id, writer].
CREATE TABLE events (
    session_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    time REAL NOT NULL,
    nbytes INTEGER NOT NULL,
    changes TEXT NOT NULL,
    PRIMARY KEY (session_id, revision)
) WITHOUT ROWID;
-- Optimization runs (seq: bumped by every change, for compare-and-set), each variable's runs in
-- order (the last is current), and each run's iterations in order.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX runs_session ON runs (session_id);
CREATE INDEX runs_running ON runs (state) WHERE state = 'running';
CREATE TABLE var_runs (
    variable_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (variable_id, position)
) WITHOUT ROWID;
CREATE INDEX var_runs_run ON var_runs (run_id);
CREATE TABLE trials (id INTEGER PRIMARY KEY, optimization_id TEXT NOT NULL, record TEXT NOT NULL);
CREATE INDEX trials_run ON trials (optimization_id);
"""


class DatabaseInUseError(OSError):
    """Another server process has the database open."""


def lock(path: Path) -> int:
    """Takes the database's lock file, exclusively; returns its descriptor (closing it releases the lock)."""
    import fcntl

    try:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"SQLite store {str(path)!r}: the directory {str(path.parent)!r} does not exist"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatabaseInUseError(
            f"SQLite store {str(path)!r} is in use by another server process; one server per database file"
        ) from None
    return fd


def check_synchronous(level: str) -> str:
    if level not in SYNCHRONOUS:
        raise ValueError(f"SQLite synchronous must be one of {', '.join(SYNCHRONOUS)}, not {level!r}")
    return level


def connect(path: Path, synchronous: str, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit BEGIN IMMEDIATE ... COMMIT)."""
    import sqlite3  # here, not at the top: `dspex serve --help` and a memory server never load it

    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, cached_statements=256)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA synchronous = {check_synchronous(synchronous)}")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def prepare(path: Path) -> str:
    """Creates the tables in a new file, checks an existing one's version, and returns the store's ID.

    The ID is made once, with the file, so clients see the same store across restarts.
    """
    with contextlib.closing(connect(path, "full")) as conn:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise OSError(f"SQLite store {str(path)!r}: cannot use write-ahead logging (journal mode {mode!r})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _TABLES.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO meta VALUES ('store_id', ?)", (secrets.token_hex(8),))
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise OSError(
                    f"SQLite store {str(path)!r} has schema version {version}; this server reads version "
                    f"{SCHEMA_VERSION} (a newer dspex made it?)"
                )
            store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return str(store_id)
