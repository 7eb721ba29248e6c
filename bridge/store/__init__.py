"""Where sessions, variables and event logs live. One interface; every backend passes one conformance suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ValidationError
from ..limits import DEFAULT_LIMITS, Limits
from ._interface import Listener, Store, Transaction
from ._memory import MemoryStore
from ._records import (
    FINISH_STATES,
    RUN_STATES,
    RUNNING,
    AccessRuleRecord,
    Change,
    EventLog,
    LogEntry,
    OptimizationRecord,
    SessionRecord,
    SessionSnapshot,
    StoredValue,
    TrialRecord,
    VariableRecord,
    VariableStatsRecord,
    created_record,
)

if TYPE_CHECKING:
    from ._redis import RedisStore
    from ._sqlite import SQLiteStore


class Backend(NamedTuple):
    """A kind of store, opened from the part of its spec after the scheme (`sqlite:PATH` -> PATH)."""

    #: How a spec of it is written, for help and errors: `scheme`, or `scheme:LOCATION`.
    form: str
    #: (location, limits, **options) -> a new store.
    open: Callable[..., Store]


def _open_memory(location: str, limits: Limits, **options: Any) -> Store:
    if options:
        raise ValidationError(f"the memory store takes no options (given: {', '.join(options)})", rule="store")
    return MemoryStore(limits)


def _open_sqlite(location: str, limits: Limits, **options: Any) -> Store:
    from ._sqlite import SQLiteStore  # sqlite3 is loaded by a server that uses it, not by `import bridge`

    return SQLiteStore(location, limits, **options)


def _open_redis(location: str, limits: Limits, cluster: bool = False, **options: Any) -> Store:
    """`//HOST:PORT/DB?prefix=P`: redis-py reads the URL; `prefix` (key prefix, default dspex) is the store's."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from ._redis import RedisStore  # redis-py is loaded by a server that uses it, not by `import bridge`

    parts = urlsplit("redis:" + location)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", options.pop("prefix", "dspex"))
    if options:
        given = ", ".join(options)
        raise ValidationError(f"the Redis store takes no options but prefix (given: {given})", rule="store")
    url = urlunsplit(parts._replace(query=urlencode(query)))
    return RedisStore(url, limits, prefix=prefix, cluster=cluster)


def _open_redis_cluster(location: str, limits: Limits, **options: Any) -> Store:
    return _open_redis(location, limits, cluster=True, **options)


#: Backends by the scheme of the spec `dspex serve --store SPEC` takes (`memory`, `sqlite:PATH`,
#: `redis://HOST:PORT/DB`, `redis+cluster://HOST:PORT`).
BACKENDS: dict[str, Backend] = {
    "memory": Backend("memory", _open_memory),
    "sqlite": Backend("sqlite:PATH", _open_sqlite),
    "redis": Backend("redis://HOST:PORT/DB", _open_redis),
    "redis+cluster": Backend("redis+cluster://HOST:PORT", _open_redis_cluster),
}


def parse_store(spec: str) -> tuple[Backend, str]:
    """The backend a spec names, and its location; ValidationError naming the accepted forms otherwise."""
    scheme, _, location = spec.partition(":")
    backend = BACKENDS.get(scheme)
    if backend is None or bool(location) != (":" in backend.form):
        forms = " or ".join(b.form for b in BACKENDS.values())
        what = "unknown store" if backend is None else f"the {scheme} store is written {backend.form}, not"
        raise ValidationError(f"{what} {spec!r}: use {forms}", rule="store")
    return backend, location


def open_store(spec: str = "memory", limits: Limits = DEFAULT_LIMITS, **options: Any) -> Store:
    """A store from its spec: `memory`, `sqlite:PATH` (options: `synchronous`, see SQLiteStore),
    `redis://HOST:PORT/DB` or `redis+cluster://HOST:PORT` (option or query parameter: `prefix`)."""
    backend, location = parse_store(spec)
    return backend.open(location, limits, **options)


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        from ._sqlite import SQLiteStore

        return SQLiteStore
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "FINISH_STATES",
    "RUNNING",
    "RUN_STATES",
    "AccessRuleRecord",
    "Backend",
    "Change",
    "EventLog",
    "Listener",
    "LogEntry",
    "MemoryStore",
    "OptimizationRecord",
    "RedisStore",
    "SQLiteStore",
    "SessionRecord",
    "SessionSnapshot",
    "Store",
    "StoredValue",
    "Transaction",
    "TrialRecord",
    "VariableRecord",
    "VariableStatsRecord",
    "created_record",
    "open_store",
    "parse_store",
]
