"""BridgeService: decode -> authenticate -> authorise -> validate -> store -> encode.

The server is the authority on every rule: clients check early for friendlier errors,
but nothing a client sends is trusted. Errors are raised as `BridgeError`s and turned
into status codes in one place (`_guarded`), using the shared table in `bridge.errors`.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from .. import __version__
from .._proto import bridge_pb2 as pb
from .._proto import bridge_pb2_grpc as pb_grpc
from ..codec import decode, decode_map, encode
from ..errors import (
    ERROR_TRAILER_KEY,
    AuthenticationError,
    BridgeError,
    LimitExceededError,
    PreconditionFailedError,
    SessionNotFoundError,
    ValidationError,
    VariableExistsError,
    VariableNotFoundError,
)
from ..limits import ID_RE, Limits, check_count, check_name
from ..store import SessionRecord, Store, Transaction, VariableRecord
from ..types import VariableType, get_type, infer_type
from . import _auth
from ._access import parse_rules, require
from ._convert import fill_get_response, timestamp, variable_message

log = logging.getLogger("dspex.server")

PROTOCOL_VERSION = "dspex_bridge.v1"
_NULL = pb.Value(null_value=pb.NULL_VALUE)


def error_detail(exc: BridgeError) -> pb.ErrorDetail:
    return pb.ErrorDetail(kind=exc.kind, message=exc.message, details=exc.details)


class _AtomicBatchFailed(Exception):
    """Aborts an atomic transaction; carries the per-update errors."""

    def __init__(self, errors: dict[str, BridgeError]) -> None:
        super().__init__("atomic batch failed")
        self.errors = errors


def coerce_wire(t: VariableType, value: pb.Value, constraints: dict[str, Any], var: str) -> pb.Value:
    """Validates a wire value against a type; returns the wire form to store.

    When coercion leaves the value as it was, the client's bytes are stored as they
    came: nothing is encoded twice.
    """
    decoded = decode(value, native=False)
    coerced = t.coerce(decoded, constraints, var)
    if coerced is None:
        return _NULL
    if coerced is decoded:
        return value
    stored = encode(coerced)
    if stored.WhichOneof("kind") == "array_value" and value.WhichOneof("kind") == "array_value":
        stored.array_value.framework = value.array_value.framework
    return stored


class BridgeServicer(pb_grpc.BridgeServiceServicer):
    def __init__(
        self,
        store: Store,
        *,
        session_ttl: float = 3600.0,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.session_ttl = session_ttl
        self.limits = limits or store.limits
        self.clock = clock

    # ------------------------------------------------------------ sessions

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> str:
        session_id, secret = _auth.split_token(_auth.bearer_token(context.invocation_metadata()))
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(
                f"session {session_id!r} not found (expired or cleaned up); call initialize() again",
                session=session_id,
            )
        if not _auth.token_matches(secret, session.token_hash):
            raise AuthenticationError(f"invalid token for session {session_id!r}", session=session_id)
        now = self.clock()
        if now > session.expires_at:
            await self.store.delete_session(session_id)
            raise SessionNotFoundError(
                f"session {session_id!r} expired after {session.ttl_seconds:g}s idle", session=session_id
            )
        if now - session.last_seen > 1.0:
            await self.store.touch_session(session_id, now)
        return session_id

    async def Ping(self, request: pb.PingRequest, context: grpc.aio.ServicerContext) -> pb.PingResponse:
        return pb.PingResponse(
            server_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            max_message_bytes=self.limits.max_message_bytes,
        )

    async def InitializeSession(
        self, request: pb.InitializeSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.InitializeSessionResponse:
        session_id = check_name(request.session_id, "session id", self.limits)
        now = self.clock()
        existing = await self.store.get_session(session_id)
        if existing is not None and now <= existing.expires_at:
            if not request.resume_token:
                raise AuthenticationError(
                    f"session {session_id!r} already exists; pass its token to resume it", session=session_id
                )
            _, secret = _auth.split_token(request.resume_token)
            if not _auth.token_matches(secret, existing.token_hash):
                raise AuthenticationError(f"invalid token for session {session_id!r}", session=session_id)
            await self.store.touch_session(session_id, now)
            log.info("session resumed", extra={"session": session_id})
            return self._init_response(existing, request.resume_token, resumed=True)
        if existing is not None:
            await self.store.delete_session(session_id)
        check_count(len(await self.store.session_ids()) + 1, self.limits.max_sessions, "sessions", "max_sessions")
        check_count(len(request.metadata), self.limits.max_metadata_entries, "session metadata", "max_metadata_entries")
        token, token_hash = _auth.new_token(session_id)
        record = SessionRecord(session_id, token_hash, now, now, self.session_ttl, dict(request.metadata))
        if not await self.store.create_session(record):
            raise AuthenticationError(f"session {session_id!r} was created concurrently", session=session_id)
        log.info("session created", extra={"session": session_id})
        return self._init_response(record, token, resumed=False)

    def _init_response(self, record: SessionRecord, token: str, resumed: bool) -> pb.InitializeSessionResponse:
        return pb.InitializeSessionResponse(
            session_id=record.session_id,
            token=token,
            resumed=resumed,
            revision=record.revision,
            ttl_seconds=record.ttl_seconds,
            max_message_bytes=self.limits.max_message_bytes,
        )

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext) -> pb.HeartbeatResponse:
        session_id = await self._authenticate(context)
        await self.store.touch_session(session_id, self.clock())
        session = await self.store.get_session(session_id)
        assert session is not None
        return pb.HeartbeatResponse(revision=session.revision, expires_at=timestamp(session.expires_at))

    async def CleanupSession(
        self, request: pb.CleanupSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CleanupSessionResponse:
        session_id = await self._authenticate(context)
        deleted = await self.store.delete_session(session_id)
        log.info("session cleaned up", extra={"session": session_id, "variables": deleted})
        return pb.CleanupSessionResponse(variables_deleted=deleted)

    async def expire_sessions(self) -> list[str]:
        """Deletes sessions idle past their TTL; run periodically by the server."""
        now = self.clock()
        expired = []
        for session_id in await self.store.session_ids():
            session = await self.store.get_session(session_id)
            if session is not None and now > session.expires_at:
                await self.store.delete_session(session_id)
                expired.append(session_id)
                log.info("session expired", extra={"session": session_id})
        return expired

    # ------------------------------------------------------------ shared steps

    def _metadata(self, msg: pb.MapValue, var: str) -> dict[str, Any]:
        check_count(len(msg.entries), self.limits.max_metadata_entries, f"{var}: metadata", "max_metadata_entries")
        return decode_map(msg, native=False) if msg.entries else {}

    async def _read(self, session_id: str, ref: str) -> VariableRecord:
        record = await self.store.get_variable(session_id, ref)
        if record is None and ID_RE.fullmatch(ref):
            record = await self.store.get_variable_by_id(ref)
            if record is not None:
                require(record, session_id, "read")
        if record is None:
            raise VariableNotFoundError(f"variable {ref!r} not found in session {session_id!r}", variable=ref)
        return record

    async def _owner(self, session_id: str, ref: str, permission: str) -> str:
        """The session that holds `ref` for a write: this one, or another that granted access by ID."""
        if ID_RE.fullmatch(ref):
            record = await self.store.get_variable_by_id(ref)
            if record is not None and record.session_id != session_id:
                require(record, session_id, permission)
                return record.session_id
        return session_id

    def _new_record(
        self,
        txn: Transaction,
        session_id: str,
        name: str,
        type_name: str,
        constraints: dict[str, Any],
        value: pb.Value,
        writer: str,
        **extra: Any,
    ) -> VariableRecord:
        return VariableRecord(
            id=f"var_{secrets.token_hex(12)}",
            session_id=session_id,
            name=name,
            type=type_name,
            value=value,
            constraints=constraints,
            metadata=extra.get("metadata", {}),
            dependencies=extra.get("dependencies", ()),
            access_rules=extra.get("access_rules", ()),
            version=1,
            create_revision=txn.revision,
            mod_revision=txn.revision,
            created_at=txn.now,
            updated_at=txn.now,
            updated_by=writer,
            last_update_metadata=extra.get("update_metadata", {}),
        )

    async def _check_capacity(self, txn: Transaction) -> None:
        check_count(
            await txn.variable_count(),
            self.limits.max_variables_per_session,
            "variables in this session",
            "max_variables_per_session",
        )

    def _write(
        self,
        txn: Transaction,
        record: VariableRecord,
        value: pb.Value,
        writer: str,
        metadata: dict[str, Any],
        expected_version: int = 0,
    ) -> VariableRecord:
        if expected_version and record.version != expected_version:
            raise PreconditionFailedError(
                f"{record.name}: version is {record.version}, expected {expected_version}",
                variable=record.name,
                rule="expected_version",
            )
        stored = coerce_wire(get_type(record.type), value, record.constraints, record.name)
        updated = record.next_version(stored, txn.revision, txn.now, writer, metadata)
        txn.put(updated)
        return updated

    # ------------------------------------------------------------ registration

    def _prepare_spec(self, spec: pb.VariableSpec) -> dict[str, Any]:
        name = check_name(spec.name, limits=self.limits)
        t = get_type(spec.type)
        constraints = t.check_constraints(decode_map(spec.constraints, native=False), name)
        check_count(len(spec.dependencies), self.limits.max_dependencies, f"{name}: dependencies", "max_dependencies")
        return {
            "name": name,
            "type_name": t.name,
            "constraints": constraints,
            "value": coerce_wire(t, spec.initial_value, constraints, name),
            "metadata": self._metadata(spec.metadata, name),
            "dependencies": list(spec.dependencies),
            "access_rules": parse_rules(spec.access_rules, name, self.limits),
        }

    async def _register(self, session_id: str, specs: list[pb.VariableSpec]) -> tuple[dict[str, str], int]:
        check_count(len(specs), self.limits.max_batch_size, "variables in one batch", "max_batch_size")
        prepared = [self._prepare_spec(spec) for spec in specs]

        async def body(txn: Transaction) -> dict[str, str]:
            ids: dict[str, str] = {}
            for p in prepared:
                name = p["name"]
                if await txn.get(name) is not None:
                    raise VariableExistsError(
                        f"variable {name!r} already exists in session {session_id!r}", variable=name
                    )
                deps = []
                for dep in p.pop("dependencies"):
                    target = await txn.get(dep)
                    if target is None:
                        raise VariableNotFoundError(
                            f"{name}: dependency {dep!r} not found", variable=name, rule="dependencies"
                        )
                    deps.append(target.id)
                record = self._new_record(txn, session_id, writer=session_id, dependencies=tuple(deps), **p)
                txn.put(record)
                ids[name] = record.id
            await self._check_capacity(txn)
            return ids

        ids, revision = await self._transact(session_id, body)
        return ids, revision

    async def _transact(self, session_id: str, body: Callable[[Transaction], Awaitable[Any]]) -> tuple[Any, int]:
        revision = 0

        async def run(txn: Transaction) -> Any:
            nonlocal revision
            revision = txn.revision
            return await body(txn)

        return await self.store.transact(session_id, run), revision

    async def RegisterVariable(
        self, request: pb.RegisterVariableRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterVariableResponse:
        session_id = await self._authenticate(context)
        ids, revision = await self._register(session_id, [request.spec])
        return pb.RegisterVariableResponse(variable_id=ids[request.spec.name], revision=revision)

    async def RegisterVariables(
        self, request: pb.RegisterVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterVariablesResponse:
        session_id = await self._authenticate(context)
        ids, revision = await self._register(session_id, list(request.specs))
        return pb.RegisterVariablesResponse(variable_ids=ids, revision=revision)

    # ------------------------------------------------------------ reads

    async def GetVariable(
        self, request: pb.GetVariableRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVariableResponse:
        session_id = await self._authenticate(context)
        record = await self._read(session_id, request.ref)
        info = variable_message(record, await self.store.stats(record.id), False) if request.include_info else None
        response = pb.GetVariableResponse()
        fill_get_response(response, record, info)
        return response

    async def GetVariables(
        self, request: pb.GetVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVariablesResponse:
        session_id = await self._authenticate(context)
        refs = list(request.refs)
        check_count(len(refs), self.limits.max_batch_size, "variables in one batch", "max_batch_size")
        found = await self.store.get_variables(session_id, refs)
        response = pb.GetVariablesResponse()
        for ref in refs:
            record = found.get(ref)
            if record is None:
                try:
                    record = await self._read(session_id, ref)
                except VariableNotFoundError:
                    response.missing.append(ref)
                    continue
            info = variable_message(record, await self.store.stats(record.id), False) if request.include_info else None
            fill_get_response(response.found[ref], record, info)
        return response

    async def ListVariables(
        self, request: pb.ListVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListVariablesResponse:
        session_id = await self._authenticate(context)
        if len(request.pattern) > self.limits.max_pattern_length:
            raise LimitExceededError(
                f"pattern is {len(request.pattern)} characters; the limit is {self.limits.max_pattern_length}",
                rule="max_pattern_length",
            )
        records = await self.store.list_variables(session_id, request.pattern)
        return pb.ListVariablesResponse(
            variables=[variable_message(r, await self.store.stats(r.id), request.include_values) for r in records]
        )

    # ------------------------------------------------------------ writes

    async def SetVariable(
        self, request: pb.SetVariableRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetVariableResponse:
        session_id = await self._authenticate(context)
        ref = request.ref
        metadata = self._metadata(request.metadata, ref)
        owner = await self._owner(session_id, ref, "write")

        async def body(txn: Transaction) -> tuple[VariableRecord, bool]:
            record = await txn.get(ref)
            if record is not None:
                return self._write(txn, record, request.value, session_id, metadata, request.expected_version), False
            if not request.create_if_missing:
                raise VariableNotFoundError(f"variable {ref!r} not found in session {owner!r}", variable=ref)
            name = check_name(ref, limits=self.limits)
            type_name = request.type_hint or infer_type(decode(request.value, native=False), name)
            t = get_type(type_name)
            constraints = t.check_constraints({}, name)
            created = self._new_record(
                txn,
                owner,
                name,
                t.name,
                constraints,
                coerce_wire(t, request.value, constraints, name),
                writer=session_id,
                update_metadata=metadata,
            )
            txn.put(created)
            await self._check_capacity(txn)
            return created, True

        (record, created), revision = await self._transact(owner, body)
        return pb.SetVariableResponse(variable_id=record.id, version=record.version, revision=revision, created=created)

    async def UpdateVariables(
        self, request: pb.UpdateVariablesRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateVariablesResponse:
        session_id = await self._authenticate(context)
        updates = [(entry.key, entry.value) for entry in request.updates]
        check_count(len(updates), self.limits.max_batch_size, "updates in one batch", "max_batch_size")
        refs = [ref for ref, _ in updates]
        if len(set(refs)) != len(refs):
            dupes = sorted({r for r in refs if refs.count(r) > 1})
            raise ValidationError(f"variables {dupes} appear more than once in one batch", rule="duplicate_refs")
        metadata = self._metadata(request.metadata, "update_variables")
        response = pb.UpdateVariablesResponse()
        if request.atomic:
            await self._update_atomic(session_id, updates, metadata, response)
        else:
            await self._update_each(session_id, updates, metadata, response)
        session = await self.store.get_session(session_id)
        response.revision = session.revision if session else 0
        return response

    async def _update_atomic(
        self,
        session_id: str,
        updates: list[tuple[str, pb.Value]],
        metadata: dict[str, Any],
        response: pb.UpdateVariablesResponse,
    ) -> None:
        async def body(txn: Transaction) -> dict[str, int]:
            errors: dict[str, BridgeError] = {}
            staged: dict[str, int] = {}
            for ref, value in updates:
                try:
                    record = await txn.get(ref)
                    if record is None:
                        raise VariableNotFoundError(
                            f"variable {ref!r} not found in session {session_id!r} "
                            "(atomic batches cover the session's own variables)",
                            variable=ref,
                        )
                    staged[ref] = self._write(txn, record, value, session_id, metadata).version
                except BridgeError as exc:
                    errors[ref] = exc
            if errors:
                raise _AtomicBatchFailed(errors)
            return staged

        try:
            versions, _ = await self._transact(session_id, body)
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
        self,
        session_id: str,
        updates: list[tuple[str, pb.Value]],
        metadata: dict[str, Any],
        response: pb.UpdateVariablesResponse,
    ) -> None:
        for ref, value in updates:
            try:
                owner = await self._owner(session_id, ref, "write")

                async def body(txn: Transaction, ref: str = ref, value: pb.Value = value) -> int:
                    record = await txn.get(ref)
                    if record is None:
                        raise VariableNotFoundError(f"variable {ref!r} not found", variable=ref)
                    return self._write(txn, record, value, session_id, metadata).version

                version, _ = await self._transact(owner, body)
                response.results[ref].CopyFrom(pb.UpdateResult(ok=True, version=version))
            except BridgeError as exc:
                response.results[ref].CopyFrom(pb.UpdateResult(ok=False, error=error_detail(exc)))

    async def DeleteVariable(
        self, request: pb.DeleteVariableRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteVariableResponse:
        session_id = await self._authenticate(context)
        ref = request.ref
        owner = await self._owner(session_id, ref, "write")

        async def body(txn: Transaction) -> str:
            record = await txn.get(ref)
            if record is None:
                raise VariableNotFoundError(f"variable {ref!r} not found in session {owner!r}", variable=ref)
            dependents = await txn.dependents(record.id)
            if dependents:
                raise PreconditionFailedError(
                    f"cannot delete {record.name!r}: {dependents} depend on it", variable=record.name, rule="dependents"
                )
            txn.delete(record)
            return record.id

        variable_id, revision = await self._transact(owner, body)
        return pb.DeleteVariableResponse(variable_id=variable_id, revision=revision)


def _guarded(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turns BridgeErrors into status + ErrorDetail trailer; logs and hides anything unexpected."""

    async def rpc(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(request, context)
        except BridgeError as exc:
            log.info("rpc refused", extra={"rpc": name, "kind": exc.kind, "error": exc.message})
            await context.abort(
                exc.code, exc.message, trailing_metadata=((ERROR_TRAILER_KEY, error_detail(exc).SerializeToString()),)
            )
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("rpc failed", extra={"rpc": name, "ref": ref})
            await context.abort(grpc.StatusCode.INTERNAL, f"internal server error (ref {ref}); see the server log")

    rpc.__name__ = name
    return rpc


def guarded_handlers(servicer: BridgeServicer) -> dict[str, Callable[..., Awaitable[Any]]]:
    """Every RPC of the service, wrapped by `_guarded` (the one error-mapping point)."""
    service = pb.DESCRIPTOR.services_by_name["BridgeService"]
    return {m.name: _guarded(m.name, getattr(servicer, m.name)) for m in service.methods}
