"""The shared store: sessions, variables, history, event logs and optimization runs in Redis.

Several `dspex serve` processes can serve from one Redis (or Redis Cluster): none holds state
the others need. Each write is one Lua script (`_redis_scripts`) on its session's keys, which
share one hash tag, so it runs atomically on the node that holds them, under one new revision.
The event log is a Redis Stream per session (entry ID `REVISION-1`): watches on every server read
it, so a watch on server A sees writes made through server B in order, and resumes on either.
Optimization leases are keys that expire with the lease.

What a server keeps of its own is only what makes calls cheap and is checked before it matters:
- a session's record for up to `SESSION_CACHE_SECONDS` (tokens never change; a deletion is
  seen at once by the server that made it, and by every write on any server, which the commit
  script refuses), never within that time of the session's expiry;
- each session's revision as this server last saw it, and records it knows are current at that
  revision, so that a transaction reads them without a round trip. Its commit is refused if the
  session moved on (another server wrote it) and the body runs again on fresh reads;
- read counts, written late (`_read_counts`).

A few keys are global (`PREFIX:sessions`, `:ids`, `:runs`, `:optsessions`, `:store`): indexes
by ID written beside the session's script, so an entry may outlive what it names for a moment
(readers skip those), never the reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from ..errors import SessionNotFoundError, StoreUnavailableError, ValidationError
from ..limits import DEFAULT_LIMITS, Limits
from . import _redis_scripts as scripts
from ._codec import RUNS, SESSIONS, TRIALS
from ._interface import Listener, Store, Transaction, check_kept
from ._read_counts import PendingReads
from ._records import (
    RUNNING,
    Change,
    EventLog,
    LogEntry,
    OptimizationRecord,
    SessionRecord,
    SessionSnapshot,
    TrialRecord,
    VariableRecord,
    VariableStatsRecord,
)
from ._redis_codec import dump_frames, dump_variable, load_variable, log_entry
from ._redis_listen import StreamReader
from ._redis_transaction import Conflict, RedisTransaction

T = TypeVar("T")
log = logging.getLogger("dspex.store")

#: Seconds a server answers from its copy of a session's record.
SESSION_CACHE_SECONDS = 1.0
#: Records, and bytes of them, kept per session by one server; past either the copy starts again. Larger
#: versions are not kept (a read of one costs its round trip anyway).
MAX_CACHED_RECORDS = 10_000
MAX_CACHED_BYTES = 32 * 1024 * 1024
MAX_CACHED_BLOB = 1024 * 1024
#: Variable and run IDs whose sessions one server remembers (they never change; past it, it asks again).
MAX_INDEXED_IDS = 200_000
#: Seconds a call waits for a session's stream reader to know where it starts (Redis is down otherwise).
READER_START_SECONDS = 15.0
#: redis-py's socket timeouts when the URL sets none: above the stream readers' blocking reads (2 s).
SOCKET_TIMEOUT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 5.0
#: The oldest Redis the scripts run on (the lease check uses PEXPIRETIME).
MIN_REDIS_VERSION = (7, 0)
#: How long a deleted session's end marker stays in its log (ms), for other servers' readers.
END_MARKER_MS = 60_000
#: What one logged change costs beyond its value and metadata, as the memory store counts it.
CHANGE_OVERHEAD_BYTES = 512
#: Attempts of one transaction against writes of other servers before it gives up.
MAX_ATTEMPTS = 64
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SCRIPTS = {
    name: getattr(scripts, name)
    for name in (
        "COMMIT",
        "CREATE_SESSION",
        "GET_SESSION",
        "TOUCH_SESSION",
        "DELETE_SESSION",
        "GET_VARIABLES",
        "COUNT_VARIABLES",
        "ALL_VARIABLES",
        "EXPORT_HISTORY",
        "EVENT_LOG",
        "HISTORY",
        "COUNT_READS",
        "STATS",
        "CLAIM_RUN",
        "UPDATE_RUN",
        "GET_RUN",
        "VARIABLE_RUNS",
        "RUNNING_RUNS",
        "ADD_TRIAL",
        "TRIALS",
    )
}


class _Local:
    """This server's view of one session: its record, and records current at `revision`."""

    __slots__ = (
        "base",
        "cached_bytes",
        "fetched",
        "generation",
        "listeners",
        "lock",
        "names",
        "reader",
        "record",
        "records",
        "revision",
        "sid",
    )

    def __init__(self, session_id: str, base: str) -> None:
        self.sid = session_id
        self.base = base
        self.record: SessionRecord | None = None
        self.fetched = 0.0
        #: The session's generation (its log's history ID, new each time the ID is created) everything here
        #: belongs to; None: not known.
        self.generation: bytes | None = None
        #: The revision `records` are current at; None: not known.
        self.revision: int | None = None
        self.records: dict[str, tuple[VariableRecord, bytes]] = {}  # variable ID -> (record, as stored)
        self.names: dict[str, str] = {}
        self.cached_bytes = 0
        #: Held by this server's transactions of the session, so they do not conflict with each other.
        self.lock = asyncio.Lock()
        self.listeners: list[Listener] = []
        self.reader: StreamReader | None = None

    def absent(self) -> None:
        """The session was found missing."""
        self.record, self.fetched = None, time.monotonic()

    def known_absent(self) -> bool:
        return self.record is None and time.monotonic() - self.fetched < SESSION_CACHE_SECONDS

    def cached(self, ref: str) -> tuple[VariableRecord, bytes] | None:
        return self.records.get(self.names.get(ref, ref))

    def reset(self, revision: int | None = None) -> None:
        self.revision = revision
        self.records.clear()
        self.names.clear()
        self.cached_bytes = 0

    def observe(self, raw_revision: bytes | None, generation: bytes | None) -> int:
        """The state a read saw. Another generation (the session was deleted, or re-created, meanwhile) drops
        everything this server held of the one before, its record included."""
        if generation != self.generation:
            self.reset()
            if generation is None or self.generation is not None:
                self.record, self.fetched = None, 0.0
            self.generation = generation
        return _revision(raw_revision)

    def put(self, record: VariableRecord, blob: bytes) -> None:
        held = self.records.get(record.id)
        if held is not None:
            if held[1] is blob:  # a read that found the record held: nothing to do
                return
            self.drop(record)
        if len(blob) > MAX_CACHED_BLOB:
            return
        if len(self.records) >= MAX_CACHED_RECORDS or self.cached_bytes + len(blob) > MAX_CACHED_BYTES:
            self.reset(self.revision)
        self.records[record.id] = (record, blob)
        self.names[record.name] = record.id
        self.cached_bytes += len(blob)

    def drop(self, record: VariableRecord) -> None:
        held = self.records.pop(record.id, None)
        if held is not None:
            self.cached_bytes -= len(held[1])
        self.names.pop(record.name, None)

    def seen(self, revision: int, found: Iterable[tuple[VariableRecord, bytes]]) -> None:
        """Records read at `revision`: kept if that is the revision known (a newer one starts the copy again)."""
        if self.revision is None or revision > self.revision:
            self.reset(revision)
        if revision == self.revision:
            for record, blob in found:
                self.put(record, blob)


