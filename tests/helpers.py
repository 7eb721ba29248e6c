"""Small helpers shared by tests that talk to the wire directly."""

from __future__ import annotations

from bridge import SessionContext


def bearer(session: SessionContext) -> tuple[tuple[str, str], ...]:
    """The session's token as `authorization` metadata: the header form of authentication."""
    return (("authorization", f"Bearer {session.token}"),)
