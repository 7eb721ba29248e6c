"""The history RPCs: a variable's kept versions, newest first, and rollback as a new version.

A rollback never rewrites history: it writes the chosen version's value again (validated
against the variable's type and constraints, like any write) with metadata naming the
version it came from, so the rollback itself is in the history and can be rolled back.
"""

from __future__ import annotations

from .._proto import bridge_pb2 as pb
from ..codec import map_into
from ..errors import ValidationError
from ..store import VariableRecord
from ._convert import timestamp
from ._servicer import VariableServicer
from ._sessions import Ctx

DEFAULT_LIMIT = 100
#: Most entries one page may ask for (a page never holds more than the retention keeps).
MAX_PAGE = 100_000
#: Longest rollback reason kept (it is recorded with the new version).
MAX_REASON_CHARS = 1_000


class HistoryServicer(VariableServicer):
    """GetVariableHistory and RollbackVariable (see bridge.proto, "history")."""

    async def _kept(self, record: VariableRecord) -> list[VariableRecord]:
        return await self.store.history(record.id, self.limits.max_history_per_variable, 0)

    async def GetVariableHistory(
        self, request: pb.GetVariableHistoryRequest, context: Ctx
    ) -> pb.GetVariableHistoryResponse:
        session_id = await self._authenticate(request, context)
        limit = request.limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_PAGE or request.offset < 0:
            raise ValidationError(
                f"limit must be in 1..{MAX_PAGE} and offset >= 0, got limit {request.limit}, offset {request.offset}",
                rule="pagination",
            )
        record = await self._read(session_id, request.ref)
        kept = await self._kept(record)
        response = pb.GetVariableHistoryResponse(
            current_version=record.version,
            oldest_version=kept[-1].version if kept else record.version,
            kept=len(kept),
        )
        for version in kept[request.offset : request.offset + limit]:
            entry = response.entries.add(
                version=version.version,
                updated_at=timestamp(version.updated_at),
                updated_by=version.updated_by,
                mod_revision=version.mod_revision,
            )
            entry.value.CopyFrom(version.value.to_pb())
            if request.include_metadata:
                map_into(entry.metadata, version.last_update_metadata, self.limits)
        return response

    async def RollbackVariable(self, request: pb.RollbackVariableRequest, context: Ctx) -> pb.SetVariableResponse:
        session_id = await self._authenticate(request, context)
        if len(request.reason) > MAX_REASON_CHARS:
            raise ValidationError(f"a rollback reason is at most {MAX_REASON_CHARS} characters", rule="reason")
        record = await self._find(session_id, request.ref, "write")
        if record is None:
            raise self._not_found(request.ref, session_id)
        kept = await self._kept(record)
        chosen = next((v for v in kept if v.version == request.version), None)
        if chosen is None:
            oldest = kept[-1].version if kept else record.version
            raise ValidationError(
                f"{record.name}: version {request.version} is not kept (versions {oldest}..{record.version} are)",
                variable=record.name,
                rule="version",
                oldest_version=str(oldest),
                current_version=str(record.version),
            )
        metadata: dict[str, object] = {"rollback_from_version": record.version, "rollback_to_version": chosen.version}
        if request.reason:
            metadata["rollback_reason"] = request.reason
        make = self._writer(chosen.value.to_pb(), session_id, metadata)
        updated = await self.store.update(record.session_id, record.id, make)
        if updated is None:
            raise self._not_found(request.ref, session_id)
        written, revision = updated
        return pb.SetVariableResponse(variable_id=written.id, version=written.version, revision=revision)
