"""watch_variable / watch_variables through a real server: initial values, updates, batches, deletes, filters."""

from __future__ import annotations

import asyncio

import pytest
from watch_support import WAIT, take

from bridge import SessionContext, VariableUpdate
from bridge.errors import ValidationError, VariableNotFoundError


def values(updates: list[VariableUpdate]) -> list[tuple[str, str, object]]:
    return [(u.kind, u.name, u.value) for u in updates]


async def test_the_current_value_comes_first_then_each_write_with_its_old_value(session: SessionContext) -> None:
    var_id = await session.register_variable("temperature", "float", 0.7)
    watch = session.watch_variable("temperature")
    [initial] = await take(watch, 1)
    assert (initial.kind, initial.value, initial.old_value, initial.variable_id) == ("initial", 0.7, None, var_id)
    assert (initial.version, initial.revision, initial.source) == (1, 1, session.session_id)

    await session.set_variable("temperature", 0.9, metadata={"reason": "user", "batch_num": 3})
    [update] = await take(watch, 1)
    assert (update.kind, update.value, update.old_value, update.version, update.revision) == ("update", 0.9, 0.7, 2, 2)
    assert update.metadata == {"reason": "user", "batch_num": 3}
    assert update.source == session.session_id
    assert update.timestamp.tzinfo is not None and update.timestamp >= initial.timestamp
    watch.close()


async def test_without_include_initial_only_writes_arrive(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 1)
    watch = session.watch_variable("x", include_initial=False)
    await watch.started()  # the writes below follow the watch's start
    await session.set_variable("x", 2)
    [update] = await take(watch, 1)
    assert (update.kind, update.value, update.old_value) == ("update", 2, 1)
    watch.close()


async def test_an_atomic_batch_arrives_as_consecutive_updates_with_one_revision(session: SessionContext) -> None:
    await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in ("a", "b", "c")])
    watch = session.watch_variables(["a", "b"], include_initial=False)
    await watch.started()  # what started() promises: every write from here on (a store may take a while)
    await session.update_variables({"a": 1, "b": 2, "c": 3}, atomic=True)
    await session.set_variable("c", 4)  # not watched
    await session.set_variable("b", 5)
    a, b, b_again = await take(watch, 3)
    assert values([a, b]) == [("update", "a", 1), ("update", "b", 2)]
    assert a.revision == b.revision == 2
    assert (b_again.value, b_again.old_value, b_again.revision) == (5, 2, 4)
    watch.close()


async def test_a_deleted_variable_gives_a_delete_and_a_recreated_one_updates_again(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 1)
    watch = session.watch_variable("x", include_initial=False)
    await watch.started()  # the writes below follow the watch's start
    await session.delete_variable("x")
    new_id = await session.register_variable("x", "integer", 10)
    deleted, created = await take(watch, 2)
    assert (deleted.kind, deleted.value, deleted.old_value, deleted.version) == ("delete", None, 1, 1)
    assert deleted.source == session.session_id
    assert (created.kind, created.value, created.old_value, created.version) == ("update", 10, None, 1)
    assert created.variable_id == new_id != deleted.variable_id
    watch.close()


async def test_a_filter_sees_updates_of_existing_values_only(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7)
    seen = []

    def significant(old: float, new: float) -> bool:
        seen.append((old, new))
        return abs(new - old) > 0.05

    watch = session.watch_variable("temperature", filter_fn=significant)
    await watch.started()  # the writes below come after the snapshot: none races the stream's opening
    for value in (0.72, 0.8, 0.81, 0.7):
        await session.set_variable("temperature", value)
    updates = await take(watch, 3)
    assert values(updates) == [
        ("initial", "temperature", 0.7),
        ("update", "temperature", 0.8),
        ("update", "temperature", 0.7),
    ]
    assert [u.old_value for u in updates[1:]] == [0.72, 0.81]  # each write's old value, not the last one emitted
    assert seen == [(0.7, 0.72), (0.72, 0.8), (0.8, 0.81), (0.81, 0.7)]  # never the initial value
    watch.close()


async def test_a_filter_of_several_variables_gets_the_name(session: SessionContext) -> None:
    await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in ("a", "b")])
    watch = session.watch_variables(["a", "b"], include_initial=False, filter_fn=lambda name, old, new: name == "b")
    await watch.started()  # what started() promises: every write from here on (a store may take a while)
    await session.update_variables({"a": 1, "b": 1})
    await session.set_variable("a", 2)
    await session.set_variable("b", 2)
    assert values(await take(watch, 2)) == [("update", "b", 1), ("update", "b", 2)]
    watch.close()


