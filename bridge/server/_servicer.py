"""BridgeService: decode -> authenticate -> authorise -> validate -> store -> encode.

The server is the authority on every rule: clients check early for friendlier errors,
but nothing a client sends is trusted. Methods raise `BridgeError`s; `_handlers` turns
them into status codes, in one place, with the table shared by both ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from .._proto import bridge_pb2 as pb
from ..errors import (
    AccessDeniedError,
    BridgeError,
    LimitExceededError,
    PreconditionFailedError,
    ValidationError,
    VariableExistsError,
    VariableNotFoundError,
)
from ..limits import check_count, check_name, check_ref, is_id
from ..store import Transaction, VariableRecord, created_record
from ..types import TYPES, check_spec, infer_type
from ._access import allowed, check_self_rules, grants_anything, needs_metadata, parse_rules, require
from ._convert import fill_get_response, get_reply, variable_message
from ._handlers import SplitRequest, error_detail
from ._ids import new_id
from ._sessions import Ctx, SessionServicer
from ._values import NO_METADATA, coerce_wire, decode_metadata, decode_value


class _Written(NamedTuple):
    """Who writes a batch, with the metadata recorded on every update of it."""

    session_id: str
    metadata: dict[str, Any]
    metadata_bytes: int


class _AtomicBatchFailed(Exception):
    """Aborts an atomic transaction; carries the per-update errors."""

    def __init__(self, errors: dict[str, BridgeError]) -> None:
        super().__init__("atomic batch failed")
        self.errors = errors


class VariableServicer(SessionServicer):
    """The variable methods of BridgeService (see bridge.proto for each one's contract)."""

    # ------------------------------------------------------------ shared steps

    async def _find(self, session_id: str, ref: str, permission: str) -> VariableRecord | None:
        """A variable by name in this session, or by ID anywhere if its rules grant `permission`."""
        record = await self.store.get_variable(session_id, ref)
        if record is not None:
            if record.access_rules:  # the owner restricted itself (see _access)
                require(record, session_id, permission)
        else:
            check_ref(ref, self.limits)  # before anything echoes it
            if is_id(ref):
                record = await self.store.get_variable_by_id(ref)
                if record is not None:
                    metadata = await self._metadata_for(record, session_id)
                    if not grants_anything(record, session_id, metadata):
                        raise self._not_found(ref, session_id)  # nothing to it: not even that it exists
                    require(record, session_id, permission, metadata)
        return record

    async def _metadata_for(self, record: VariableRecord, session_id: str) -> dict[str, Any] | None:
        """The caller's session metadata, read only when the variable's rules have conditions on it."""
        if not needs_metadata(record):
            return None
        session = await self.store.get_session(session_id)
        return dict(session.metadata) if session is not None else None

    def _restructured(self, txn: Transaction, record: VariableRecord, writer: str, **fields: Any) -> VariableRecord:
        """A new version with the same value and changed structure (edges or rules), recorded as such."""
        change = "dependencies" if "dependencies" in fields else "permissions"
        updated = record.next_version(record.value, txn.revision, txn.now, writer, {"change": change})
        updated = updated._replace(**fields)
        txn.put(updated)
        return updated

    def _not_found(self, ref: str, session_id: str) -> VariableNotFoundError:
        check_ref(ref, self.limits)
        return VariableNotFoundError(f"variable {ref!r} not found in session {session_id!r}", variable=ref)

    async def _read(self, session_id: str, ref: str) -> VariableRecord:
        record = await self._find(session_id, ref, "read")
        if record is None:
            raise self._not_found(ref, session_id)
        return record

    async def _owner(self, session_id: str, ref: str, permission: str) -> str:
        """The session holding `ref` for a write: this one, or another that granted access by ID."""
        if not is_id(ref):  # a name: always this session's
            return session_id
        record = await self._find(session_id, ref, permission)
        return record.session_id if record is not None else session_id

    def _new_record(
        self, txn: Transaction, session_id: str, writer: str, fields: dict[str, Any], **extra: Any
    ) -> VariableRecord:
        """A variable created in `txn`: `created_record` with a new ID (`extra`: its optional arguments)."""
        return created_record(new_id("var_"), session_id, writer, txn.revision, txn.now, fields, **extra)

    async def _check_capacity(self, txn: Transaction) -> None:
        check_count(
            await txn.variable_count(),
            self.limits.max_variables_per_session,
            "variables in this session",
            "max_variables_per_session",
        )

    def _writer(
        self,
        value: pb.Value,
        writer: str,
        metadata: dict[str, Any],
        metadata_bytes: int = 0,
        expected_version: int = 0,
        array_data: memoryview | bytes | None = None,
    ) -> Callable[[VariableRecord, int, float], VariableRecord]:
        """The `make` of a write of `value`: the variable's next version, validated (see Store.update)."""
        limits = self.limits

        def make(record: VariableRecord, revision: int, now: float) -> VariableRecord:
            if record.access_rules and record.session_id == writer:  # other sessions were checked on lookup
                require(record, writer, "write")
            if expected_version > 0 and record.version != expected_version:
                raise PreconditionFailedError(
                    f"{record.name}: version is {record.version}, expected {expected_version}",
                    variable=record.name,
                    rule="expected_version",
                )
            stored = coerce_wire(TYPES[record.type], value, record.constraints, record.name, limits, array_data)
            return record.next_version(stored, revision, now, writer, metadata, metadata_bytes)

        return make

    def _write(self, txn: Transaction, record: VariableRecord, value: pb.Value, by: _Written) -> VariableRecord:
        make = self._writer(value, by.session_id, by.metadata, by.metadata_bytes)
        updated = make(record, txn.revision, txn.now)
        txn.put(updated)
        return updated

    # ------------------------------------------------------------ registration

    def _prepare_spec(self, spec: pb.VariableSpec) -> dict[str, Any]:
        name = check_name(spec.name, limits=self.limits)
        constraints = decode_metadata(spec.constraints, name, self.limits, "constraints")
        t, checked = check_spec(spec.type, constraints, name)
        check_count(len(spec.dependencies), self.limits.max_dependencies, f"{name}: dependencies", "max_dependencies")
        return {
            "name": name,
            "type": t.name,
            "constraints": checked,
            "value": coerce_wire(t, spec.initial_value, checked, name, self.limits),
            "metadata": decode_metadata(spec.metadata, name, self.limits),
            "dependencies": list(dict.fromkeys(check_ref(d, self.limits) for d in spec.dependencies)),
            "access_rules": parse_rules(spec.access_rules, name, self.limits),
        }

    async def _register(self, session_id: str, specs: list[pb.VariableSpec]) -> tuple[dict[str, str], int]:
        check_count(len(specs), self.limits.max_batch_size, "variables in one batch", "max_batch_size")
        prepared = [self._prepare_spec(spec) for spec in specs]
        for fields in prepared:
            check_self_rules(fields["access_rules"], session_id, fields["name"])

        async def body(txn: Transaction) -> dict[str, str]:
            ids: dict[str, str] = {}
            for fields in prepared:
                name = fields["name"]
                if await txn.get(name) is not None:
                    raise VariableExistsError(
                        f"variable {name!r} already exists in session {session_id!r}", variable=name
                    )
                dependencies = []
                for dep in fields["dependencies"]:
                    target = await txn.get(dep)
                    if target is None:
                        raise VariableNotFoundError(
                            f"{name}: dependency {dep!r} not found", variable=name, rule="dependencies"
                        )
                    dependencies.append(target.id)
                edges = tuple(dict.fromkeys(dependencies))
                record = self._new_record(txn, session_id, session_id, fields, dependencies=edges)
                txn.put(record)
                ids[name] = record.id
            await self._check_capacity(txn)
            return ids

        return await self.store.transact(session_id, body)

    async def RegisterVariable(self, request: pb.RegisterVariableRequest, context: Ctx) -> pb.RegisterVariableResponse:
        session_id = await self._authenticate(request, context)
        ids, revision = await self._register(session_id, [request.spec])
        return pb.RegisterVariableResponse(variable_id=ids[request.spec.name], revision=revision)

    async def RegisterVariables(
        self, request: pb.RegisterVariablesRequest, context: Ctx
    ) -> pb.RegisterVariablesResponse:
        session_id = await self._authenticate(request, context)
        ids, revision = await self._register(session_id, list(request.specs))
        return pb.RegisterVariablesResponse(variable_ids=ids, revision=revision)

    # ------------------------------------------------------------ reads

    async def _info(self, record: VariableRecord, include_value: bool = False, viewer: str = "") -> pb.Variable:
        """The variable as `viewer` may see it: another session does not see its rules or its edges."""
        message = variable_message(record, await self.store.stats(record.id), include_value, self.limits)
        if viewer and viewer != record.session_id:
            message.ClearField("access_rules")
            message.ClearField("dependencies")
        return message

    def _track(self, tracking_id: str, session_id: str, refs: list[str]) -> bool | None:
        """Tracks refs for a client cache before they are read (see server._watch._invalidations).

        None when the read carried no tracking ID; else whether the refs are now tracked.
        """
        return None if not tracking_id else False

    async def GetVariable(self, request: pb.GetVariableRequest, context: Ctx) -> pb.GetVariableResponse | bytes:
        session_id = await self._authenticate(request, context)
        tracked = None
        if request.tracking_id:
            check_ref(request.ref, self.limits)  # bounded before it is kept
            tracked = self._track(request.tracking_id, session_id, [request.ref])
        record = await self._read(session_id, request.ref)
        await self.store.count_reads([record.id])
        if tracked:
            tracked = record.session_id == session_id  # other sessions' writes are not sent on this stream
        info = await self._info(record, viewer=session_id) if request.include_info else None
        return get_reply(record, info, tracked)

    async def GetVariables(self, request: pb.GetVariablesRequest, context: Ctx) -> pb.GetVariablesResponse:
        session_id = await self._authenticate(request, context)
        refs = list(request.refs)
        check_count(len(refs), self.limits.max_batch_size, "variables in one batch", "max_batch_size")
        for ref in refs:
            check_ref(ref, self.limits)
        tracked = self._track(request.tracking_id, session_id, refs)
        found = await self.store.get_variables(session_id, refs)
        for record in found.values():
            if record.access_rules:
                require(record, session_id, "read")
        records = [(ref, found.get(ref) or await self._find(session_id, ref, "read")) for ref in refs]
        await self.store.count_reads([record.id for _, record in records if record is not None])
        response = pb.GetVariablesResponse()
        for ref, record in records:
            if record is None:
                response.missing.append(ref)
            else:
                info = await self._info(record, viewer=session_id) if request.include_info else None
                fill_get_response(response.found[ref], record, info, tracked and record.session_id == session_id)
        return response

    async def ListVariables(self, request: pb.ListVariablesRequest, context: Ctx) -> pb.ListVariablesResponse:
        session_id = await self._authenticate(request, context)
        if len(request.pattern) > self.limits.max_pattern_length:
            raise LimitExceededError(
                f"pattern is {len(request.pattern)} characters; the limit is {self.limits.max_pattern_length}",
                rule="max_pattern_length",
            )
        records = await self.store.list_variables(session_id, request.pattern)
        return pb.ListVariablesResponse(
            variables=[
                # a value the owner withdrew its own read of is listed without it
                await self._info(r, request.include_values and (not r.access_rules or allowed(r, session_id, "read")))
                for r in records
            ]
        )

    # ------------------------------------------------------------ writes

    async def SetVariable(self, request: pb.SetVariableRequest | SplitRequest, context: Ctx) -> pb.SetVariableResponse:
        array_data: memoryview | bytes | None = None
        if isinstance(request, SplitRequest):
            request, array_data = request
            if request.array_data:  # protobuf would keep the later copy; refuse rather than guess
                raise ValidationError("array_data appears more than once in the request", rule="array_data")
        elif request.array_data:  # sent inside the message rather than leading it
            array_data = request.array_data
        session_id = await self._authenticate(request, context)
        ref = request.ref
        # A name is always this session's: no lookup on the commonest write. An ID may be another
        # session's variable, whose access rules are checked before anything else is looked at.
        owner = await self._owner(session_id, ref, "write") if is_id(ref) else session_id
        metadata, metadata_bytes = NO_METADATA, 0
        if request.HasField("metadata"):
            metadata = decode_metadata(request.metadata, ref, self.limits)
            metadata_bytes = request.metadata.ByteSize()
        expected = request.expected_version
        make = self._writer(request.value, session_id, metadata, metadata_bytes, expected, array_data)
        updated = await self.store.update(owner, ref, make)
        if updated is not None:
            record, revision = updated
            return pb.SetVariableResponse(variable_id=record.id, version=record.version, revision=revision)
        if not request.create_if_missing:
            raise self._not_found(ref, owner)
        if expected > 0:
            raise PreconditionFailedError(
                f"{ref}: expected version {expected}, but the variable does not exist",
                variable=ref,
                rule="expected_version",
            )

        async def body(txn: Transaction) -> tuple[VariableRecord, bool]:
            record = await txn.get(ref)
            if record is not None:  # created meanwhile by another call
                updated = make(record, txn.revision, txn.now)
                txn.put(updated)
                return updated, False
            name = check_name(ref, limits=self.limits)
            type_name = request.type_hint or infer_type(
                decode_value(request.value, name, self.limits, array_data), name
            )
            t, constraints = check_spec(type_name, {}, name)
            value = coerce_wire(t, request.value, constraints, name, self.limits, array_data)
            fields = {"name": name, "type": t.name, "constraints": constraints, "value": value}
            created = self._new_record(
                txn, owner, session_id, fields, last_update_metadata=metadata, metadata_bytes=metadata_bytes
            )
            txn.put(created)
            await self._check_capacity(txn)
            return created, True

        (record, created), revision = await self.store.transact(owner, body)
        return pb.SetVariableResponse(variable_id=record.id, version=record.version, revision=revision, created=created)

    async def UpdateVariables(self, request: pb.UpdateVariablesRequest, context: Ctx) -> pb.UpdateVariablesResponse:
        session_id = await self._authenticate(request, context)
        updates = [(entry.key, entry.value) for entry in request.updates]
        check_count(len(updates), self.limits.max_batch_size, "updates in one batch", "max_batch_size")
        for ref, _ in updates:
            check_ref(ref, self.limits)
        dupes = sorted(ref for ref, n in Counter(ref for ref, _ in updates).items() if n > 1)
        if dupes:
            raise ValidationError(f"variables {dupes[:10]} appear more than once in one batch", rule="duplicate_refs")
        metadata = decode_metadata(request.metadata, "update_variables", self.limits)
        written = _Written(session_id, metadata, request.metadata.ByteSize())
        response = pb.UpdateVariablesResponse()
        if request.atomic:
            await self._update_atomic(written, updates, response)
        else:
            await self._update_each(written, updates, response)
        response.revision = await self.store.revision(session_id)
        return response

    async def _update_atomic(
        self, by: _Written, updates: list[tuple[str, pb.Value]], response: pb.UpdateVariablesResponse
    ) -> None:
        session_id = by.session_id

        async def body(txn: Transaction) -> dict[str, int]:
            errors: dict[str, BridgeError] = {}
            versions: dict[str, int] = {}
            written: dict[str, str] = {}  # variable ID -> the ref that wrote it
            for ref, value in updates:
                try:
                    record = await txn.get(ref)
                    if record is None:
                        raise VariableNotFoundError(
                            f"variable {ref!r} not found in session {session_id!r} "
                            "(atomic batches cover the session's own variables)",
                            variable=ref,
                        )
                    if record.id in written:
                        raise ValidationError(
                            f"{ref!r} and {written[record.id]!r} are the same variable; one update each per batch",
                            variable=record.name,
                            rule="duplicate_refs",
                        )
                    written[record.id] = ref
                    versions[ref] = self._write(txn, record, value, by).version
                except BridgeError as exc:
                    errors[ref] = exc
            if errors:
                raise _AtomicBatchFailed(errors)
            return versions

        try:
            versions, _ = await self.store.transact(session_id, body)
        except _AtomicBatchFailed as failed:
            summary = f"not applied: the atomic batch was rolled back because {len(failed.errors)} update(s) failed"
            for ref, _ in updates:
                exc = failed.errors.get(ref)
                detail = error_detail(exc) if exc else pb.ErrorDetail(kind="not_applied", message=summary)
                response.results[ref].CopyFrom(pb.UpdateResult(ok=False, error=detail))
            return
        for ref, version in versions.items():
            response.results[ref].CopyFrom(pb.UpdateResult(ok=True, version=version))

    async def _update_each(
        self, by: _Written, updates: list[tuple[str, pb.Value]], response: pb.UpdateVariablesResponse
    ) -> None:
        session_id = by.session_id

        for ref, value in updates:
            try:
                owner = await self._owner(session_id, ref, "write")
                updated = await self.store.update(
                    owner, ref, self._writer(value, session_id, by.metadata, by.metadata_bytes)
                )
                if updated is None:
                    raise self._not_found(ref, owner)
                response.results[ref].CopyFrom(pb.UpdateResult(ok=True, version=updated[0].version))
            except BridgeError as exc:
                response.results[ref].CopyFrom(pb.UpdateResult(ok=False, error=error_detail(exc)))

    async def DeleteVariable(self, request: pb.DeleteVariableRequest, context: Ctx) -> pb.DeleteVariableResponse:
        session_id = await self._authenticate(request, context)
        ref = request.ref
        check_ref(ref, self.limits)

        async def body(txn: Transaction) -> str:
            record = await txn.get(ref)  # the caller's own variables only: a delete is its owner's to make
            if record is None:
                other = await self._find(session_id, ref, "read") if is_id(ref) else None
                if other is not None:
                    raise AccessDeniedError(
                        f"only session {other.session_id!r} may delete variable {other.name!r} ({other.id})",
                        variable=other.name,
                        rule="delete",
                    )
                raise self._not_found(ref, session_id)
            dependents = await txn.dependents(record.id)
            if dependents and not request.force:
                raise PreconditionFailedError(
                    f"cannot delete {record.name!r}: {dependents} depend on it (force=True removes their edges too)",
                    variable=record.name,
                    rule="dependents",
                )
            for name in dependents:
                dependent = await txn.get(name)
                if dependent is not None:
                    self._restructured(
                        txn,
                        dependent,
                        session_id,
                        dependencies=tuple(d for d in dependent.dependencies if d != record.id),
                        dependency_kinds=tuple(k for k in dependent.dependency_kinds if k[0] != record.id),
                    )
            txn.delete(record, writer=session_id)
            return record.id

        variable_id, revision = await self.store.transact(session_id, body)
        return pb.DeleteVariableResponse(variable_id=variable_id, revision=revision)
