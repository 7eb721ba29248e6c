"""VariableCache on its own: eviction order per policy, TTL on an injected clock, versions, races, batches."""

from __future__ import annotations

import pytest

from bridge.client._cache import MISSING, VariableCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def filled(policy: str, size: int = 3, clock: Clock | None = None) -> VariableCache:
    cache = VariableCache(ttl=60, max_size=size, eviction_policy=policy, clock=clock or Clock())
    for name in ("a", "b", "c")[:size]:
        cache.store(f"id_{name}", name, name.upper(), 1)
    return cache


@pytest.mark.parametrize(
    "policy,reads,evicted",
    [
        ("lru", ["a", "b", "a"], "c"),  # c is the least recently used
        ("lru", [], "a"),
        ("fifo", ["a", "a", "b"], "a"),  # reads change nothing: the first in goes first
        ("lfu", ["a", "a", "b", "c", "c"], "b"),  # b was read once, a and c twice
        ("lfu", ["b", "c"], "a"),  # never read
        ("lfu", ["a", "b", "c"], "a"),  # a tie: the oldest of the least used
    ],
)
def test_eviction_order(policy: str, reads: list[str], evicted: str) -> None:
    cache = filled(policy)
    for name in reads:
        assert cache.lookup(name) == name.upper()
    cache.store("id_d", "d", "D", 1)
    assert len(cache) == 3 and evicted not in cache and "d" in cache
    assert cache.info()["eviction_count"] == 1


def test_a_longer_lru_sequence_evicts_in_use_order() -> None:
    cache = VariableCache(ttl=60, max_size=4, eviction_policy="lru", clock=Clock())
    for i in range(4):
        cache.store(f"id_{i}", f"v{i}", i, 1)
    for name in ("v0", "v2", "v1", "v0"):
        cache.lookup(name)
    order = []
    for i in range(4, 8):
        before = {f"v{j}" for j in range(8) if f"v{j}" in cache}
        cache.store(f"id_{i}", f"v{i}", i, 1)
        order.extend(before - {f"v{j}" for j in range(8) if f"v{j}" in cache})
    assert order == ["v3", "v2", "v1", "v0"]


def test_ttl_expiry_on_an_injected_clock() -> None:
    clock = Clock()
    cache = VariableCache(ttl=5.0, clock=clock)
    cache.store("id_t", "t", 0.7, 1)
    clock.now += 4.9
    assert cache.lookup("t") == 0.7
    clock.now += 0.2
    assert cache.lookup("t") is MISSING and "t" not in cache
    assert cache.info()["hit_rate"] == 0.5


def test_ttl_zero_disables_caching() -> None:
    cache = VariableCache(ttl=1.0, clock=Clock())
    cache.store("id_t", "t", 0.7, 1)
    cache.configure(ttl=0)
    assert len(cache) == 0 and not cache.store("id_t", "t", 0.7, 2) and cache.lookup("t") is MISSING


def test_a_name_and_its_id_are_one_entry() -> None:
    cache = VariableCache(clock=Clock())
    cache.store("var_1", "temperature", 0.7, 1)
    cache.store("var_1", "temperature", 0.9, 2)
    assert cache.lookup("temperature") == cache.lookup("var_1") == 0.9 and len(cache) == 1


def test_an_entry_never_moves_back_to_an_older_version() -> None:
    cache = VariableCache(clock=Clock())
    assert cache.store("var_1", "t", "new", 5)
    assert not cache.store("var_1", "t", "old", 4)
    assert cache.lookup("t") == "new" and cache.version("t") == 5


async def test_a_fill_that_raced_an_invalidation_is_dropped() -> None:
    cache = VariableCache(clock=Clock())
    token = cache.read_token("t")  # a read of t starts...
    await cache.invalidate("var_1", "written by another client", name="t")  # ...an invalidation arrives...
    assert not cache.store("var_1", "t", "stale", 3, token)  # ...so the read's reply is not cached
    assert cache.lookup("t") is MISSING
    assert cache.store("var_1", "t", "fresh", 4, cache.read_token("t"))
    by_id = cache.read_token("var_1")
    cache.clear()  # losing the invalidation stream: reads in flight are stale too
    assert not cache.store("var_1", "t", "stale", 5, by_id)


