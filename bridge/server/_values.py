"""Wire values arriving at the server: decoded once within its limits, validated, stored detached."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._proto import bridge_pb2 as pb
from ..codec import decode, decode_map, encode
from ..errors import BridgeError, VariableTypeError
from ..limits import Limits, check_count
from ..types import VariableType

_NULL = pb.Value(null_value=pb.NULL_VALUE)


def named(exc: BridgeError, var: str) -> BridgeError:
    """The same error, its message and details naming the variable it concerns."""
    if exc.details.get("variable"):
        return exc
    return type(exc)(f"{var}: {exc.message}", **{**exc.details, "variable": var})


def decode_value(value: pb.Value, var: str, limits: Limits) -> Any:
    try:
        return decode(value, native=False, limits=limits)
    except BridgeError as exc:
        raise named(exc, var) from None


def coerce_wire(t: VariableType, value: pb.Value, constraints: dict[str, Any], var: str, limits: Limits) -> pb.Value:
    """Validates a wire value against a type; returns the wire form to store.

    When coercion leaves the value as it was, the client's bytes are stored as they came
    (copied out of the request, so a small stored value never keeps a large request alive).
    """
    decoded = decode_value(value, var, limits)
    coerced = t.coerce(decoded, constraints, var)
    if coerced is None:
        return _NULL
    if coerced is decoded:
        stored = pb.Value()
        stored.CopyFrom(value)
        return stored
    stored = encode(coerced, limits)
    if stored.WhichOneof("kind") == "array_value" and value.WhichOneof("kind") == "array_value":
        stored.array_value.framework = value.array_value.framework
    return stored


def decode_metadata(msg: pb.MapValue, var: str, limits: Limits, what: str = "metadata") -> dict[str, Any]:
    """Metadata (and constraints) are small plain data: bounded in entries and depth, free of arrays."""
    if not msg.entries:
        return {}
    check_count(len(msg.entries), limits.max_metadata_entries, f"{var}: {what} entries", "max_metadata_entries")
    try:
        metadata = decode_map(msg, native=False, limits=limits)
    except BridgeError as exc:
        raise named(exc, var) from None
    _refuse_arrays(metadata, var, what)
    return metadata


def _refuse_arrays(value: Any, var: str, what: str) -> None:
    if isinstance(value, np.ndarray):
        raise VariableTypeError(f"{var}: {what} values must be plain data, not arrays", variable=var, rule=what)
    if isinstance(value, list):
        for item in value:
            _refuse_arrays(item, var, what)
    elif isinstance(value, dict):
        for item in value.values():
            _refuse_arrays(item, var, what)
