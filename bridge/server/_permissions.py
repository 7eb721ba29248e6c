"""The access-control RPCs: an owner replaces its variable's rules; any session asks what it may do.

Every other RPC enforces the rules where it finds the variable (see `_access` and
`VariableServicer._find`); these two only manage and explain them.
"""

from __future__ import annotations

from .._proto import bridge_pb2 as pb
from ..errors import AccessDeniedError, ValidationError
from ..limits import check_ref, is_id
from ..store import Transaction, VariableRecord
from ._access import PERMISSIONS, allowed, check_self_rules, grants_anything, matching_rule, parse_rules
from ._servicer import VariableServicer
from ._sessions import Ctx


class PermissionServicer(VariableServicer):
    """SetVariablePermissions and CheckVariableAccess (see bridge.proto, "access control")."""

    async def SetVariablePermissions(
        self, request: pb.SetVariablePermissionsRequest, context: Ctx
    ) -> pb.SetVariablePermissionsResponse:
        session_id = await self._authenticate(request, context)
        check_ref(request.ref, self.limits)
        # The owner's own rules never stop it changing them: its variable is looked up unchecked.
        found = await self.store.get_variable(session_id, request.ref)
        if found is None and is_id(request.ref):
            by_id = await self.store.get_variable_by_id(request.ref)
            found = by_id if by_id is not None and by_id.session_id == session_id else None
        if found is None:
            found = await self._find(session_id, request.ref, "read")
        if found is None:
            raise self._not_found(request.ref, session_id)
        if found.session_id != session_id:
            raise AccessDeniedError(
                f"only session {found.session_id!r} may change the permissions of {found.name!r} ({found.id})",
                variable=found.name,
                rule="permissions",
            )
        rules = parse_rules(request.rules, found.name, self.limits)
        check_self_rules(rules, session_id, found.name)

        async def body(txn: Transaction) -> VariableRecord:
            record = await txn.get(found.id)
            if record is None:
                raise self._not_found(request.ref, session_id)
            return self._restructured(txn, record, session_id, access_rules=rules)

        record, revision = await self.store.transact(session_id, body)
        return pb.SetVariablePermissionsResponse(variable_id=record.id, version=record.version, revision=revision)

    async def CheckVariableAccess(
        self, request: pb.CheckVariableAccessRequest, context: Ctx
    ) -> pb.CheckVariableAccessResponse:
        session_id = await self._authenticate(request, context)
        if request.permission not in PERMISSIONS:
            raise ValidationError(
                f"permission must be one of {list(PERMISSIONS)}, got {request.permission[:40]!r}", rule="permission"
            )
        record = await self.store.get_variable(session_id, request.ref) or (
            await self.store.get_variable_by_id(request.ref) if request.ref.startswith("var_") else None
        )
        metadata = await self._metadata_for(record, session_id) if record is not None else None
        if record is None or not grants_anything(record, session_id, metadata):
            raise self._not_found(request.ref, session_id)
        if record.session_id == session_id:
            if allowed(record, session_id, request.permission):
                return pb.CheckVariableAccessResponse(allowed=True, reason="owner")
            return pb.CheckVariableAccessResponse(
                allowed=False, reason=f"the owner's own rules for {record.name!r} do not grant {request.permission}"
            )
        rule = matching_rule(record, session_id, request.permission, metadata)
        if rule is None:
            return pb.CheckVariableAccessResponse(
                allowed=False, reason=f"no rule of {record.name!r} grants {request.permission} to this session"
            )
        return pb.CheckVariableAccessResponse(allowed=True, reason=f"rule {rule.session_pattern!r}")
