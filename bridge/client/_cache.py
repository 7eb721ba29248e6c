"""The client's variable cache: TTL-bounded, size-bounded (lru / lfu / fifo), invalidated by the server.

Semantics (learned from Redis server-assisted client-side caching): an entry lives at most
`ttl` seconds; an invalidation drops it at once; an entry never moves back to an older
version; a fill that raced an invalidation of the same variable is discarded (the reply may
predate the write). Entries are keyed by variable ID, and a name is an alias of its ID, so
a name and its ID can never hold two different values.

The hit path (`lookup`) takes no lock and makes no call: two dict lookups, a clock read and
the policy's bookkeeping. Every method but `get_batch` is synchronous between awaits, so it
is atomic on the event loop; `get_batch` takes the lock, so one batch makes one fetch for
all of its misses. A caller that changes what it read changes nothing cached: lists, dicts
and tensors are copied in and out, and arrays are kept read-only (as the server's replies are).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidationError

POLICIES = ("lru", "lfu", "fifo")
#: Most names and IDs whose invalidation counts are remembered (for the racing-fill guard).
MAX_TRACKED_KEYS = 200_000
MISSING: Any = object()

Invalidated = Callable[[str, str], Awaitable[None] | None]

_IMMUTABLE = frozenset({float, int, str, bool, bytes, type(None)})


def _copy_plain(value: Any) -> Any:
    """A copy of a list/dict value (JSON-like, so far quicker than deepcopy); scalars are shared."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is list:
        return [_copy_plain(item) for item in value]
    if kind is dict:
        return {key: _copy_plain(item) for key, item in value.items()}
    return copy.deepcopy(value)


def _frozen(value: Any) -> tuple[Any, Callable[[Any], Any] | None]:
    """What to keep of a value, and how to hand it out without sharing it (None: as it is).

    Arrays are kept read-only and shared, as reads from the server return them; containers
    and tensors are copied on the way out; immutable values (the commonest) are shared.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value, None
    if kind is list or kind is dict:
        return _copy_plain(value), _copy_plain
    if isinstance(value, np.ndarray):
        if value.flags.writeable:
            value = value.copy()
            value.flags.writeable = False
        return value, None
    if kind.__module__.startswith("torch"):
        return value.clone(), _clone
    return copy.deepcopy(value), copy.deepcopy


def _clone(tensor: Any) -> Any:
    return tensor.clone()


@dataclass(slots=True)
class CacheEntry:
    variable_id: str
    name: str
    value: Any
    version: int
    expires_at: float
    copy: Callable[[Any], Any] | None = None  # hands out a fresh copy of a mutable value (None: shared)
    hits: int = 0


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class _Fifo:
    """Evicts the oldest insertion; a hit changes nothing."""

    def __init__(self) -> None:
        self.order: dict[str, None] = {}

    def add(self, key: str) -> None:
        self.order[key] = None

    def touch(self, key: str) -> None:
        return None

    def remove(self, key: str) -> None:
        self.order.pop(key, None)

    def victim(self) -> str:
        return next(iter(self.order))


class _Lru(_Fifo):
    """Evicts the least recently used; a hit moves the key to the back."""

    def __init__(self) -> None:
        self.order: OrderedDict[str, None] = OrderedDict()  # type: ignore[assignment]

    def touch(self, key: str) -> None:
        self.order.move_to_end(key)


class _Lfu:
    """Evicts the least frequently used (the oldest of those on a tie), in O(1): keys in frequency buckets."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.buckets: dict[int, dict[str, None]] = {}
        self.lowest = 0

    def add(self, key: str) -> None:
        self.count[key] = 1
        self.buckets.setdefault(1, {})[key] = None
        self.lowest = 1

    def touch(self, key: str) -> None:
        n = self.count[key]
        bucket = self.buckets[n]
        del bucket[key]
        if not bucket:
            del self.buckets[n]
            if self.lowest == n:
                self.lowest = n + 1
        self.count[key] = n + 1
        self.buckets.setdefault(n + 1, {})[key] = None

    def remove(self, key: str) -> None:
        n = self.count.pop(key, None)
        if n is None:
            return
        bucket = self.buckets[n]
        del bucket[key]
        if not bucket:
            del self.buckets[n]
            if self.lowest == n:
                self.lowest = min(self.buckets, default=0)

    def victim(self) -> str:
        if self.lowest not in self.buckets:
            self.lowest = min(self.buckets)
        return next(iter(self.buckets[self.lowest]))


_POLICY = {"lru": _Lru, "fifo": _Fifo, "lfu": _Lfu}


