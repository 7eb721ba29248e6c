"""The optimization half of the store contract (leases, runs, trials); every backend runs it."""

from __future__ import annotations

import asyncio
import time

import pytest
from store_backends import backend_fixture, store_fixture  # noqa: F401 (the backend fixture)

from bridge.limits import Limits
from bridge.store import OptimizationRecord, SessionRecord, Store, TrialRecord

LIMITS = Limits(max_optimization_runs=3)


async def _with_session(s: Store) -> None:
    now = time.time()
    assert await s.create_session(SessionRecord("s1", "hash", now, now, 60.0))


store = store_fixture(LIMITS, _with_session)


def run(run_id: str, *variable_ids: str, now: float | None = None, ttl: float = 10.0) -> OptimizationRecord:
    now = time.time() if now is None else now
    return OptimizationRecord(
        id=run_id,
        session_id="s1",
        optimizer_type="tpe",
        variable_ids=variable_ids,
        variable_names=tuple(f"name_{v}" for v in variable_ids),
        config={"n_startup_trials": 3},
        max_iterations=10,
        convergence_threshold=0.0,
        direction="maximize",
        metric="",
        seed=1,
        state="running",
        started_at=now,
        last_update=now,
        lease_ttl=ttl,
        lease_expires_at=now + ttl,
        initial_values={f"name_{v}": 1.0 for v in variable_ids},
    )


async def test_a_claim_holds_every_variable_until_the_run_ends(store: Store) -> None:
    now = time.time()
    assert await store.claim_optimization(run("opt_a", "v1", "v2"), now) is None
    holder = await store.claim_optimization(run("opt_b", "v2", "v3"), now)
    assert holder is not None and holder.id == "opt_a"
    assert [r.id for r in await store.variable_optimizations("v3")] == []  # all or nothing: v3 stayed free
    await store.update_optimization("opt_a", lambda r: r._replace(state="completed", ended_at=now + 1))
    assert await store.claim_optimization(run("opt_b", "v2", "v3"), now) is None
    assert [r.id for r in await store.variable_optimizations("v2")] == ["opt_a", "opt_b"]
    assert [r.id for r in await store.live_optimizations()] == ["opt_b"]


async def test_a_lapsed_lease_frees_its_variables(store: Store) -> None:
    now = time.time()
    assert await store.claim_optimization(run("opt_a", "v1", now=now - 20, ttl=5.0), now - 20) is None
    assert await store.claim_optimization(run("opt_b", "v1"), now) is None
    assert (await store.variable_optimizations("v1"))[-1].id == "opt_b"


async def test_a_resumed_run_becomes_current_again(store: Store) -> None:
    now = time.time()
    first = run("opt_a", "v1")
    await store.claim_optimization(first, now)
    await store.update_optimization("opt_a", lambda r: r._replace(state="stopped", ended_at=now))
    await store.claim_optimization(run("opt_b", "v1"), now)
    await store.update_optimization("opt_b", lambda r: r._replace(state="stopped", ended_at=now))
    assert await store.claim_optimization(first, now) is None
    assert [r.id for r in await store.variable_optimizations("v1")] == ["opt_b", "opt_a"]


async def test_runs_beyond_the_retention_are_forgotten_with_their_trials(store: Store) -> None:
    now = time.time()
    for i in range(5):
        await store.claim_optimization(run(f"opt_{i}", "v1"), now)
        await store.add_trial(TrialRecord(f"opt_{i}", 1, {"name_v1": 0.5}, 0.1 * i, {"score": 0.1 * i}, now))
        await store.update_optimization(f"opt_{i}", lambda r: r._replace(state="completed", ended_at=now))
    assert [r.id for r in await store.variable_optimizations("v1")] == ["opt_2", "opt_3", "opt_4"]
    assert await store.get_optimization("opt_0") is None and await store.trials("opt_0") == []
    assert [t.score for t in await store.trials("opt_4")] == [pytest.approx(0.4)]


async def test_trials_keep_their_order_and_failures(store: Store) -> None:
    now = time.time()
    await store.claim_optimization(run("opt_a", "v1"), now)
    await store.add_trial(TrialRecord("opt_a", 1, {"name_v1": 0.2}, 0.5, {"score": 0.5}, now))
    await store.add_trial(TrialRecord("opt_a", 2, {"name_v1": 0.4}, None, {"error": "boom"}, now + 1, "boom"))
    trials = await store.trials("opt_a")
    assert [(t.iteration, t.state, t.error) for t in trials] == [(1, "ok", ""), (2, "failed", "boom")]


async def test_an_update_applies_to_the_latest_record(store: Store) -> None:
    now = time.time()
    await store.claim_optimization(run("opt_a", "v1"), now)
    await store.update_optimization("opt_a", lambda r: r._replace(stop_requested=True))  # another client's stop
    updated = await store.update_optimization("opt_a", lambda r: r._replace(iteration=r.iteration + 1))
    assert updated is not None and updated.stop_requested and updated.iteration == 1
    with pytest.raises(RuntimeError):
        await store.update_optimization("opt_a", lambda r: (_ for _ in ()).throw(RuntimeError("refused")))
    assert (await store.get_optimization("opt_a")).iteration == 1  # a change that raises changes nothing
    assert await store.update_optimization("opt_missing", lambda r: r) is None


async def test_concurrent_updates_each_apply_once(store: Store) -> None:
    now = time.time()
    await store.claim_optimization(run("opt_a", "v1"), now)

    async def bump() -> OptimizationRecord | None:
        return await store.update_optimization("opt_a", lambda r: r._replace(iteration=r.iteration + 1))

    results = await asyncio.gather(*(bump() for _ in range(20)))
    assert sorted(r.iteration for r in results if r is not None) == list(range(1, 21))
    assert (await store.get_optimization("opt_a")).iteration == 20


async def test_a_joint_run_stays_with_the_variables_that_keep_it(store: Store) -> None:
    now = time.time()
    await store.claim_optimization(run("opt_a", "v1", "v2"), now)
    await store.update_optimization("opt_a", lambda r: r._replace(state="completed", ended_at=now))
    for i in range(3):  # v1 runs on alone until it no longer keeps opt_a
        await store.claim_optimization(run(f"opt_{i}", "v1"), now)
        await store.update_optimization(f"opt_{i}", lambda r: r._replace(state="completed", ended_at=now))
    assert "opt_a" not in [r.id for r in await store.variable_optimizations("v1")]
    assert [r.id for r in await store.variable_optimizations("v2")] == ["opt_a"]  # v2's history keeps it


async def test_deleting_the_session_forgets_its_runs(store: Store) -> None:
    now = time.time()
    await store.claim_optimization(run("opt_a", "v1"), now)
    await store.delete_session("s1")
    assert await store.get_optimization("opt_a") is None and await store.live_optimizations() == []
