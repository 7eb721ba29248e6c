"""The measured groups. Each group interleaves bridge calls with the baseline they are judged against."""

from __future__ import annotations

import itertools

import grpc
import numpy as np
import redis.asyncio

from bridge.client import SessionContext

from ._measure import Plan, interleave
from ._report import Row, Target

SMALL_PAYLOAD = bytes(range(32))  # about the size of a get_variable request
BIG_PAYLOAD_BYTES = 4 * 1024 * 1024
TENSOR = np.random.default_rng(0).random(BIG_PAYLOAD_BYTES // 4, dtype=np.float32)  # 4 MiB of float32
BATCH_NAMES = [f"v{i:03d}" for i in range(100)]

ECHO_SMALL = "raw echo 32 B"
ECHO_SMALL_AUTH = "raw echo 32 B + auth metadata + deadline"
ECHO_BIG = "raw echo 4 MiB"
SEQUENTIAL = "100x get_variable (sequential)"

Echo = grpc.aio.UnaryUnaryMultiCallable


async def register_variables(session: SessionContext) -> None:
    """The variables every group reads and writes: a float, a 4 MiB tensor and 100 floats for batching."""
    await session.register_variable("f", "float", 0.5)
    await session.register_variable("t", "tensor", TENSOR)
    await session.register_variables([{"name": n, "type": "float", "initial_value": 1.0} for n in BATCH_NAMES])


async def small_calls(session: SessionContext, echo: Echo, plan: Plan) -> list[Row]:
    """get/set of one float vs a raw echo of a comparable payload: the bridge's per-call overhead.

    The echo that also carries the session's bearer token and a deadline, as every bridge
    call does, shows how much of that overhead is gRPC's cost for those two alone.
    """
    values = itertools.cycle((0.25, 0.75))  # every set changes the value
    auth = (("authorization", f"Bearer {session.token}"),)
    stats = await interleave(
        {
            ECHO_SMALL: lambda: echo(SMALL_PAYLOAD),
            ECHO_SMALL_AUTH: lambda: echo(SMALL_PAYLOAD, metadata=auth, timeout=session.timeout),
            "get_variable": lambda: session.get_variable("f", bypass_cache=True),
            "set_variable": lambda: session.set_variable("f", next(values)),
        },
        plan,
    )
    base, target = stats[ECHO_SMALL], Target("<=", 1.15)
    return [
        Row.of(ECHO_SMALL, base, note="baseline"),
        Row.versus(ECHO_SMALL_AUTH, stats[ECHO_SMALL_AUTH], ECHO_SMALL, base),
        Row.versus("get_variable (float, uncached)", stats["get_variable"], ECHO_SMALL, base, target),
        Row.versus("set_variable (float)", stats["set_variable"], ECHO_SMALL, base, target),
    ]


async def tensor_calls(session: SessionContext, echo: Echo, plan: Plan) -> list[Row]:
    """A 4 MiB tensor up (set) and down (get) vs one raw echo moving the same bytes each way."""
    big = TENSOR.tobytes()

    async def set_then_get() -> None:
        await session.set_variable("t", TENSOR)
        await session.get_variable("t", bypass_cache=True)

    stats = await interleave({ECHO_BIG: lambda: echo(big), "tensor": set_then_get}, plan)
    base = stats[ECHO_BIG]
    return [
        Row.of(ECHO_BIG, base, note="baseline"),
        Row.versus("set+get tensor 4 MiB (float32)", stats["tensor"], ECHO_BIG, base, Target("<=", 1.5)),
    ]


async def batch_calls(session: SessionContext, plan: Plan) -> list[Row]:
    """One get_variables of 100 names vs 100 get_variable calls: what batching saves."""

    async def sequential() -> None:
        for name in BATCH_NAMES:
            await session.get_variable(name, bypass_cache=True)

    stats = await interleave({SEQUENTIAL: sequential, "batch": lambda: session.get_variables(BATCH_NAMES)}, plan)
    base = stats[SEQUENTIAL]
    return [
        Row.of(SEQUENTIAL, base, note="baseline"),
        Row.versus("get_variables (100 names)", stats["batch"], SEQUENTIAL, base, Target(">=", 40)),
    ]


async def redis_calls(port: int, plan: Plan) -> list[Row]:
    """redis-py GET/SET of a 32-byte value on a local redis-server: context, not a target."""
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    try:
        await client.set("bench", SMALL_PAYLOAD)
        stats = await interleave(
            {"GET": lambda: client.get("bench"), "SET": lambda: client.set("bench", SMALL_PAYLOAD)}, plan
        )
    finally:
        await client.aclose()
    return [
        Row.of("redis-py GET (32 B)", stats["GET"], note="context"),
        Row.of("redis-py SET (32 B)", stats["SET"], note="context"),
    ]
