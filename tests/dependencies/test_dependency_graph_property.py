"""Property: random edge adds and removes on up to 200 variables never admit a cycle, and the
transitive queries agree with a reference computation (through a real server)."""

from __future__ import annotations

import asyncio

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import BridgeServer, SessionContext, connect

SIZE = 200
Op = tuple[bool, int, int]  # (add?, from, to)


def reaches(graph: dict[int, set[int]], start: int, goal: int) -> bool:
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            stack.extend(graph[node])
    return False


def closure(graph: dict[int, set[int]], start: int) -> set[int]:
    seen: set[int] = set()
    stack = list(graph[start])
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(graph[node])
    return seen


async def check(ops: list[Op], size: int) -> None:
    server = await BridgeServer().start()
    try:
        async with connect(server.address) as channel:
            await run(channel, ops, size)
    finally:
        await server.stop(1)


async def run(channel: grpc.aio.Channel, ops: list[Op], size: int) -> None:
    session = await SessionContext("graph", channel).initialize()
    names = [f"v{i:03d}" for i in range(size)]
    await session.register_variables([{"name": n, "type": "integer", "initial_value": 0} for n in names])
    graph: dict[int, set[int]] = {i: set() for i in range(size)}
    for add, a, b in ops:
        a, b = a % size, b % size
        if add:
            closes_cycle = reaches(graph, b, a)
            try:
                await session.add_dependency(names[a], names[b])
            except ValueError as exc:
                assert closes_cycle and "cycle" in str(exc)
                continue
            assert not closes_cycle
            graph[a].add(b)
        else:
            try:
                await session.remove_dependency(names[a], names[b])
            except KeyError:
                assert b not in graph[a]
                continue
            graph[a].discard(b)
    for i in range(0, size, max(1, size // 20)):
        deps = await session.get_dependencies(names[i], include_transitive=True)
        assert {d["name"] for d in deps} == {names[j] for j in closure(graph, i)}
        reverse = {j: {k for k in graph if j in graph[k]} for j in graph}
        dependents = await session.get_dependents(names[i], include_transitive=True)
        assert {d["name"] for d in dependents} == {names[j] for j in closure(reverse, i)}
    await session.cleanup()


@settings(max_examples=15, deadline=None)
@given(
    size=st.integers(min_value=2, max_value=SIZE),
    ops=st.lists(
        st.tuples(st.booleans() | st.just(True), st.integers(0, SIZE - 1), st.integers(0, SIZE - 1)), max_size=80
    ),
)
def test_random_edges_never_admit_a_cycle(size: int, ops: list[Op]) -> None:
    asyncio.run(check(ops, size))


def test_a_dense_small_graph() -> None:
    ops = [(True, a, b) for a in range(8) for b in range(8)]
    asyncio.run(check(ops, 8))
