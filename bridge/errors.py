"""The one exception hierarchy, and the one table that maps it to gRPC status codes.

The server turns a raised `BridgeError` into a status code plus an `ErrorDetail` trailer;
the client turns them back into the same exception class. Both ends use `ERROR_TABLE`,
so an error kind can never mean different things on each side. Codes that are not in
the table (UNAVAILABLE, DEADLINE_EXCEEDED, ...) are transport failures and reach the
caller as `grpc.RpcError`.
"""

from __future__ import annotations

from typing import ClassVar

import grpc

ERROR_TRAILER_KEY = "dspex-error-bin"


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose; carries structured details."""

    kind: ClassVar[str] = "bridge_error"
    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, str] = {k: str(v) for k, v in details.items() if v is not None}

    def __str__(self) -> str:
        # KeyError would otherwise print the repr of the message.
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.message, self.details))


def _rebuild(cls: type[BridgeError], message: str, details: dict[str, str]) -> BridgeError:
    return cls(message, **details)


class VariableNotFoundError(BridgeError, KeyError):
    kind = "variable_not_found"
    code = grpc.StatusCode.NOT_FOUND


class SessionNotFoundError(BridgeError, KeyError):
    kind = "session_not_found"
    code = grpc.StatusCode.NOT_FOUND


class ValidationError(BridgeError, ValueError):
    """A value, name or request that breaks a rule (the rule is named in the message)."""

    kind = "validation_error"
    code = grpc.StatusCode.INVALID_ARGUMENT


class ConstraintViolationError(ValidationError):
    kind = "constraint_violation"


class UnknownTypeError(ValidationError):
    kind = "unknown_type"


class VariableExistsError(BridgeError, ValueError):
    kind = "variable_exists"
    code = grpc.StatusCode.ALREADY_EXISTS


class PreconditionFailedError(BridgeError, ValueError):
    """The request is well formed but the variable's state forbids it now."""

    kind = "precondition_failed"
    code = grpc.StatusCode.FAILED_PRECONDITION


class LimitExceededError(BridgeError, ValueError):
    """A size bound (message, list, batch, name, history...) was exceeded."""

    kind = "limit_exceeded"
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class VariableTypeError(BridgeError, TypeError):
    kind = "type_mismatch"
    code = grpc.StatusCode.INVALID_ARGUMENT


class AccessDeniedError(BridgeError, PermissionError):
    kind = "access_denied"
    code = grpc.StatusCode.PERMISSION_DENIED


class AuthenticationError(BridgeError, PermissionError):
    kind = "authentication_failed"
    code = grpc.StatusCode.UNAUTHENTICATED


class RevisionCompactedError(BridgeError, LookupError):
    """A watch asked for writes the session's event log no longer holds (compacted, or another history).

    Details: `oldest_revision`, the oldest revision the log still holds, and `revision`, the one asked for.
    A watching client answers it with a fresh snapshot rather than skipping what it missed.
    """

    kind = "revision_compacted"
    code = grpc.StatusCode.OUT_OF_RANGE


class WatchOverflowError(BridgeError):
    """A watcher fell further behind than its buffer holds; its stream ended so that writers never wait.

    Details: `resume_revision`, the first revision it has not been sent. Resumable: the client
    reconnects from there and reads what it missed from the event log.
    """

    kind = "watch_overflow"
    code = grpc.StatusCode.ABORTED


class StoreUnavailableError(BridgeError):
    """The server cannot reach its store (a Redis server down or unreachable). Nothing was changed
    unless the store says otherwise; the call may be retried once the store is back.

    Details: `store`, the kind of store.
    """

    kind = "store_unavailable"
    code = grpc.StatusCode.UNAVAILABLE


_ALL: tuple[type[BridgeError], ...] = (
    VariableNotFoundError,
    SessionNotFoundError,
    ValidationError,
    ConstraintViolationError,
    UnknownTypeError,
    VariableExistsError,
    PreconditionFailedError,
    LimitExceededError,
    VariableTypeError,
    AccessDeniedError,
    AuthenticationError,
    RevisionCompactedError,
    WatchOverflowError,
    StoreUnavailableError,
)

#: kind -> (exception class, status code). The single source of truth for both ends.
ERROR_TABLE: dict[str, tuple[type[BridgeError], grpc.StatusCode]] = {cls.kind: (cls, cls.code) for cls in _ALL}

#: status code -> the exception raised when a failure carries no ErrorDetail
#: (e.g. grpc's own "message larger than max" RESOURCE_EXHAUSTED).
CODE_FALLBACK: dict[grpc.StatusCode, type[BridgeError]] = {
    grpc.StatusCode.NOT_FOUND: VariableNotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: ValidationError,
    grpc.StatusCode.ALREADY_EXISTS: VariableExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: PreconditionFailedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LimitExceededError,
    grpc.StatusCode.PERMISSION_DENIED: AccessDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
}


def error_for(kind: str, code: grpc.StatusCode, message: str, details: dict[str, str]) -> BridgeError | None:
    """The exception a client raises for a failed call, or None for a transport failure."""
    entry = ERROR_TABLE.get(kind)
    cls = entry[0] if entry else CODE_FALLBACK.get(code)
    return cls(message, **details) if cls else None
