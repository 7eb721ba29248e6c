"""The session half of BridgeService: opening, resuming, keeping alive, ending, and authenticating calls.

A token is checked on every call; a verified token is remembered with the hash it matched,
so the hot path neither parses nor hashes it, and a session recreated under the same name
(a new hash) is never opened by an old token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from .. import __version__
from .._proto import bridge_pb2 as pb
from ..errors import AuthenticationError, SessionNotFoundError
from ..limits import Limits, check_count, check_name
from ..store import SessionRecord, Store
from . import _auth
from ._convert import timestamp

log = logging.getLogger("dspex.server")

PROTOCOL_VERSION = "dspex_bridge.v1"

Ctx = grpc.aio.ServicerContext
_VERIFIED_TOKENS = 4096


class SessionServicer:
    """Session RPCs, and `_authenticate` for every other one."""

    def __init__(
        self,
        store: Store,
        *,
        session_ttl: float = 3600.0,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        api_key: str | None = None,
    ) -> None:
        if api_key is not None and not 0 < len(api_key) <= _auth.MAX_SECRET_CHARS:
            raise ValueError(f"api_key must be 1 to {_auth.MAX_SECRET_CHARS} characters (None: no key)")
        self.store = store
        #: The hash of the key that creating a session needs; None: anyone who can connect may create one.
        self._api_key_hash = _auth.hash_secret(api_key) if api_key is not None else None
        self.session_ttl = session_ttl
        self.limits = limits or store.limits
        self.clock = clock
        #: token -> (its session, the token hash it was verified against): the hot path skips parsing and hashing.
        self._verified: dict[str, tuple[str, str]] = {}

    async def _authenticate(self, request: Any, context: Ctx) -> str:
        """The session a call acts as, from its token (request field, else metadata)."""
        token = request.session_token or _auth.bearer_token(context.invocation_metadata())
        verified = self._verified.get(token)  # (session ID, the hash the token matched)
        session_id, secret = (verified[0], "") if verified is not None else _auth.split_token(token)
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(
                f"session {session_id[:128]!r} not found (expired or cleaned up); call initialize() again",
                session=session_id[:128],
            )
        if verified is None or verified[1] != session.token_hash:
            if not _auth.token_matches(secret or _auth.split_token(token)[1], session.token_hash):
                raise AuthenticationError(f"invalid token for session {session_id!r}", session=session_id)
            if len(self._verified) >= _VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = (session_id, session.token_hash)
        now = self.clock()
        if now > session.expires_at:
            await self.store.delete_session(session_id)
            raise SessionNotFoundError(
                f"session {session_id!r} expired after {session.ttl_seconds:g}s idle", session=session_id
            )
        if now - session.last_seen > 1.0:
            await self.store.touch_session(session_id, now)
        return session_id

    async def Ping(self, request: pb.PingRequest, context: Ctx) -> pb.PingResponse:
        return pb.PingResponse(
            server_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            max_message_bytes=self.limits.max_message_bytes,
            import_array_batches=True,
        )

    async def InitializeSession(
        self, request: pb.InitializeSessionRequest, context: Ctx
    ) -> pb.InitializeSessionResponse:
        session_id = check_name(request.session_id, "session id", self.limits)
        now = self.clock()
        existing = await self.store.get_session(session_id)
        live = existing if existing is not None and now <= existing.expires_at else None
        if live and request.resume_token and _auth.token_opens(request.resume_token, session_id, live.token_hash):
            await self.store.touch_session(session_id, now)
            log.info("session resumed", extra={"session": session_id})
            revision = await self.store.revision(session_id)
            return self._init_response(live, request.resume_token, True, revision)
        # Anything but a resume creates, and creating needs the API key: checked before the answer
        # says whether the session exists, so a caller without the key learns nothing of who is here.
        try:
            _auth.check_api_key(request.api_key, self._api_key_hash, session_id)
        except AuthenticationError as exc:
            log.warning("session refused", extra={"session": session_id, "reason": exc.details["rule"]})
            raise
        if live:
            if not request.resume_token:
                raise AuthenticationError(
                    f"session {session_id!r} already exists; pass its token to resume it", session=session_id
                )
            raise AuthenticationError(f"invalid token for session {session_id!r}", session=session_id)
        if existing is not None:
            await self.store.delete_session(session_id)
        check_count(len(await self.store.session_ids()) + 1, self.limits.max_sessions, "sessions", "max_sessions")
        check_count(len(request.metadata), self.limits.max_metadata_entries, "session metadata", "max_metadata_entries")
        token, token_hash = _auth.new_token(session_id)
        record = SessionRecord(session_id, token_hash, now, now, self.session_ttl, dict(request.metadata))
        if not await self.store.create_session(record):
            raise AuthenticationError(f"session {session_id!r} was created concurrently", session=session_id)
        log.info("session created", extra={"session": session_id})
        return self._init_response(record, token, False, 0)

    def _init_response(
        self, record: SessionRecord, token: str, resumed: bool, revision: int
    ) -> pb.InitializeSessionResponse:
        return pb.InitializeSessionResponse(
            session_id=record.session_id,
            token=token,
            resumed=resumed,
            revision=revision,
            ttl_seconds=record.ttl_seconds,
            max_message_bytes=self.limits.max_message_bytes,
        )

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Ctx) -> pb.HeartbeatResponse:
        session_id = await self._authenticate(request, context)
        await self.store.touch_session(session_id, self.clock())
        session = await self._session(session_id)
        revision = await self.store.revision(session_id)
        return pb.HeartbeatResponse(revision=revision, expires_at=timestamp(session.expires_at))

    async def CleanupSession(self, request: pb.CleanupSessionRequest, context: Ctx) -> pb.CleanupSessionResponse:
        session_id = await self._authenticate(request, context)
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

    async def _session(self, session_id: str) -> SessionRecord:
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(f"session {session_id!r} ended during the call", session=session_id)
        return session
