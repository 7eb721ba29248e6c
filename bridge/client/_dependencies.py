"""add_dependency, remove_dependency, get_dependencies, get_dependents (the spec's "Variable Dependencies")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._proto import bridge_pb2 as pb
from ._cache import VariableCache


class DependencyMethods:
    """Mixed into SessionContext; relies on its `_call`, `_stub` and `_cache`."""

    _stub: Any
    _call: Callable[..., Any]
    _cache: VariableCache

    async def add_dependency(
        self,
        from_variable: str,
        to_variable: str,
        dependency_type: str = "data",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Records that `from_variable` depends on `to_variable` (types: data, constraint, optimization).

        ValueError when the edge would close a cycle (the message names its path);
        KeyError when either variable is missing.
        """
        request = pb.AddDependencyRequest(
            from_ref=from_variable,
            to_ref=to_variable,
            dependency_type=dependency_type,
            metadata={str(k): str(v) for k, v in (metadata or {}).items()},
        )
        try:
            await self._call(self._stub.AddDependency, request, "add_dependency", from_variable)
        finally:
            self._cache.written(from_variable)

    async def remove_dependency(self, from_variable: str, to_variable: str) -> None:
        """Removes that edge; KeyError when there is none."""
        request = pb.RemoveDependencyRequest(from_ref=from_variable, to_ref=to_variable)
        try:
            await self._call(self._stub.RemoveDependency, request, "remove_dependency", from_variable)
        finally:
            self._cache.written(from_variable)

    async def get_dependencies(self, variable: str, include_transitive: bool = False) -> list[dict[str, Any]]:
        """What it depends on: [{'variable_id', 'name', 'type', 'metadata', 'depth', 'via'}], nearest first."""
        return await self._edges(variable, include_transitive, dependents=False)

    async def get_dependents(self, variable: str, include_transitive: bool = False) -> list[dict[str, Any]]:
        """What depends on the variable, in the same shape as get_dependencies."""
        return await self._edges(variable, include_transitive, dependents=True)

    async def _edges(self, variable: str, include_transitive: bool, dependents: bool) -> list[dict[str, Any]]:
        request = pb.GetDependenciesRequest(ref=variable, dependents=dependents, include_transitive=include_transitive)
        what = "get_dependents" if dependents else "get_dependencies"
        response = await self._call(self._stub.GetDependencies, request, what, variable)
        return [
            {
                "variable_id": edge.variable_id,
                "name": edge.name,
                "type": edge.type,
                "metadata": dict(edge.metadata),
                "depth": edge.depth,
                "via": edge.via,
            }
            for edge in response.edges
        ]
