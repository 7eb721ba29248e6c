"""The backends the store conformance suites run on: one per entry of tests/store_specs.py.

A conformance module makes its `store` fixture with `store_fixture(its limits)` and imports
`backend_fixture` (the `backend` fixture), which parametrizes every test that uses either over
the stores; `durable_fixture` over those whose data outlives the store object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from store_specs import STORES, StoreSpec

from bridge.limits import Limits
from bridge.store import Store, open_store


@dataclass(frozen=True)
class Backend:
    spec: StoreSpec

    @property
    def durable(self) -> bool:
        return self.spec.durable

    def open(self, where: Path, limits: Limits) -> Store:
        """The store kept under `where`; for a durable one, opening `where` again (once the first is closed)
        finds the same data."""
        return open_store(self.spec.spec(where), limits)

    def __str__(self) -> str:
        return self.spec.name


BACKENDS = [Backend(spec) for spec in STORES]


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
