"""The Watch RPC of BridgeService: which variables a request may watch, and its stream."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..._proto import bridge_pb2 as pb
from ...errors import SessionNotFoundError, ValidationError
from ...limits import check_count, check_name, check_ref, is_id
from .._access import allowed, needs_metadata
from .._servicer import VariableServicer
from .._sessions import Ctx
from ._hub import WatchHubs
from ._stream import WatchStream, WatchTarget


class WatchServicer(VariableServicer):
    """Watch (see bridge.proto), and the server-wide registry of open watches (`watches`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Every open watch, by session: `watches.count` is what the limits and tests read.
        self.watches = WatchHubs(self.store, self.limits)

    async def Watch(self, request: pb.WatchRequest, context: Ctx) -> None:
        try:
            caller = await self._authenticate(request, context)
        except SessionNotFoundError as exc:  # the store's ID tells a client "ended" from "the host lost it"
            raise SessionNotFoundError(exc.message, **{**exc.details, "store_id": self.store.store_id}) from None
        target = await self._watch_target(caller, request)
        await WatchStream(self.store, self.watches, self.limits, caller, target, request, context).run()

    async def _watch_target(self, caller: str, request: pb.WatchRequest) -> WatchTarget:
        refs = list(request.refs)
        if not refs:
            raise ValidationError("a watch needs at least one variable", rule="refs")
        check_count(len(refs), self.limits.max_watch_refs, "variables in one watch", "max_watch_refs")
        for ref in refs:
            check_ref(ref, self.limits)
        if request.session_id and request.session_id != caller:
            return await self._other_session_target(caller, request.session_id, refs)
        names: list[str] = []
        owners: set[str] = set()
        for ref in refs:
            if is_id(ref):
                record = await self._find(caller, ref, "observe")
                if record is None:
                    raise self._not_found(ref, caller)
                names.append(record.name)
                owners.add(record.session_id)
            else:
                names.append(ref)
                owners.add(caller)
        if len(owners) > 1:
            raise ValidationError(
                f"the variables of one watch must belong to one session; {refs[:10]} span {sorted(owners)[:10]}",
                rule="refs",
            )
        _refuse_duplicates(names)
        watched = owners.pop()
        return WatchTarget(watched, tuple(names), None if watched == caller else caller)

    async def _other_session_target(self, caller: str, session_id: str, refs: list[str]) -> WatchTarget:
        """Names in another session (a resumed watch of its variables): each change is shown only if observable."""
        watched = check_name(session_id, "session id", self.limits)
        if any(is_id(ref) for ref in refs):
            raise ValidationError("with session_id, refs are the watched session's variable names", rule="refs")
        _refuse_duplicates(refs)
        _, records = await self.store.snapshot(watched, refs) if await self.store.get_session(watched) else (0, {})
        needing = [record for record in records.values() if needs_metadata(record)]
        metadata = await self._metadata_for(needing[0], caller) if needing else None
        if not any(allowed(record, caller, "observe", metadata) for record in records.values()):
            # An unknown session and one with nothing this caller may observe answer alike: no probing.
            raise SessionNotFoundError(f"session {watched!r} not found", session=watched)
        return WatchTarget(watched, tuple(refs), caller)


def _refuse_duplicates(names: list[str]) -> None:
    dupes = sorted(name for name, n in Counter(names).items() if n > 1)
    if dupes:
        raise ValidationError(f"variables {dupes[:10]} appear more than once in one watch", rule="duplicate_refs")
