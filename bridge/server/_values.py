"""Wire values arriving at the server: decoded once within its limits, validated, stored detached."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._proto import bridge_pb2 as pb
from ..codec import array_from_wire, array_header, array_payload, decode, decode_map, encode
from ..errors import BridgeError, ValidationError, VariableTypeError
from ..limits import Limits, check_count
from ..store import StoredValue
from ..types import VariableType

_new_tuple = tuple.__new__
_SCALARS = frozenset({"float_value", "int_value", "string_value", "bool_value"})
_FRAMEWORKS = ("", "torch")
#: The metadata of a write that sent none: one shared dict (records are never mutated), not one per write.
NO_METADATA: dict[str, Any] = {}

_NULL = StoredValue(pb.Value(null_value=pb.NULL_VALUE).SerializeToString())


def named(exc: BridgeError, var: str) -> BridgeError:
    """The same error, its message and details naming the variable it concerns."""
    if exc.details.get("variable"):
        return exc
    return type(exc)(f"{var}: {exc.message}", **{**exc.details, "variable": var})


def decode_value(value: pb.Value, var: str, limits: Limits, array_data: memoryview | bytes | None = None) -> Any:
    """Decodes once, within the server's limits; arrays become read-only views (no copy)."""
    try:
        if array_data is not None:
            if value.WhichOneof("kind") != "array_value" or value.array_value.data:
                raise ValidationError(
                    "array_data needs a value that is an array_value with empty data", rule="array_data"
                )
            return array_from_wire(value.array_value, native=False, data=array_data)
        return decode(value, native=False, limits=limits)
    except BridgeError as exc:
        raise named(exc, var) from None


def coerce_wire(
    t: VariableType,
    value: pb.Value,
    constraints: dict[str, Any],
    var: str,
    limits: Limits,
    array_data: memoryview | bytes | None = None,
) -> StoredValue:
    """Validates a wire value against a type; returns what to store.

    A value that coercion leaves as it was is stored as the client sent it; a top-level
    array keeps its bytes apart, as a view when possible (no copy), so reads can send them
    on as `array_data`.
    """
    kind = value.WhichOneof("kind")
    if array_data is None and kind in _SCALARS:  # no decoding to do, nothing to bound, never None
        decoded = getattr(value, kind)
        coerced = t.coerce_value(decoded, constraints, var)
    elif array_data is None and kind == "array_value":  # in its message: registrations and imports
        msg = value.array_value
        data = msg.data  # a copy, read once: the array is a view of it, and it is what is kept
        try:
            decoded = array_from_wire(msg, native=False, data=data)
        except BridgeError as exc:
            raise named(exc, var) from None
        coerced = t.coerce_value(decoded, constraints, var)
        if coerced is decoded:  # the head every array of its dtype, shape and framework has
            return _new_tuple(StoredValue, (array_head(msg.dtype, decoded.shape, msg.framework), data or b""))
    else:
        decoded = decode_value(value, var, limits, array_data)
        coerced = t.coerce(decoded, constraints, var)
    if coerced is None:
        return _NULL
    if isinstance(coerced, np.ndarray):
        framework = value.array_value.framework if kind == "array_value" else ""
        head = pb.Value()
        array_header(head.array_value, coerced, framework)
        return StoredValue(head.SerializeToString(), array_payload(coerced))
    if coerced is decoded:
        return _new_tuple(StoredValue, (value.SerializeToString(), None))  # StoredValue(...), minus its Python __new__
    return StoredValue(encode(coerced, limits).SerializeToString())


_HEADS: dict[tuple[str, tuple[int, ...], str], bytes] = {}


def array_head(dtype: str, shape: tuple[int, ...], framework: str) -> bytes:
    """The serialized Value of an array without its bytes, which `array_header` would build: looked up,
    since a batch of arrays (the embeddings of an import) shares a few shapes."""
    key = (dtype, shape, framework)
    head = _HEADS.get(key)
    if head is None:
        head = pb.Value(array_value=pb.NDArray(dtype=dtype, shape=shape, framework=framework)).SerializeToString()
        if len(_HEADS) < 1024 and framework in _FRAMEWORKS:  # bounded, whatever clients send
            _HEADS[key] = head
    return head


def decode_metadata(msg: pb.MapValue, var: str, limits: Limits, what: str = "metadata") -> dict[str, Any]:
    """Metadata (and constraints) are small plain data: bounded in entries and depth, free of arrays."""
    if not msg.entries:
        return NO_METADATA
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
