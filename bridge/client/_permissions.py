"""set_variable_permissions and check_variable_access (the spec's "Access Control")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._proto import bridge_pb2 as pb
from ._cache import VariableCache
from ._convert import access_rules


class PermissionMethods:
    """Mixed into SessionContext; relies on its `_call`, `_stub` and `_cache`."""

    _stub: Any
    _call: Callable[..., Any]
    _cache: VariableCache

    async def set_variable_permissions(self, variable: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """Replaces the variable's access rules; only the session that owns it may (PermissionError otherwise).

        Each rule: {'session_pattern': glob or 'any', 'permissions': [read, write, observe, optimize],
        'conditions': {'expires_at': ISO 8601, 'session_metadata.<key>': value}}. See docs/access.md.
        """
        request = pb.SetVariablePermissionsRequest(ref=variable, rules=access_rules(rules))
        try:
            await self._call(self._stub.SetVariablePermissions, request, "set_variable_permissions", variable)
        finally:
            self._cache.written(variable)

    async def check_variable_access(self, variable: str, permission: str) -> bool:
        """Whether this session holds `permission` on the variable (the owner holds every one)."""
        request = pb.CheckVariableAccessRequest(ref=variable, permission=permission)
        response = await self._call(self._stub.CheckVariableAccess, request, "check_variable_access", variable)
        return response.allowed