class VariableCache:
    """The spec's VariableCache: usable on its own, and the cache inside every SessionContext.

    `clock` (seconds, monotonic) is injectable so tests can move time without sleeping.
    `ttl=0` disables caching: nothing is stored.
    """

    def __init__(
        self,
        ttl: float = 1.0,
        max_size: int = 1000,
        eviction_policy: str = "lru",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._entries: dict[str, CacheEntry] = {}
        self._alias: dict[str, str] = {}  # name -> variable ID
        self._generation: dict[str, int] = {}  # name or ID -> invalidations so far (guards racing fills)
        self._epoch = 0  # clears so far
        self._invalidation_callbacks: dict[str, dict[str, Invalidated]] = {}
        self._subscriptions: dict[str, str] = {}  # subscription ID -> variable ID
        self._past_hits: dict[str, int] = {}  # variable ID -> hits of its entries since dropped
        self._ids = itertools.count(1)
        self._stats = CacheStats()
        self._lock = asyncio.Lock()
        self.configure(ttl, max_size, eviction_policy)

    # ------------------------------------------------------------ configuration

    def configure(
        self, ttl: float | None = None, max_size: int | None = None, eviction_policy: str | None = None
    ) -> None:
        """Changes any of the settings; a new policy or a smaller size applies to the entries kept."""
        if ttl is not None:
            if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl >= 0:
                raise ValidationError(f"cache ttl must be a number of seconds >= 0 (0 disables), got {ttl!r}")
            self.ttl = float(ttl)
        if max_size is not None:
            if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
                raise ValidationError(f"cache max_size must be a positive int, got {max_size!r}")
            self.max_size = max_size
        if eviction_policy is not None and eviction_policy not in POLICIES:
            raise ValidationError(f"eviction_policy must be one of {list(POLICIES)}, got {eviction_policy!r}")
        if eviction_policy is not None or not hasattr(self, "_policy"):
            self.eviction_policy = eviction_policy or getattr(self, "eviction_policy", "lru")
            self._policy = _POLICY[self.eviction_policy]()
            for key in self._entries:
                self._policy.add(key)
        if self.ttl == 0:
            self.clear()
        while len(self._entries) > self.max_size:
            self._evict()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    # ------------------------------------------------------------ the hit path

    def lookup(self, ref: str) -> Any:
        """The cached value of a name or ID, or MISSING. Counts a hit or a miss."""
        vid = self._alias.get(ref, ref)
        entry = self._entries.get(vid)
        if entry is not None:
            if entry.expires_at > self._clock():
                self._policy.touch(vid)
                self._stats.hits += 1
                entry.hits += 1
                return entry.value if entry.copy is None else entry.copy(entry.value)
            self._drop(vid)
        self._stats.misses += 1
        return MISSING

    def version(self, ref: str) -> int | None:
        entry = self._entries.get(self._alias.get(ref, ref))
        return entry.version if entry is not None else None

    def hits_of(self, variable_id: str) -> int:
        """Hits served for a variable, its dropped entries included."""
        entry = self._entries.get(variable_id)
        return self._past_hits.get(variable_id, 0) + (entry.hits if entry is not None else 0)

    # ------------------------------------------------------------ fills

    def read_token(self, ref: str) -> tuple[str, int, int]:
        """Take before a fetch of `ref`; pass to `store` so a fill that raced an invalidation is dropped."""
        return ref, self._generation.get(ref, 0), self._epoch

    def store(
        self, variable_id: str, name: str, value: Any, version: int, token: tuple[str, int, int] | None = None
    ) -> bool:
        """Caches a value read at `version`; False when it is stale (older, or invalidated since `token`)."""
        if not self.enabled:
            return False
        if token is not None and (self._generation.get(token[0], 0) != token[1] or self._epoch != token[2]):
            return False
        current = self._entries.get(variable_id)
        if current is not None and current.version > version:
            return False
        aliased = self._alias.get(name)
        if aliased is not None and aliased != variable_id:
            # The name now means another variable than the one cached (deleted and re-created), or this
            # reply is of the old one: which is current is unknown here, so neither is kept.
            self._drop(aliased)
            self._alias.pop(name, None)
            return False
        expires = self._clock() + self.ttl
        value, copier = _frozen(value)  # the caller keeps its own object: mutating it changes nothing here
        if current is not None:
            current.value, current.version, current.expires_at, current.copy = value, version, expires, copier
            return True
        while len(self._entries) >= self.max_size:
            self._evict()
        self._entries[variable_id] = CacheEntry(variable_id, name, value, version, expires, copier)
        self._alias[name] = variable_id
        self._policy.add(variable_id)
        return True

    async def get_batch(
        self,
        var_ids: Iterable[str],
        fetch_missing: Callable[[list[str]], Awaitable[Mapping[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """The values of several variables, under one lock, with one `fetch_missing(missing)` call for all misses.

        `fetch_missing` returns ref -> value, or ref -> (variable_id, name, value, version) to
        be cached by version; refs it does not return are left out of the result.
        """
        refs = list(var_ids)
        async with self._lock:
            found: dict[str, Any] = {}
            missing = []
            for ref in refs:
                value = self.lookup(ref)
                if value is MISSING:
                    missing.append(ref)
                else:
                    found[ref] = value
            if missing and fetch_missing is not None:
                tokens = {ref: self.read_token(ref) for ref in missing}
                fetched = await fetch_missing(missing)
                for ref, item in fetched.items():
                    if isinstance(item, tuple) and len(item) == 4:
                        variable_id, name, value, version = item
                        self.store(variable_id, name, value, version, tokens.get(ref))
                    else:
                        value = item
                        self.store(ref, ref, value, 0, tokens.get(ref))
                    found[ref] = value
            return {ref: found[ref] for ref in refs if ref in found}

    # ------------------------------------------------------------ invalidation

    def subscribe_invalidation(self, var_id: str, callback: Invalidated) -> str:
        """`callback(var_id, reason)` (sync or async) runs whenever the variable is invalidated.

        `var_id` may be the variable's ID or its name (a SessionContext invalidates by both).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        sub = f"sub_{next(self._ids)}"
        self._invalidation_callbacks.setdefault(var_id, {})[sub] = callback
        self._subscriptions[sub] = var_id
        return sub

    def unsubscribe_invalidation(self, subscription_id: str) -> bool:
        var_id = self._subscriptions.pop(subscription_id, None)
        if var_id is None:
            return False
        callbacks = self._invalidation_callbacks.get(var_id, {})
        callbacks.pop(subscription_id, None)
        if not callbacks:
            self._invalidation_callbacks.pop(var_id, None)
        return True

    async def invalidate(
        self, ref: str, reason: str = "", *, version: int | None = None, name: str | None = None
    ) -> bool:
        """Drops a variable's entry (unless the cached one is already at `version` or newer); runs its callbacks.

        `ref` is its ID or name; give `name` too when `ref` is an ID, so that reads in flight
        by either are caught.
        """
        vid = self._alias.get(ref, ref)
        entry = self._entries.get(vid)
        if version is not None and entry is not None and entry.version >= version:
            return False  # a write this client already holds: nothing older to drop
        if len(self._generation) > MAX_TRACKED_KEYS:  # bounded: forgetting counts means every read in flight is stale
            self._generation.clear()
            self._epoch += 1
        for key in {ref, vid, name or ref, entry.name if entry else ref}:
            self._generation[key] = self._generation.get(key, 0) + 1
        dropped = entry is not None
        if dropped:
            self._drop(vid)
            self._stats.invalidations += 1
        await self._notify(vid, entry.name if entry else ref, reason)
        return dropped

    async def invalidate_pattern(self, pattern: str, reason: str = "") -> int:
        """Drops every entry whose name or ID matches the regex (a full match); returns how many."""
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ValidationError(f"invalidate_pattern: {pattern!r} is not a valid regex ({exc})") from None
        matched = [vid for vid, e in self._entries.items() if regex.fullmatch(e.name) or regex.fullmatch(vid)]
        for vid in matched:
            await self.invalidate(vid, reason)
        return len(matched)

    def written(self, ref: str) -> None:
        """This client wrote `ref`: drop its entry, and any fill in flight (of any variable), so it reads its write.

        Call it once the write's reply is in (or the write failed: it may have been applied).
        A read in flight by the variable's other key (its ID for a name, say) is not known
        here, so every fill in flight is discarded: a stale one would shadow the write.
        """
        self._epoch += 1
        vid = self._alias.get(ref, ref)
        if vid in self._entries:
            self._drop(vid)
            self._stats.invalidations += 1

    def clear(self) -> int:
        """Drops every entry (e.g. when the invalidation stream is lost); callbacks are not run."""
        count = len(self._entries)
        self._epoch += 1  # every read in flight is stale now
        self._generation.clear()
        for vid in list(self._entries):
            self._drop(vid)
        return count

    async def _notify(self, vid: str, name: str, reason: str) -> None:
        """Runs the callbacks subscribed by the variable's ID and by its name."""
        callbacks = dict(self._invalidation_callbacks.get(vid, {}))
        if name != vid:
            callbacks.update(self._invalidation_callbacks.get(name, {}))
        for callback in list(callbacks.values()):
            result = callback(vid, reason)
            if inspect.isawaitable(result):
                await result

    # ------------------------------------------------------------ bookkeeping

    def _drop(self, vid: str) -> None:
        entry = self._entries.pop(vid, None)
        if entry is not None:
            self._policy.remove(vid)
            if self._alias.get(entry.name) == vid:
                del self._alias[entry.name]
            if entry.hits:
                if len(self._past_hits) >= MAX_TRACKED_KEYS and vid not in self._past_hits:
                    self._past_hits.clear()  # bounded: per-variable hit counts restart
                self._past_hits[vid] = self._past_hits.get(vid, 0) + entry.hits

    def _evict(self) -> None:
        vid = self._policy.victim()
        self._drop(vid)
        self._stats.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ref: str) -> bool:
        return self._alias.get(ref, ref) in self._entries

    @property
    def stats(self) -> CacheStats:
        return self._stats

    def info(self) -> dict[str, Any]:
        """The spec's get_cache_info() shape, plus the policy, max_size and invalidation count."""
        return {
            "size": len(self._entries),
            "ttl": self.ttl,
            "hit_rate": self._stats.hit_rate,
            "eviction_count": self._stats.evictions,
            "eviction_policy": self.eviction_policy,
            "max_size": self.max_size,
            "hits": self._stats.hits,
            "misses": self._stats.misses,
            "invalidation_count": self._stats.invalidations,
        }
