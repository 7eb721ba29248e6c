"""The dependency graph's two questions, as pure functions over "what does X depend on".

Kept apart from the RPCs so the property tests can check them against a reference.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

Edges = Callable[[str], Iterable[str]]


def path_between(start: str, goal: str, edges: Edges) -> list[str] | None:
    """A shortest path start -> ... -> goal along `edges`, or None. Adding goal -> start would close it into a cycle."""
    if start == goal:
        return [start]
    came_from: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges(node):
            if nxt in came_from:
                continue
            came_from[nxt] = node
            if nxt == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return path[::-1]
            queue.append(nxt)
    return None


def reachable(start: str, edges: Edges) -> list[tuple[str, int, str]]:
    """Every node reachable from `start` (itself excluded) once, breadth first: (node, depth, the node it came from)."""
    seen = {start}
    found: list[tuple[str, int, str]] = []
    queue = deque([(start, 0)])
    while queue:
        node, depth = queue.popleft()
        for nxt in edges(node):
            if nxt in seen:
                continue
            seen.add(nxt)
            found.append((nxt, depth + 1, node))
            queue.append((nxt, depth + 1))
    return found