async def test_an_invalidation_for_a_version_already_held_keeps_it() -> None:
    cache = VariableCache(clock=Clock())
    cache.store("var_1", "t", "mine", 7)  # this client's own write, cached at its version
    assert not await cache.invalidate("var_1", "update", version=7)
    assert await cache.invalidate("var_1", "update", version=8)
    assert "t" not in cache


async def test_get_batch_makes_one_fetch_for_all_misses() -> None:
    cache = VariableCache(clock=Clock())
    cache.store("var_a", "a", 1, 1)
    fetches: list[list[str]] = []

    async def fetch(missing: list[str]) -> dict:
        fetches.append(missing)
        return {ref: (f"var_{ref}", ref, ref * 2, 1) for ref in missing if ref != "nope"}

    assert await cache.get_batch(["a", "b", "c", "nope"], fetch) == {"a": 1, "b": "bb", "c": "cc"}
    assert fetches == [["b", "c", "nope"]]
    assert await cache.get_batch(["a", "b", "c"], fetch) == {"a": 1, "b": "bb", "c": "cc"}
    assert fetches == [["b", "c", "nope"]]  # all hits now


async def test_invalidation_subscriptions_and_patterns() -> None:
    cache = VariableCache(clock=Clock())
    for name in ("model_name", "model_size", "temperature"):
        cache.store(f"var_{name}", name, 1, 1)
    seen: list[tuple[str, str]] = []

    async def on_invalidated(var_id: str, reason: str) -> None:
        seen.append((var_id, reason))

    sub = cache.subscribe_invalidation("var_model_name", on_invalidated)
    cache.subscribe_invalidation("var_temperature", lambda v, r: seen.append((v, "sync " + r)))
    assert await cache.invalidate_pattern(r".*model.*", "config reload") == 2
    assert seen == [("var_model_name", "config reload")]
    assert "temperature" in cache and "model_size" not in cache
    assert cache.unsubscribe_invalidation(sub) and not cache.unsubscribe_invalidation(sub)
    await cache.invalidate("temperature", "bye")
    assert seen[-1] == ("var_temperature", "sync bye")
    with pytest.raises(ValueError, match="not a valid regex"):
        await cache.invalidate_pattern("(", "x")


def test_clear_counts_what_it_dropped() -> None:
    cache = filled("lru")
    assert cache.clear() == 3 and len(cache) == 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ttl": -1}, "ttl must be a number of seconds >= 0"),
        ({"max_size": 0}, "max_size must be a positive int"),
        ({"eviction_policy": "random"}, r"eviction_policy must be one of \['lru', 'lfu', 'fifo'\]"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VariableCache(**kwargs)


def test_changing_policy_or_shrinking_keeps_the_size_bound() -> None:
    cache = filled("lru")
    cache.configure(eviction_policy="lfu", max_size=2)
    assert len(cache) == 2 and cache.info()["eviction_policy"] == "lfu" and cache.info()["max_size"] == 2


def test_a_name_that_now_means_another_variable_keeps_neither() -> None:
    cache = VariableCache(ttl=60, clock=Clock())
    cache.store("id_new", "x", "new value", 1)  # x was re-created as id_new ...
    assert not cache.store("id_old", "x", "old value", 7)  # ... and a late reply of the deleted id_old arrives
    assert cache.lookup("x") is MISSING and "id_new" not in cache  # the next read asks the server
    assert cache.store("id_new", "x", "new value", 1) and cache.lookup("x") == "new value"


async def test_subscriptions_by_name_fire_too() -> None:
    cache = VariableCache(ttl=60, clock=Clock())
    cache.store("id_x", "x", 1, 1)
    seen: list[tuple[str, str]] = []
    cache.subscribe_invalidation("x", lambda vid, reason: seen.append((vid, reason)))
    await cache.invalidate("id_x", "written", version=2, name="x")
    assert seen == [("id_x", "written")]
