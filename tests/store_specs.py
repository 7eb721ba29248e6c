"""The stores the tests run on, in one list: the store conformance suites run on each, and the `server`
fixture serves from the one DSPEX_TEST_STORE names (memory by default). Adding a store is one entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis_servers import prefix_for, redis_cluster_url, redis_url


@dataclass(frozen=True)
class StoreSpec:
    name: str
    #: The `--store` spec of a store kept under a directory (the same directory: the same data).
    spec: Callable[[Path], str]
    #: Whether its data outlives the store object (what a restarted server finds again).
    durable: bool

    def __str__(self) -> str:
        return self.name


STORES = [
    StoreSpec("memory", lambda where: "memory", durable=False),
    StoreSpec("sqlite", lambda where: f"sqlite:{where / 'store.db'}", durable=True),
    # Redis servers the tests start (tests/redis_servers.py); each test directory has its own key prefix.
    StoreSpec("redis", lambda where: f"{redis_url()}?prefix={prefix_for(where)}", durable=True),
    StoreSpec("redis-cluster", lambda where: f"{redis_cluster_url()}?prefix={prefix_for(where)}", durable=True),
]
