"""One place where failed calls become the shared exception hierarchy (or stay grpc.RpcError)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from .._proto import bridge_pb2 as pb
from ..errors import ERROR_TRAILER_KEY, LimitExceededError, error_for
from ._credentials import explain_connect_failure

R = TypeVar("R")


def translate(exc: grpc.aio.AioRpcError, request: Any, what: str) -> BaseException:
    """The exception to raise for a failed call: a BridgeError, or the RpcError itself."""
    kind, message, details = "", exc.details() or "", {}
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_TRAILER_KEY:
            detail = pb.ErrorDetail.FromString(value)
            kind, message, details = detail.kind, detail.message, dict(detail.details)
    error = error_for(kind, exc.code(), message, details)
    if isinstance(error, LimitExceededError) and not kind:
        # grpc's own size check: say which call and how big it was.
        error = LimitExceededError(
            f"{what}: the message ({_size(request)} bytes sent) exceeds a max message size: {message}",
            rule="max_message_bytes",
        )
    return error if error is not None else exc


def _size(request: Any) -> int:
    return len(request) if isinstance(request, bytes) else request.ByteSize()


def raise_translated(exc: grpc.aio.AioRpcError, request: Any, what: str) -> NoReturn:
    """Raises the translated error; a transport failure stays an RpcError, saying so when TLS setup likely failed.

    Only unary calls add the TLS hint: a client's first call is one (initialize), and a stream
    that later fails to reconnect keeps its own retry policy on the untouched error.
    """
    error = translate(exc, request, what)
    if error is exc:
        raise explain_connect_failure(exc, what) from None
    raise error from None


async def call(
    rpc: Callable[..., Awaitable[R]],
    request: Any,
    metadata: tuple[tuple[str, str], ...],
    timeout: float | None,
    what: str,
) -> R:
    """A call with metadata (InitializeSession, or a tool authenticating by header)."""
    try:
        return await rpc(request, metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise_translated(exc, request, what)
