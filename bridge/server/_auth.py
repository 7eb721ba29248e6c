"""Session tokens and the server's API key: issued or configured once, checked in constant time, kept only as hashes.

A token is `<session_id>:<secret>`, so the server can tell "no such session" from
"wrong token" without an index, and the secret never rests in the store. Secrets are
compared as SHA-256 digests with `hmac.compare_digest`: equal lengths, so the time a
comparison takes says nothing about how much of a guess was right. (The server's cache
of verified tokens is a dict keyed by the whole token: a lookup compares strings only
when their randomized hashes collide, so it leaks nothing a guess could build on.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from ..errors import AuthenticationError

AUTH_HEADER = "authorization"
_PREFIX = "Bearer "

#: Longest token or API key looked at: a real token is a session ID plus 43 characters, and
#: a bound keeps a huge forged one from costing the server a hash of megabytes.
MAX_SECRET_CHARS = 4096


def new_token(session_id: str) -> tuple[str, str]:
    """A fresh token and the hash the store keeps."""
    secret = secrets.token_urlsafe(32)
    return f"{session_id}:{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    session_id, sep, secret = token.rpartition(":")
    if not sep or not session_id or not secret or len(token) > MAX_SECRET_CHARS:
        raise AuthenticationError("malformed session token", rule="token_format")
    return session_id, secret


def token_matches(secret: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), token_hash)


def token_opens(token: str, session_id: str, token_hash: str) -> bool:
    """Whether `token` is the token of `session_id` whose hash is `token_hash` (False when malformed)."""
    try:
        token_session, secret = split_token(token)
    except AuthenticationError:
        return False
    return token_session == session_id and token_matches(secret, token_hash)


def check_api_key(given: str, key_hash: str | None, session_id: str) -> None:
    """Refuses to create `session_id` unless `given` is the server's API key (none configured: no check)."""
    if key_hash is None:
        return
    if not given:
        raise AuthenticationError(
            f"cannot create session {session_id!r}: this server requires an API key to create sessions; "
            "pass SessionContext(..., api_key=...) (the key the server was started with: "
            "dspex serve --api-key-file or DSPEX_API_KEY)",
            rule="api_key_missing",
            session=session_id,
        )
    if len(given) > MAX_SECRET_CHARS or not token_matches(given, key_hash):
        raise AuthenticationError(
            f"cannot create session {session_id!r}: invalid API key", rule="api_key_invalid", session=session_id
        )


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token from `authorization: Bearer <token>` call metadata."""
    for key, value in metadata or ():
        if key == AUTH_HEADER:
            text = value.decode() if isinstance(value, bytes) else value
            if text.startswith(_PREFIX):
                return text[len(_PREFIX) :]
            raise AuthenticationError("authorization metadata must be 'Bearer <token>'", rule="token_format")
    raise AuthenticationError(
        "missing session token: call initialize() first (request field session_token, "
        "or metadata 'authorization: Bearer <token>')",
        rule="token_missing",
    )
