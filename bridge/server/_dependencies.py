"""The dependency RPCs: typed edges between one session's variables, never a cycle.

An edge "from depends on to" lives on `from`'s record (`dependencies`, with its type and
metadata in `dependency_kinds`), so adding or removing one is a new version of `from`,
in one transaction with the cycle check: two concurrent adds cannot close a cycle
between them.
"""

from __future__ import annotations

from .._proto import bridge_pb2 as pb
from ..errors import ValidationError, VariableNotFoundError
from ..limits import check_count, check_ref, check_string_map
from ..store import Transaction, VariableRecord
from ._access import allowed
from ._graph import path_between, reachable
from ._servicer import VariableServicer
from ._sessions import Ctx

DEPENDENCY_TYPES = ("data", "constraint", "optimization")
#: Most metadata entries (and characters per key or value) one edge keeps.
MAX_EDGE_METADATA = 32
MAX_EDGE_METADATA_CHARS = 256


def _edge_metadata(metadata: dict[str, str], var: str) -> tuple[tuple[str, str], ...]:
    check_string_map(
        metadata, MAX_EDGE_METADATA, MAX_EDGE_METADATA_CHARS, "dependency metadata", var, "dependency_metadata"
    )
    return tuple(sorted(metadata.items()))


class DependencyServicer(VariableServicer):
    """AddDependency, RemoveDependency, GetDependencies (see bridge.proto, "dependencies")."""

    async def _own(self, txn: Transaction, ref: str, session_id: str) -> VariableRecord:
        check_ref(ref, self.limits)
        record = await txn.get(ref)
        if record is None:
            if await self._find(session_id, ref, "read") is not None:
                raise ValidationError(
                    f"{ref!r} is another session's variable; dependencies join variables of one session",
                    variable=ref,
                    rule="dependencies",
                )
            raise self._not_found(ref, session_id)
        return record

    async def AddDependency(self, request: pb.AddDependencyRequest, context: Ctx) -> pb.DependencyChangeResponse:
        session_id = await self._authenticate(request, context)
        kind = request.dependency_type or "data"
        if kind not in DEPENDENCY_TYPES:
            raise ValidationError(
                f"dependency_type must be one of {list(DEPENDENCY_TYPES)}, got {kind!r}", rule="dependency_type"
            )
        metadata = _edge_metadata(dict(request.metadata), request.from_ref[:60])

        async def body(txn: Transaction) -> VariableRecord:
            source = await self._own(txn, request.from_ref, session_id)
            target = await self._own(txn, request.to_ref, session_id)
            await self._refuse_cycle(txn, source, target)
            deps = source.dependencies if target.id in source.dependencies else (*source.dependencies, target.id)
            check_count(len(deps), self.limits.max_dependencies, f"{source.name}: dependencies", "max_dependencies")
            kinds = tuple(k for k in source.dependency_kinds if k[0] != target.id)
            if kind != "data" or metadata:
                kinds = (*kinds, (target.id, kind, metadata))
            return self._restructured(txn, source, session_id, dependencies=deps, dependency_kinds=kinds)

        record, revision = await self.store.transact(session_id, body)
        return pb.DependencyChangeResponse(variable_id=record.id, version=record.version, revision=revision)

    async def _refuse_cycle(self, txn: Transaction, source: VariableRecord, target: VariableRecord) -> None:
        """If target already reaches source, the new edge source -> target closes a cycle: name it."""
        graph: dict[str, tuple[str, ...]] = {}
        names: dict[str, str] = {}
        stack = [target.id]
        while stack:
            vid = stack.pop()
            if vid in graph:
                continue
            record = await txn.get(vid)
            graph[vid] = record.dependencies if record is not None else ()
            if record is not None:
                names[vid] = record.name
            stack.extend(graph[vid])
        path = path_between(target.id, source.id, lambda vid: graph.get(vid, ()))
        if path is not None:
            cycle = " -> ".join([source.name, *(names.get(vid, vid) for vid in path)])
            raise ValidationError(
                f"{source.name} cannot depend on {target.name}: that would close the cycle {cycle}",
                variable=source.name,
                rule="cycle",
                cycle=cycle,
            )

    async def RemoveDependency(self, request: pb.RemoveDependencyRequest, context: Ctx) -> pb.DependencyChangeResponse:
        session_id = await self._authenticate(request, context)

        async def body(txn: Transaction) -> VariableRecord:
            source = await self._own(txn, request.from_ref, session_id)
            target = await self._own(txn, request.to_ref, session_id)
            if target.id not in source.dependencies:
                raise VariableNotFoundError(
                    f"{source.name} does not depend on {target.name}", variable=source.name, rule="dependencies"
                )
            return self._restructured(
                txn,
                source,
                session_id,
                dependencies=tuple(d for d in source.dependencies if d != target.id),
                dependency_kinds=tuple(k for k in source.dependency_kinds if k[0] != target.id),
            )

        record, revision = await self.store.transact(session_id, body)
        return pb.DependencyChangeResponse(variable_id=record.id, version=record.version, revision=revision)

    async def GetDependencies(self, request: pb.GetDependenciesRequest, context: Ctx) -> pb.GetDependenciesResponse:
        session_id = await self._authenticate(request, context)
        record = await self._read(session_id, request.ref)
        records = {r.id: r for r in await self.store.list_variables(record.session_id)}
        if request.dependents:
            reverse: dict[str, list[str]] = {}
            for r in records.values():
                for dep in r.dependencies:
                    reverse.setdefault(dep, []).append(r.id)
            edges = lambda vid: sorted(reverse.get(vid, ()), key=lambda v: records[v].name)  # noqa: E731
        else:
            edges = lambda vid: records[vid].dependencies if vid in records else ()  # noqa: E731
        found = reachable(record.id, edges)
        if not request.include_transitive:
            found = [f for f in found if f[1] == 1]
        if record.session_id != session_id:  # another session sees only the variables it may read
            metadata = await self._metadata_for(record, session_id)
            readable = {vid for vid, r in records.items() if allowed(r, session_id, "read", metadata)}
            found = [(vid, depth, via if via in readable else "") for vid, depth, via in found if vid in readable]
        response = pb.GetDependenciesResponse()
        for vid, depth, via in found:
            far = records.get(vid)
            if far is None:
                continue  # an edge to a variable deleted by force would have gone with it
            near = records.get(via)
            if near is None:  # the edge starts at a variable the caller may not read: shown without it
                response.edges.add(variable_id=vid, name=far.name, type="", depth=depth)
                continue
            source, target = (far, near) if request.dependents else (near, far)
            kind, edge_metadata = source.dependency_kind(target.id)
            response.edges.add(
                variable_id=vid, name=far.name, type=kind, metadata=edge_metadata, depth=depth, via=near.name
            )
        return response