_TIMEOUTS = {"socket_timeout": SOCKET_TIMEOUT_SECONDS, "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS}


def _check_version(info: dict[str, Any], url: str) -> None:
    """OSError unless every node is Redis MIN_REDIS_VERSION or newer (a cluster answers per node)."""
    nodes = [info] if "redis_version" in info else [v for v in info.values() if isinstance(v, dict)]
    for node in nodes:
        version = tuple(int(part) for part in str(node.get("redis_version", "0")).split(".")[:2])
        if version < MIN_REDIS_VERSION:
            wanted = ".".join(map(str, MIN_REDIS_VERSION))
            raise OSError(f"Redis store {url!r}: Redis {node.get('redis_version')} is too old; {wanted} or newer")


def _revision(raw: bytes | None) -> int:
    return int(raw) if raw else 0


def _ms(seconds: float) -> int:
    """A time as Redis takes it for an expiry: whole milliseconds, at least 1."""
    return max(1, int(seconds * 1000))


class RedisStore(Store):
    """A store in Redis at `url` (`redis://HOST:PORT/DB`), or in a Redis Cluster (`cluster=True`, any node's
    `redis://HOST:PORT`). Every key starts with `prefix`, so several deployments (or test runs) can share
    one Redis. Raises OSError if Redis cannot be reached."""

    shared = True

    def __init__(self, url: str, limits: Limits = DEFAULT_LIMITS, prefix: str = "dspex", cluster: bool = False) -> None:
        super().__init__(limits)
        if not _PREFIX.fullmatch(prefix):
            raise ValidationError(
                f"Redis key prefix {prefix[:70]!r}: use 1 to 64 letters, digits, '_', '.', '-'", rule="store"
            )
        self.url, self.prefix, self.cluster = url, prefix, cluster
        self.store_id = self._claim_store_id()
        self._client: Any = (aioredis.RedisCluster if cluster else aioredis.Redis).from_url(url, **_TIMEOUTS)
        self._scripts = {name: self._client.register_script(source) for name, source in _SCRIPTS.items()}
        self._locals: dict[str, _Local] = {}
        self._var_sessions: dict[str, str] = {}  # variable ID -> its session (never changes)
        self._run_sessions: dict[str, str] = {}  # run ID -> its session
        self._reads = PendingReads(self._write_reads)
        self._closed = False
        #: The retention limits each commit script applies, as it reads them.
        self._retention = [
            b"%d" % limits.max_event_log_entries,
            b"%d" % limits.max_event_log_bytes,
            b"%d" % limits.max_history_per_variable,
            b"%d" % limits.max_history_bytes,
            repr(float(limits.max_history_age_seconds or 0)).encode(),
        ]

    def _claim_store_id(self) -> str:
        """The ID of the data under this prefix, made by the first server that used it."""
        sync: Any = (redis.RedisCluster if self.cluster else redis.Redis).from_url(self.url, **_TIMEOUTS)
        try:
            _check_version(sync.info("server"), self.url)
            key = f"{self.prefix}:store"
            sync.set(key, secrets.token_hex(8), nx=True)
            return sync.get(key).decode()
        except redis.RedisError as exc:
            raise OSError(f"Redis store {self.url!r}: {exc}") from exc
        finally:
            sync.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r}, cluster={self.cluster})"

    # -- plumbing

    def _local(self, session_id: str) -> _Local:
        local = self._locals.get(session_id)
        if local is None:
            if len(self._locals) >= max(self.limits.max_sessions, 1):
                self._evict()
            local = self._locals[session_id] = _Local(session_id, f"{self.prefix}:{{{session_id}}}")
        return local

    def _evict(self) -> None:
        """Forgets views nobody uses now (no listener, no transaction under way)."""
        for sid in [s for s, v in self._locals.items() if not v.listeners and not v.lock.locked()]:
            del self._locals[sid]

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    async def _run(self, name: str, local: _Local, *args: Any) -> Any:
        """Runs a script on the session's keys; StoreUnavailableError when Redis cannot be reached."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        try:
            return await self._scripts[name](keys=[local.base + ":meta"], args=[local.base, *args])
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    async def _command(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: redis.RedisError) -> StoreUnavailableError:
        return StoreUnavailableError(f"the Redis store at {self.url} failed: {exc}", store="redis")

    async def _session_of(self, variable_id: str) -> _Local | None:
        """The session holding a variable ID (or named by a run over it), from the global index."""
        return await self._session_in(self._var_sessions, "ids", variable_id)

    async def _session_of_run(self, optimization_id: str) -> _Local | None:
        return await self._session_in(self._run_sessions, "runs", optimization_id)

    async def _session_in(self, known: dict[str, str], index: str, key: str) -> _Local | None:
        """The session a global index (`PREFIX:ids`, `:runs`) names for `key`, remembered in `known`."""
        sid = known.get(key)
        if sid is None:
            raw = await self._command(self._client.hget(self._key(index), key))
            if raw is None:
                return None
            sid = raw.decode()
            self._index(known, key, sid)
        return self._local(sid)

    def _decode(self, local: _Local, blob: bytes) -> tuple[VariableRecord, bytes]:
        record = load_variable(blob)
        self._index(self._var_sessions, record.id, local.sid)
        return record, blob

    def _held_or_decoded(self, local: _Local, ref: str, blob: bytes) -> tuple[VariableRecord, bytes]:
        """The record of a version read by `ref`: the one this server holds when the stored bytes are the same."""
        held = local.cached(ref)
        return held if held is not None and held[1] == blob else self._decode(local, blob)

    @staticmethod
    def _index(index: dict[str, str], key: str, session_id: str) -> None:
        if len(index) >= MAX_INDEXED_IDS:
            index.clear()
        index[key] = session_id

    # -- sessions

    async def create_session(self, record: SessionRecord) -> bool:
        session_id = record.session_id
        local = self._local(session_id)
        generation = secrets.token_hex(8)
        index = self._key("sessions")
        await self._command(self._client.sadd(index, session_id))  # before: a crash between leaves no unindexed session
        created = await self._run("CREATE_SESSION", local, SESSIONS.dumps(record), generation, repr(record.last_seen))
        if not created:
            return False
        await self._command(self._client.sadd(index, session_id))  # after: a deletion's index update in between
        local.observe(b"0", generation.encode())
        local.record, local.fetched = record, time.monotonic()
        local.reset(0)
        return True

    async def get_session(self, session_id: str) -> SessionRecord | None:
        local = self._local(session_id)
        record = local.record
        if (
            record is not None
            and time.monotonic() - local.fetched < SESSION_CACHE_SECONDS
            and time.time() < record.expires_at - SESSION_CACHE_SECONDS
        ):
            return record
        raw, last_seen, generation = await self._run("GET_SESSION", local)
        local.observe(None, generation)
        record = None
        if raw is not None:
            record = SESSIONS.loads(raw)
            if last_seen is not None:
                record = record._replace(last_seen=float(last_seen))
        local.record, local.fetched = record, time.monotonic()
        return record

    async def revision(self, session_id: str) -> int:
        local = self._local(session_id)
        return _revision(await self._command(self._client.hget(local.base + ":meta", "rev")))

    async def touch_session(self, session_id: str, now: float) -> None:
        record = await self.get_session(session_id)
        local = self._local(session_id)
        if record is not None and local.generation is not None:
            local.record = record._replace(last_seen=now)
            await self._run("TOUCH_SESSION", local, local.generation, repr(now))

    async def delete_session(self, session_id: str) -> int:
        local = self._local(session_id)
        async with local.lock:
            found = await self._run("DELETE_SESSION", local, END_MARKER_MS)
            local.observe(None, None)
        if found is None:
            await self._forget_globally(session_id, [], [])  # a deletion that died before its index update
            return 0
        vids, rids = found
        await self._forget_globally(session_id, [v.decode() for v in vids], [r.decode() for r in rids])
        return len(vids)

    async def _forget_globally(self, session_id: str, vids: list[str], rids: list[str]) -> None:
        """Index entries of what a session no longer holds (or the whole session, when it is gone)."""
        client = self._client
        steps = []
        if vids:
            steps.append(client.hdel(self._key("ids"), *vids))
        if rids:
            steps.append(client.hdel(self._key("runs"), *rids))
        if session_id:
            steps.append(client.srem(self._key("sessions"), session_id))
            steps.append(client.srem(self._key("optsessions"), session_id))
        for vid in vids:
            self._var_sessions.pop(vid, None)
            self._reads.forget(vid)
        for rid in rids:
            self._run_sessions.pop(rid, None)
        if steps:
            await self._command(asyncio.gather(*steps))
        if session_id and await self._command(self._client.exists(self._local(session_id).base + ":session")):
            await self._command(self._client.sadd(self._key("sessions"), session_id))  # re-created meanwhile

    async def session_ids(self) -> list[str]:
        members = await self._command(self._client.smembers(self._key("sessions")))
        return sorted(m.decode() for m in members)

    # -- writes

    async def transact(self, session_id: str, body: Callable[[Transaction], Awaitable[T]]) -> tuple[T, int]:
        local = self._local(session_id)
        async with local.lock:
            for _ in range(MAX_ATTEMPTS):
                if local.revision is None or local.generation is None:
                    await self._fresh_state(local)
                txn = RedisTransaction(self, local, local.revision, local.generation)  # type: ignore[arg-type]
                try:
                    result = await body(txn)
                except Conflict:
                    local.reset()
                    continue
                except Exception:
                    if not txn.verified and await self._moved_on(local, txn):
                        continue
                    raise
                if not txn.staged:
                    if not txn.verified and await self._moved_on(local, txn):
                        continue
                    return result, txn.base
                try:
                    if await self._commit(local, txn):
                        return result, txn.revision
                except Conflict:
                    pass
                except BaseException:  # the write may have landed (a reply lost): never run it again
                    local.reset()
                    raise
                local.reset()
        raise StoreUnavailableError(
            f"session {session_id!r}: {MAX_ATTEMPTS} attempts of a write lost to writes of other servers",
            store="redis",
        )

    async def _reader_started(self, local: _Local) -> None:
        """Waits until the session's stream reader (if it has one) knows where it starts."""
        reader = local.reader
        if reader is None or reader.ready.is_set():
            return
        try:
            await asyncio.wait_for(reader.ready.wait(), READER_START_SECONDS)
        except TimeoutError:
            raise StoreUnavailableError(
                f"the Redis store at {self.url}: the event log of session {local.sid!r} could not be read",
                store="redis",
            ) from None

    async def _state(self, local: _Local) -> tuple[bytes | None, bytes | None]:
        """The session's revision and generation as Redis has them now (None, None: it is gone)."""
        return await self._command(self._client.hmget(local.base + ":meta", "rev", "log_id"))

    async def _fresh_state(self, local: _Local) -> None:
        """Takes the session's state from Redis; SessionNotFoundError if it is gone."""
        raw_revision, generation = await self._state(local)
        revision = local.observe(raw_revision, generation)
        if generation is None:
            local.absent()
            raise SessionNotFoundError(f"session {local.sid!r} not found", session=local.sid)
        local.reset(revision)

    async def _moved_on(self, local: _Local, txn: RedisTransaction) -> bool:
        """Whether what the body saw may be out of date: it read this server's copy, and the session has
        moved on since (then the copy is dropped, and the body runs again)."""
        raw_revision, generation = await self._state(local)
        if _revision(raw_revision) == txn.base and generation == txn.generation:
            return False
        local.reset()
        return True

    async def _commit(self, local: _Local, txn: RedisTransaction) -> bool:
        """Runs the commit script; False when another server wrote the session first (the copy is dropped)."""
        missing = [vid for vid in txn.staged if not txn.original_known(vid)]
        if missing:
            revision, found = await self.read_variables(local, missing)
            txn.check(revision)
            for blob in found:
                if blob is not None:
                    record, blob = self._decode(local, blob)
                    txn.known[record.id] = (record, blob)
        items: list[bytes] = []
        changes: list[bytes | None] = []
        created: list[str] = []
        blobs: dict[str, bytes] = {}
        cost = 0
        for vid, record in txn.staged.items():
            old = txn.known.get(vid)
            if record is None:
                if old is None:  # created and deleted within the transaction: nothing happened
                    continue
                items += (b"d", vid.encode(), old[0].name.encode(), b"", b"0", b"0", b"0")
                changes += (old[1], None, txn.deleted_by[vid].encode())
                cost += CHANGE_OVERHEAD_BYTES
                continue
            blob = blobs[vid] = dump_variable(record)
            size = record.value.nbytes + record.metadata_bytes
            restored = txn.restored.get(vid, ())
            op = b"r" if vid in txn.restored else b"p"
            items += (op, vid.encode(), record.name.encode(), blob, b"%d" % size, repr(record.updated_at).encode())
            items.append(b"%d" % len(restored))
            for earlier in restored:
                earlier_size = earlier.value.nbytes + earlier.metadata_bytes
                items += (dump_variable(earlier), b"%d" % earlier_size, repr(earlier.updated_at).encode())
            changes += (old[1] if old is not None else None, blob, record.updated_by.encode())
            cost += size + CHANGE_OVERHEAD_BYTES
            if old is None:
                created.append(vid)
        payload = dump_frames(
            [b"%d" % txn.base, repr(txn.now).encode(), b"%d" % cost, dump_frames(changes), *self._retention, *items]
        )
        await self._reader_started(local)  # it must start before this write, so that its listeners get it
        if created:  # indexed first: a created variable is never without its entry (one refused goes again)
            await self._command(self._client.hset(self._key("ids"), mapping=dict.fromkeys(created, local.sid)))
        outcome = await self._run("COMMIT", local, txn.generation, payload)
        status = outcome[0]
        if status != 1:
            if created:  # nothing was created: the index entries go again
                await self._command(self._client.hdel(self._key("ids"), *created))
            if status == -2:
                raise ValueError(f"restore() creates variables; {outcome[1].decode()!r} exists")
            local.reset()
            if status == 0:
                raise SessionNotFoundError(f"session {local.sid!r} ended during the write", session=local.sid)
            return False
        local.revision = txn.revision
        for vid, record in txn.staged.items():
            if record is None:
                old = txn.known.get(vid)
                if old is not None:
                    local.drop(old[0])
            else:
                self._index(self._var_sessions, vid, local.sid)
                local.put(record, blobs[vid])
        if local.reader is not None:
            local.reader.committed(self._entry(txn))
        deleted = [vid for vid, record in txn.staged.items() if record is None and vid in txn.known]
        dropped = [r.decode() for r in outcome[2:]]
        if deleted or dropped:
            await self._forget_globally("", deleted, dropped)
        return True

    def _entry(self, txn: RedisTransaction) -> LogEntry:
        """The log entry of a committed transaction, as the stream holds it."""
        changes = []
        for vid, record in txn.staged.items():
            old = txn.known.get(vid)
            if record is None:
                if old is not None:
                    changes.append(Change(old[0], None, txn.deleted_by[vid]))
            else:
                changes.append(Change(old[0] if old is not None else None, record, record.updated_by))
        return LogEntry(txn.revision, txn.now, tuple(changes))

    # -- reads

    async def read_variable(self, local: _Local, ref: str) -> tuple[int, tuple[VariableRecord, bytes] | None]:
        """A variable by name or ID with the revision it was read at (what transactions check)."""
        raw_revision, generation, blob = await self._run("GET_VARIABLES", local, ref)
        revision = local.observe(raw_revision, generation)
        if blob is None:
            return revision, None
        found = self._held_or_decoded(local, ref, blob)
        local.seen(revision, (found,))
        return revision, found

    async def read_variables(self, local: _Local, refs: list[str]) -> tuple[int, list[bytes | None]]:
        raw_revision, generation, *blobs = await self._run("GET_VARIABLES", local, *refs)
        return local.observe(raw_revision, generation), blobs

    async def count_variables(self, local: _Local, vids: list[str]) -> tuple[int, int, set[str]]:
        raw_revision, generation, count, *exists = await self._run("COUNT_VARIABLES", local, *vids)
        existing = {vid for vid, there in zip(vids, exists, strict=True) if there}
        return local.observe(raw_revision, generation), count, existing

    async def all_variables(self, local: _Local) -> tuple[int, list[VariableRecord]]:
        raw_revision, generation, blobs = await self._run("ALL_VARIABLES", local)
        return local.observe(raw_revision, generation), [self._decode(local, blob)[0] for blob in blobs]

    async def get_variable(self, session_id: str, ref: str) -> VariableRecord | None:
        _, found = await self.read_variable(self._local(session_id), ref)
        return found[0] if found is not None else None

    async def get_variable_by_id(self, variable_id: str) -> VariableRecord | None:
        local = await self._session_of(variable_id)
        if local is None:
            return None
        _, found = await self.read_variable(local, variable_id)
        return found[0] if found is not None and found[0].id == variable_id else None

    async def get_variables(self, session_id: str, refs: list[str]) -> dict[str, VariableRecord]:
        local = self._local(session_id)
        revision, blobs = await self.read_variables(local, refs)
        pairs = zip(refs, blobs, strict=True)
        found = {ref: self._held_or_decoded(local, ref, blob) for ref, blob in pairs if blob is not None}
        local.seen(revision, found.values())
        return {ref: record for ref, (record, _) in found.items()}

    async def snapshot(self, session_id: str, names: Iterable[str]) -> tuple[int, dict[str, VariableRecord]]:
        local = self._local(session_id)
        await self._reader_started(local)  # its start must not be later than what this reads
        names = list(dict.fromkeys(names))
        revision, blobs = await self.read_variables(local, names)
        if local.generation is None:
            local.absent()
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        found = {}
        for name, blob in zip(names, blobs, strict=True):
            if blob is not None:
                record = self._held_or_decoded(local, name, blob)[0]
                if record.name == name:
                    found[name] = record
        return revision, found

    async def export_snapshot(
        self, session_id: str, select: Callable[[str], bool] | None = None, include_history: bool = False
    ) -> SessionSnapshot:
        local = self._local(session_id)
        for _ in range(MAX_ATTEMPTS):
            revision, every = await self.all_variables(local)
            if local.generation is None:
                raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
            records = sorted((r for r in every if select is None or select(r.name)), key=lambda r: r.name)
            names = {r.id: r.name for r in every}
            if not include_history:
                return SessionSnapshot(revision, records, names, {}, [], {})
            found = await self._run("EXPORT_HISTORY", local, revision, *[r.id for r in records])
            if found[0] == 0:
                raise SessionNotFoundError(f"session {session_id!r} ended during the export", session=session_id)
            if found[0] == -1:
                continue  # written meanwhile: read it all again, at one revision
            _, per_variable, runs = found
            history = {
                record.id: [load_variable(blob) for blob in versions[:-1]]  # the last is the current one
                for record, (versions, _) in zip(records, per_variable, strict=True)
            }
            run_records, trials = [], {}
            for rid, rec, run_trials in runs:
                run = RUNS.loads(rec)
                run_records.append(run)
                trials[rid.decode()] = [TRIALS.loads(t) for t in run_trials]
            return SessionSnapshot(revision, records, names, history, run_records, trials)
        raise StoreUnavailableError(
            f"session {session_id!r} was written {MAX_ATTEMPTS} times while being exported; export it again",
            store="redis",
        )

    async def list_variables(self, session_id: str, pattern: str = "") -> list[VariableRecord]:
        _, records = await self.all_variables(self._local(session_id))
        return sorted((r for r in records if not pattern or fnmatchcase(r.name, pattern)), key=lambda r: r.name)

    async def history(self, variable_id: str, limit: int = 100, offset: int = 0) -> list[VariableRecord]:
        local = await self._session_of(variable_id)
        if local is None or limit <= 0:
            return []
        blobs = await self._run("HISTORY", local, variable_id, limit, max(offset, 0))
        return [load_variable(blob) for blob in reversed(blobs)]

    async def count_reads(self, variable_ids: list[str]) -> None:
        self._reads.add(variable_ids)

    async def _write_reads(self, counts: dict[str, int]) -> None:
        by_session: dict[str, list[Any]] = {}
        for vid, n in counts.items():
            sid = self._var_sessions.get(vid)
            if sid is not None:
                by_session.setdefault(sid, []).extend((vid, n))
        done = await asyncio.gather(
            *(self._run("COUNT_READS", self._local(sid), *args) for sid, args in by_session.items()),
            return_exceptions=True,
        )
        for args, outcome in zip(by_session.values(), done, strict=True):
            if isinstance(outcome, BaseException):  # gathered again for the next write, that session's only
                log.error("writing read counts failed: %s", outcome)
                for vid, n in zip(args[::2], args[1::2], strict=True):
                    self._reads.counts[vid] = self._reads.counts.get(vid, 0) + n

    async def stats(self, variable_id: str) -> VariableStatsRecord:
        local = await self._session_of(variable_id)
        if local is None:
            return VariableStatsRecord()
        reads, optimized, current, blob = await self._run("STATS", local, variable_id)
        version = load_variable(blob).version if blob is not None else 0
        optimizing = float(optimized) if optimized else 0.0
        if current is not None:
            run = RUNS.loads(current)
            if run.ended_at is None:
                optimizing += time.time() - run.segment_start
        served = (int(reads) if reads else 0) + (self._reads.pending(variable_id) if version else 0)
        return VariableStatsRecord(served, version, optimizing)

    # -- the event log

    async def event_log(self, session_id: str, from_revision: int, limit: int) -> EventLog:
        local = self._local(session_id)
        await self._reader_started(local)
        found = await self._run("EVENT_LOG", local, max(from_revision, 0), max(limit, 0))
        if not found:
            local.absent()
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        history_id, raw_revision, first, entries = found
        revision = _revision(raw_revision)
        oldest = int(first.split(b"-")[0]) if first else revision + 1
        check_kept(session_id, from_revision, oldest, revision)
        return EventLog(history_id.decode(), oldest, revision, [log_entry(i, f) for i, f in entries])

    def listen(self, session_id: str, listener: Listener) -> Callable[[], None]:
        """Refused at once for a session this server just found missing; otherwise the reader finds out
        (and hands the listener None)."""
        local = self._local(session_id)
        if local.known_absent():
            raise SessionNotFoundError(f"session {session_id!r} not found", session=session_id)
        local.listeners.append(listener)
        if local.reader is None:
            local.reader = StreamReader(self._client, local)

        def stop() -> None:
            with contextlib.suppress(ValueError):  # already gone with its session
                local.listeners.remove(listener)
            if not local.listeners and local.reader is not None:
                local.reader.stop()
                local.reader = None

        return stop

    # -- optimization runs

    async def claim_optimization(self, record: OptimizationRecord, now: float) -> OptimizationRecord | None:
        local = self._local(record.session_id)
        vids = list(record.variable_ids)
        client = self._client
        steps = [
            client.hset(self._key("runs"), record.id, record.session_id),
            client.sadd(self._key("optsessions"), record.session_id),
        ]
        if vids:
            steps.append(client.hset(self._key("ids"), mapping={vid: record.session_id for vid in vids}))
        await self._command(asyncio.gather(*steps))
        self._index(self._run_sessions, record.id, record.session_id)
        status, *rest = await self._run(
            "CLAIM_RUN",
            local,
            record.id,
            int(now * 1000),
            RUNS.dumps(record),
            json.dumps(vids),
            _ms(record.lease_expires_at),
            self.limits.max_optimization_runs,
            *vids,
        )
        if status != 1:
            if status == 2 or not rest[1]:  # refused, and never stored: its index entry goes again
                self._run_sessions.pop(record.id, None)
                await self._command(self._client.hdel(self._key("runs"), record.id))
            if status == 2:
                raise SessionNotFoundError(f"session {record.session_id!r} not found", session=record.session_id)
            return RUNS.loads(rest[0])
        if rest:
            await self._forget_globally("", [], [r.decode() for r in rest])
        return None

    async def update_optimization(
        self, optimization_id: str, change: Callable[[OptimizationRecord], OptimizationRecord]
    ) -> OptimizationRecord | None:
        """Compare-and-set: `change` is applied to the run as read, and stored only if no other change came
        in between; else it is applied again to the newer record."""
        local = await self._session_of_run(optimization_id)
        if local is None:
            return None
        while True:
            seq, rec = await self._run("GET_RUN", local, optimization_id)
            if seq is None:
                return None  # forgotten meanwhile (its variables or session were deleted)
            previous = RUNS.loads(rec)
            record = change(previous)
            ended = previous.ended_at is None and record.ended_at is not None
            segment = repr(record.ended_at - record.segment_start) if ended else ""  # type: ignore[operator]
            stored = await self._run(
                "UPDATE_RUN",
                local,
                optimization_id,
                seq,
                RUNS.dumps(record),
                1 if record.state == RUNNING else 0,
                _ms(record.lease_expires_at),
                segment,
                *record.variable_ids,
            )
            if stored == -1:
                return None
            if stored == 1:
                return record

    async def get_optimization(self, optimization_id: str) -> OptimizationRecord | None:
        local = await self._session_of_run(optimization_id)
        if local is None:
            return None
        _, rec = await self._run("GET_RUN", local, optimization_id)
        return RUNS.loads(rec) if rec is not None else None

    async def variable_optimizations(self, variable_id: str) -> list[OptimizationRecord]:
        local = await self._session_of(variable_id)
        if local is None:
            return []
        return [RUNS.loads(rec) for rec in await self._run("VARIABLE_RUNS", local, variable_id) if rec is not None]

    async def live_optimizations(self) -> list[OptimizationRecord]:
        sessions = await self._command(self._client.smembers(self._key("optsessions")))
        found = await asyncio.gather(*(self._run("RUNNING_RUNS", self._local(s.decode())) for s in sorted(sessions)))
        runs = [RUNS.loads(rec) for recs in found for rec in recs if rec is not None]
        return sorted((run for run in runs if run.state == RUNNING), key=lambda run: (run.started_at, run.id))

    async def add_trial(self, trial: TrialRecord) -> None:
        local = await self._session_of_run(trial.optimization_id)
        if local is not None:
            await self._run("ADD_TRIAL", local, trial.optimization_id, TRIALS.dumps(trial))

    async def trials(self, optimization_id: str) -> list[TrialRecord]:
        local = await self._session_of_run(optimization_id)
        if local is None:
            return []
        return [TRIALS.loads(t) for t in await self._run("TRIALS", local, optimization_id)]

    async def close(self) -> None:
        """Writes the read counts still gathered, stops the stream readers and closes the connections."""
        if self._closed:
            return
        with contextlib.suppress(Exception):  # logged by the flush
            await self._reads.close()
        self._closed = True
        readers = [local.reader for local in self._locals.values() if local.reader is not None]
        for reader in readers:
            reader.stop()
        await asyncio.gather(*(reader.wait() for reader in readers), return_exceptions=True)
        await self._client.aclose()
