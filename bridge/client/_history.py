"""get_variable_history and rollback_variable (the spec's "Variable History and Versioning")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._proto import bridge_pb2 as pb
from ..codec import decode, decode_map
from ._cache import VariableCache
from ._convert import to_datetime


class VariableHistory(list[dict[str, Any]]):
    """The spec's list of history entries (newest first), plus what the server's retention kept.

    `current_version` is the variable's version now, `oldest_version` the oldest still kept
    and `kept` how many are; versions older than `oldest_version` were dropped by retention.
    """

    current_version: int
    oldest_version: int
    kept: int


class HistoryMethods:
    """Mixed into SessionContext; relies on its `_call`, `_stub` and `_cache`."""

    _stub: Any
    _call: Callable[..., Any]
    _cache: VariableCache

    async def get_variable_history(
        self, variable: str, limit: int = 100, offset: int = 0, include_metadata: bool = True
    ) -> VariableHistory:
        """The variable's kept versions, newest first: {'version', 'value', 'updated_at', 'updated_by', 'metadata'}."""
        request = pb.GetVariableHistoryRequest(
            ref=variable, limit=limit, offset=offset, include_metadata=include_metadata
        )
        response = await self._call(self._stub.GetVariableHistory, request, "get_variable_history", variable)
        history = VariableHistory()
        for entry in response.entries:
            item: dict[str, Any] = {
                "version": entry.version,
                "value": decode(entry.value),
                "updated_at": to_datetime(entry.updated_at),
                "updated_by": entry.updated_by,
                "revision": entry.mod_revision,
            }
            if include_metadata:
                item["metadata"] = decode_map(entry.metadata)
            history.append(item)
        history.current_version = response.current_version
        history.oldest_version = response.oldest_version
        history.kept = response.kept
        return history

    async def rollback_variable(self, variable: str, version: int, reason: str | None = None) -> None:
        """Writes a kept version's value again as a new version (metadata names the versions and the reason).

        ValueError when the version is not kept (the message names the oldest that is);
        PermissionError without "write" on another session's variable.
        """
        request = pb.RollbackVariableRequest(ref=variable, version=version, reason=reason or "")
        try:
            await self._call(self._stub.RollbackVariable, request, "rollback_variable", variable)
        finally:
            self._cache.written(variable)