async def test_a_failing_filter_ends_the_watch_with_its_error(session: SessionContext) -> None:
    await session.register_variable("x", "integer", 0)
    watch = session.watch_variable("x", include_initial=False, filter_fn=lambda old, new: 1 / 0)
    await watch.started()  # the writes below follow the watch's start
    await session.set_variable("x", 1)
    with pytest.raises(ZeroDivisionError):
        await take(watch, 1)
    assert watch.closed


async def test_refs_may_be_ids_and_the_update_names_the_variable(session: SessionContext) -> None:
    var_id = await session.register_variable("x", "integer", 0)
    watch = session.watch_variable(var_id, include_initial=False)
    await watch.started()  # a watch without initial values starts at its header: write after it
    await session.set_variable("x", 1)
    [update] = await take(watch, 1)
    assert (update.name, update.variable_id, update.value) == ("x", var_id, 1)
    watch.close()


async def test_a_missing_variable_cannot_be_watched(session: SessionContext) -> None:
    with pytest.raises(VariableNotFoundError, match="temprature"):
        await take(session.watch_variable("temprature"), 1)
    with pytest.raises(KeyError):
        await take(session.watch_variable("var_" + "0" * 24), 1)


async def test_bad_arguments_are_refused_at_the_call(session: SessionContext) -> None:
    with pytest.raises(ValidationError, match="at least one"):
        session.watch_variables([])
    with pytest.raises(ValidationError, match="more than once"):
        session.watch_variables(["a", "a"])
    with pytest.raises(ValidationError, match="names must be a list"):
        session.watch_variables("a")
    with pytest.raises(ValidationError, match="throttle_ms"):
        session.watch_variable("a", throttle_ms=-1)
    with pytest.raises(ValidationError, match="debounce_ms"):
        session.watch_variables(["a"], debounce_ms=float("nan"))
    with pytest.raises(ValidationError, match="filter_fn"):
        session.watch_variable("a", filter_fn=3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="invalid"):
        session.watch_variable("no spaces")


async def test_another_sessions_variable_is_watched_by_id_when_it_may_be_observed(
    session: SessionContext, new_session
) -> None:
    shared = await session.register_variable(
        "shared", "integer", 0, access_rules=[{"session_pattern": "any", "permissions": ["observe"]}]
    )
    private = await session.register_variable("private", "integer", 0)
    other = await new_session()
    watch = other.watch_variable(shared)
    [initial] = await take(watch, 1)  # the watch is open: what comes next is an update
    await session.set_variable("shared", 1)
    [update] = await take(watch, 1)
    assert (initial.value, update.value, update.source) == (0, 1, session.session_id)
    with pytest.raises(VariableNotFoundError):  # no permission at all: not even told it exists
        await take(other.watch_variable(private), 1)
    watch.close()
    await other.close()


async def test_optimization_candidates_appear_as_writes_by_the_run(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 1.0, constraints={"min": 0.0, "max": 2.0})
    watch = session.watch_variable("temperature", include_initial=False)
    await watch.started()  # the writes below follow the watch's start
    optimization_id = await session.start_optimization(
        "temperature", "random", max_iterations=3, objective=lambda x: -abs(x - 0.3), seed=1
    )
    await asyncio.wait_for(session.wait_optimization("temperature"), WAIT)
    candidates = await take(watch, 3)
    assert {u.source for u in candidates} == {optimization_id}
    assert [u.metadata["iteration"] for u in candidates] == [1, 2, 3]
    assert {u.metadata["optimization_id"] for u in candidates} == {optimization_id}
    [final] = await take(watch, 1)  # the best candidate, written back at the end
    assert final.source == optimization_id and final.metadata["final"] == "best"
    watch.close()


async def test_tensors_arrive_as_arrays(session: SessionContext) -> None:
    import numpy as np

    await session.register_variable("embedding", "embedding", np.zeros(4, dtype=np.float32))
    watch = session.watch_variable("embedding")
    await watch.started()  # the writes below follow the watch's start
    await session.set_variable("embedding", np.arange(4, dtype=np.float32))
    initial, update = await take(watch, 2)
    np.testing.assert_array_equal(initial.value, np.zeros(4))
    np.testing.assert_array_equal(update.value, np.arange(4))
    np.testing.assert_array_equal(update.old_value, np.zeros(4))
    assert update.value.dtype == np.float32
    watch.close()
