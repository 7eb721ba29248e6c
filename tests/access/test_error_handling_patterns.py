"""The spec's "Error Handling Patterns" robust_variable_operations, as written: its KeyError, ValueError
(rollback) and PermissionError branches, each reached for real."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from spec_examples import usage_example

from bridge import BridgeServer, SessionContext


def spec_functions(session: SessionContext) -> dict[str, Any]:
    scope: dict[str, Any] = {"session": session, "grpc": grpc, "asyncio": asyncio}
    scope["logger"] = logging.getLogger("spec.error_handling")
    exec(compile(usage_example("Error Handling Patterns"), "<spec: Error Handling Patterns>", "exec"), scope)
    return scope


async def test_a_missing_variable_is_created(session: SessionContext) -> None:
    await spec_functions(session)["robust_variable_operations"]()
    assert await session.get_variable("critical_config") == {"default": True}


async def test_a_value_error_rolls_back_to_version_one(server: BridgeServer) -> None:
    # This client's channel takes 4 KiB replies at most: version 2 of the config is too big
    # for it (LimitExceededError, a ValueError), so the spec's code rolls back to version 1.
    async with grpc.aio.insecure_channel(
        server.address, options=[("grpc.max_receive_message_length", 4096)]
    ) as channel:
        session = await SessionContext("small_channel", channel).initialize()
        await session.register_variable("critical_config", "dict", {"mode": "safe"})
        await session.set_variable("critical_config", {"mode": "huge", "blob": "x" * 10_000})
        await spec_functions(session)["robust_variable_operations"]()
        assert await session.get_variable("critical_config") == {"mode": "safe"}
        [latest] = await session.get_variable_history("critical_config", limit=1)
        assert (latest["version"], latest["metadata"]["rollback_to_version"]) == (3, 1)
        await session.close()


async def test_no_access_falls_back_to_the_public_variable(session: SessionContext, caplog: Any) -> None:
    await session.register_variable("critical_config", "dict", {"secret": True})
    await session.register_variable("critical_config_public", "dict", {"public": True})
    # The owner withdraws its own read of the config (a rule naming its own session: see docs/access.md).
    await session.set_variable_permissions(
        "critical_config", [{"session_pattern": session.session_id, "permissions": []}]
    )
    with caplog.at_level(logging.WARNING, logger="spec.error_handling"):
        await spec_functions(session)["robust_variable_operations"]()
    assert "Insufficient permissions for critical_config" in caplog.text
