"""The backends the store conformance suites run on. Adding a backend is one entry in BACKENDS.

A conformance module makes its `store` fixture with `store_fixture(its limits)` and imports
`backend_fixture` (the `backend` fixture), which parametrizes every test that uses either over BACKENDS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bridge.limits import Limits
from bridge.store import MemoryStore, SQLiteStore, Store


@dataclass(frozen=True)
class Backend:
    name: str
    #: Opens the store kept under a directory; for a durable one, opening the same directory again
    #: (once the first is closed) finds the same data.
    open: Callable[[Path, Limits], Store]
    durable: bool

    def __str__(self) -> str:
        return self.name


BACKENDS = [
    Backend("memory", lambda where, limits: MemoryStore(limits), durable=False),
    Backend("sqlite", lambda where, limits: SQLiteStore(where / "store.db", limits), durable=True),
]


@pytest.fixture(name="backend", params=BACKENDS, ids=str)
def backend_fixture(request: pytest.FixtureRequest) -> Backend:
    return request.param


@pytest.fixture(name="durable", params=[b for b in BACKENDS if b.durable], ids=str)
def durable_fixture(request: pytest.FixtureRequest) -> Backend:
    """The backends whose data outlives the store object: what a restarted server finds again."""
    return request.param


def store_fixture(limits: Limits, setup: Callable[[Store], Awaitable[None]] | None = None) -> Any:
    """A `store` fixture: a fresh store of each backend with these limits (after `setup`), closed after the test."""

    @pytest.fixture
    async def store(backend: Backend, tmp_path: Path) -> AsyncIterator[Store]:
        s = backend.open(tmp_path, limits)
        if setup is not None:
            await setup(s)
        yield s
        await s.close()

    return store
