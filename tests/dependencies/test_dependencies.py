"""Dependencies through a real server: typed edges, cycles refused with their path, transitive queries, deletes."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from spec_examples import run_example

from bridge import SessionContext

WAIT = 5.0


async def chain(session: SessionContext, names: str) -> dict[str, str]:
    """Variables named by the letters, each depending on the next: a -> b -> c ..."""
    ids = await session.register_variables([{"name": n, "type": "float", "initial_value": 1.0} for n in names])
    for a, b in itertools.pairwise(names):
        await session.add_dependency(a, b)
    return ids


async def test_edges_with_types_and_metadata(session: SessionContext) -> None:
    ids = await session.register_variables(
        [{"name": n, "type": "float", "initial_value": 0.5} for n in ("effective", "base", "style")]
    )
    await session.add_dependency("effective", "base", dependency_type="data")
    await session.add_dependency("effective", "style", dependency_type="constraint", metadata={"why": "bounds"})
    deps = await session.get_dependencies("effective")
    assert [(d["variable_id"], d["name"], d["type"], d["metadata"]) for d in deps] == [
        (ids["base"], "base", "data", {}),
        (ids["style"], "style", "constraint", {"why": "bounds"}),
    ]
    assert [d["name"] for d in await session.get_dependents("base")] == ["effective"]
    with pytest.raises(ValueError, match="dependency_type must be one of"):
        await session.add_dependency("base", "style", dependency_type="causal")
    with pytest.raises(KeyError):
        await session.add_dependency("effective", "nope")


async def test_a_cycle_is_refused_and_named(session: SessionContext) -> None:
    await chain(session, "abcd")
    with pytest.raises(ValueError, match="would close the cycle d -> a -> b -> c -> d"):
        await session.add_dependency("d", "a")
    with pytest.raises(ValueError, match="cycle a -> a"):
        await session.add_dependency("a", "a")
    assert await session.get_dependencies("d") == []  # nothing changed


async def test_transitive_queries(session: SessionContext) -> None:
    await chain(session, "abcd")
    deps = await session.get_dependencies("a", include_transitive=True)
    assert [(d["name"], d["depth"], d["via"]) for d in deps] == [("b", 1, "a"), ("c", 2, "b"), ("d", 3, "c")]
    assert [d["name"] for d in await session.get_dependencies("a")] == ["b"]
    dependents = await session.get_dependents("d", include_transitive=True)
    assert [(d["name"], d["depth"]) for d in dependents] == [("c", 1), ("b", 2), ("a", 3)]


async def test_remove_and_edge_changes_are_versions(session: SessionContext) -> None:
    await chain(session, "ab")
    await session.remove_dependency("a", "b")
    assert await session.get_dependencies("a") == []
    with pytest.raises(KeyError, match="does not depend on"):
        await session.remove_dependency("a", "b")
    history = await session.get_variable_history("a")
    assert [h["metadata"] for h in history[:2]] == [{"change": "dependencies"}] * 2
    assert {h["value"] for h in history} == {1.0}  # the value never changed


async def test_delete_is_refused_while_depended_on_unless_forced(session: SessionContext) -> None:
    await chain(session, "abc")
    with pytest.raises(ValueError, match=r"\['a'\] depend on it"):
        await session.delete_variable("b")
    assert await session.get_variable("b") == 1.0
    await session.delete_variable("b", force=True)
    assert await session.get_dependencies("a") == []
    assert await session.get_variable("b", default="gone") == "gone"


async def test_watchers_of_a_dependent_hear_of_its_dependencies(session: SessionContext) -> None:
    await chain(session, "ab")  # a depends on b
    await session.register_variable("other", "float", 0.0)
    watch = session.watch_variable("a", include_initial=False)
    await watch.started()
    await session.set_variable("other", 1.0)  # unrelated: not sent
    await session.set_variable("b", 2.0)
    update = await asyncio.wait_for(anext(watch), WAIT)
    assert (update.kind, update.name, update.source, update.value, update.dependents) == (
        "dependency",
        "b",
        "b",
        2.0,
        ("a",),
    )
    await session.set_variable("a", 3.0)  # the watched variable itself: an ordinary update
    update = await asyncio.wait_for(anext(watch), WAIT)
    assert (update.kind, update.name, update.value) == ("update", "a", 3.0)
    await session.register_variable("c", "float", 0.0)
    await session.add_dependency("a", "c")  # a new edge is followed from then on
    assert (await asyncio.wait_for(anext(watch), WAIT)).kind == "update"  # a's new version
    await session.set_variable("c", 4.0)
    update = await asyncio.wait_for(anext(watch), WAIT)
    assert (update.kind, update.source) == ("dependency", "c")
    watch.close()


async def test_the_specs_dependency_example(session: SessionContext) -> None:
    await session.register_variable("effective_temperature", "float", 0.7)
    await session.register_variable("base_temperature", "float", 0.7)
    await run_example("add_dependency", session=session)
    [dep] = await session.get_dependencies("effective_temperature")
    assert (dep["name"], dep["type"]) == ("base_temperature", "data")


async def test_the_specs_get_dependencies_example(session: SessionContext) -> None:
    ids = await session.register_variables(
        [{"name": n, "type": "float", "initial_value": 0.5} for n in ("effective_temperature", "base", "style")]
    )
    await session.add_dependency("effective_temperature", "base")
    await session.add_dependency("effective_temperature", "style", dependency_type="constraint")
    out = await run_example("get_dependencies", session=session)
    assert [{k: d[k] for k in ("variable_id", "type")} for d in out["deps"]] == [
        {"variable_id": ids["base"], "type": "data"},
        {"variable_id": ids["style"], "type": "constraint"},
    ]
