"""Small helpers shared by tests that talk to the wire directly."""

from __future__ import annotations

from bridge import SessionContext


def bearer(session: SessionContext) -> tuple[tuple[str, str], ...]:
    """The session's token as `authorization` metadata: the header form of authentication."""
    return (("authorization", f"Bearer {session.token}"),)


async def other_client(session: SessionContext) -> SessionContext:
    """Another client of the same session (it joins with the session's token), on the same channel."""
    return await SessionContext(session.session_id, session.channel, token=session.token).initialize()
