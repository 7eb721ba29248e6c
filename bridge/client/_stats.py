"""The spec's Performance Monitoring: the session cache's settings and figures, and per-variable statistics.

Where each figure comes from:
- `read_count`, `write_count`, `total_optimization_time_s`: the server, over every client of
  every session (cache hits never reach the server, so they are not reads there).
- `cache_hits`, `cache_misses`, `cache_hit_rate`, `avg_read_latency_ms`,
  `avg_write_latency_ms`: this client. A miss is a read that went to the server (bypassed
  reads included); the latencies are this client's round trips, so cache hits are not in
  the read latency (a hit costs about a microsecond: see BENCHMARKS.md).
"""

from __future__ import annotations

import time
from typing import Any

from .._proto import bridge_pb2 as pb
from ..errors import VariableNotFoundError
from ..limits import is_id
from ._cache import VariableCache
from ._convert import variable_info

#: Most refs whose client-side figures are kept (refs are the caller's choice: bound them).
MAX_COUNTED_REFS = 100_000


class _Counts:
    """One ref's figures on this client: reads that went to the server, writes, and their time."""

    __slots__ = ("read_ns", "reads", "write_ns", "writes")

    def __init__(self) -> None:
        self.reads = self.writes = self.read_ns = self.write_ns = 0

    def add(self, other: _Counts) -> None:
        self.reads += other.reads
        self.writes += other.writes
        self.read_ns += other.read_ns
        self.write_ns += other.write_ns


def _ms(total_ns: int, count: int) -> float:
    return total_ns / count / 1e6 if count else 0.0


class StatsMethods:
    """get_variable_stats, get_cache_info, set_cache_config (mixed into SessionContext)."""

    _cache: VariableCache
    _stub: Any
    session_id: str

    async def _call(self, rpc: Any, request: Any, what: str, name: str | None = None) -> Any: ...

    def _init_stats(self) -> None:
        self._counts: dict[str, _Counts] = {}

    def _counted(self, ref: str) -> _Counts | None:
        counts = self._counts.get(ref)
        if counts is None and len(self._counts) < MAX_COUNTED_REFS:
            counts = self._counts[ref] = _Counts()
        return counts

    def _count_read(self, ref: str, started_ns: int) -> None:
        counts = self._counted(ref)
        if counts is not None:
            counts.reads += 1
            counts.read_ns += time.perf_counter_ns() - started_ns

    def _count_write(self, ref: str, started_ns: int) -> None:
        counts = self._counted(ref)
        if counts is not None:
            counts.writes += 1
            counts.write_ns += time.perf_counter_ns() - started_ns

    def _client_stats(self, variable_id: str, name: str) -> dict[str, Any]:
        """This client's figures of one variable, read by name or by ID."""
        counts = _Counts()
        for ref in {variable_id, name}:
            own = self._counts.get(ref)
            if own is not None:
                counts.add(own)
        hits = self._cache.hits_of(variable_id)
        reads = hits + counts.reads
        return {
            "cache_hits": hits,
            "cache_misses": counts.reads,
            "cache_hit_rate": hits / reads if reads else 0.0,
            "avg_read_latency_ms": _ms(counts.read_ns, counts.reads),
            "avg_write_latency_ms": _ms(counts.write_ns, counts.writes),
        }

    # ------------------------------------------------------------ the spec's methods

    def get_cache_info(self) -> dict[str, Any]:
        """This client's cache: the spec's size, ttl, hit_rate, eviction_count, plus its policy and max_size."""
        return self._cache.info()

    def set_cache_config(
        self, ttl: float | None = None, max_size: int | None = None, eviction_policy: str | None = None
    ) -> None:
        """Changes the cache's settings; `ttl=0` turns caching off (every read goes to the server)."""
        self._cache.configure(ttl, max_size, eviction_policy)

    async def get_variable_stats(self, variable: str | None = None) -> dict[str, Any]:
        """One variable's statistics (by name or ID), or the whole session's (`variable=None`).

        The server's counts cover every client; the cache figures and latencies are this
        client's (see the module docstring). The whole-session form adds `variables`.
        """
        if variable is not None:
            info = await self._stats_info(variable)
            return {**info["stats"], **self._client_stats(info["id"], info["name"])}
        response = await self._call(self._stub.ListVariables, pb.ListVariablesRequest(), "get_variable_stats")
        stats: dict[str, Any] = {"read_count": 0, "write_count": 0, "total_optimization_time_s": 0.0}
        for msg in response.variables:
            stats["read_count"] += msg.stats.read_count
            stats["write_count"] += msg.stats.write_count
            stats["total_optimization_time_s"] += msg.stats.total_optimization_time_s
        counts = _Counts()
        for own in self._counts.values():
            counts.add(own)
        cache = self._cache.stats
        reads = cache.hits + counts.reads
        stats.update(
            cache_hits=cache.hits,
            cache_misses=counts.reads,
            cache_hit_rate=cache.hits / reads if reads else 0.0,
            avg_read_latency_ms=_ms(counts.read_ns, counts.reads),
            avg_write_latency_ms=_ms(counts.write_ns, counts.writes),
            variables=len(response.variables),
        )
        return stats

    async def _stats_info(self, ref: str) -> dict[str, Any]:
        """The variable's record with the server's counts, without counting a read of it."""
        if is_id(ref):  # ListVariables is by name: an ID is read (and so counted) once
            request = pb.GetVariablesRequest(refs=[ref], include_info=True)
            response = await self._call(self._stub.GetVariables, request, "get_variable_stats", ref)
            if ref in response.found:
                return variable_info(response.found[ref].info, include_stats=True)
        else:
            request_list = pb.ListVariablesRequest(pattern=ref)  # names hold no glob characters
            response_list = await self._call(self._stub.ListVariables, request_list, "get_variable_stats", ref)
            for msg in response_list.variables:
                if msg.name == ref:
                    return variable_info(msg, include_stats=True)
        raise VariableNotFoundError(f"variable {ref!r} not found in session {self.session_id!r}", variable=ref)
