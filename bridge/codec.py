"""Python value <-> wire `Value`. Pure functions: no I/O, no pickle, no JSON text for arrays.

Arrays travel as dtype + shape + raw little-endian bytes and come back bit-exact with the
same dtype and shape. ints and floats stay distinct at every nesting level.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._proto import bridge_pb2 as pb
from .errors import LimitExceededError, ValidationError, VariableTypeError
from .limits import DEFAULT_LIMITS, Limits

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: The element types the wire carries, by their language-neutral names.
WIRE_DTYPES: frozenset[str] = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)

_BIG_ENDIAN = sys.byteorder == "big"


def is_torch_tensor(value: object) -> bool:
    """True for a torch.Tensor, without importing torch."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def torch_to_numpy(value: Any) -> np.ndarray:
    try:
        return value.detach().cpu().numpy()
    except TypeError as exc:  # e.g. bfloat16, which numpy cannot hold
        raise VariableTypeError(f"cannot send torch dtype {value.dtype}: {exc}", rule="dtype") from exc


def array_to_wire(arr: np.ndarray, framework: str = "") -> pb.NDArray:
    name = arr.dtype.name
    if name not in WIRE_DTYPES:
        raise VariableTypeError(
            f"array dtype {arr.dtype} is not supported on the wire (supported: {', '.join(sorted(WIRE_DTYPES))})",
            rule="dtype",
        )
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and _BIG_ENDIAN):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return pb.NDArray(dtype=name, shape=arr.shape, data=np.ascontiguousarray(arr).tobytes(), framework=framework)


def array_from_wire(msg: pb.NDArray, native: bool = True) -> Any:
    """A writable array (torch if sent from torch and torch imports); `native=False`: a read-only numpy view."""
    if msg.dtype not in WIRE_DTYPES:
        raise VariableTypeError(f"unknown wire dtype {msg.dtype!r}", rule="dtype")
    dtype = np.dtype(msg.dtype).newbyteorder("<")
    shape = tuple(msg.shape)
    if any(d < 0 for d in shape):
        raise ValidationError(f"array shape {shape} has a negative dimension", rule="shape")
    expected = math.prod(shape) * dtype.itemsize
    if len(msg.data) != expected:
        raise ValidationError(
            f"array of shape {shape} and dtype {msg.dtype} needs {expected} bytes, got {len(msg.data)}",
            rule="array_size",
        )
    view = np.frombuffer(msg.data, dtype=dtype).reshape(shape)
    if not native:
        return view
    arr = view.astype(dtype.newbyteorder("="), copy=True)
    return _to_torch(arr) if msg.framework == "torch" else arr


def _to_torch(arr: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return arr
    return torch.from_numpy(arr)


def encode(value: Any, limits: Limits = DEFAULT_LIMITS) -> pb.Value:
    """Encodes a Python value; raises VariableTypeError for values the wire cannot carry."""
    return _encode(value, limits, 0)


def _encode(value: Any, limits: Limits, depth: int) -> pb.Value:
    if depth > limits.max_nesting_depth:
        raise LimitExceededError(f"value nests deeper than {limits.max_nesting_depth} levels", rule="max_nesting_depth")
    # bool before int: bool is a subclass of int.
    if value is None:
        return pb.Value(null_value=pb.NULL_VALUE)
    if isinstance(value, (bool, np.bool_)):
        return pb.Value(bool_value=bool(value))
    if isinstance(value, (int, np.integer)):
        ivalue = int(value)
        if not INT64_MIN <= ivalue <= INT64_MAX:
            raise ValidationError(f"integer {ivalue} is outside the int64 range", rule="int64_range")
        return pb.Value(int_value=ivalue)
    if isinstance(value, (float, np.floating)):
        return pb.Value(float_value=float(value))
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, np.ndarray):
        return pb.Value(array_value=array_to_wire(value))
    if is_torch_tensor(value):
        return pb.Value(array_value=array_to_wire(torch_to_numpy(value), framework="torch"))
    if isinstance(value, (list, tuple)):
        if len(value) > limits.max_list_items:
            raise LimitExceededError(
                f"list of {len(value)} items exceeds the limit of {limits.max_list_items}", rule="max_list_items"
            )
        return pb.Value(list_value=pb.ListValue(items=[_encode(v, limits, depth + 1) for v in value]))
    if isinstance(value, Mapping):
        return pb.Value(map_value=encode_map(value, limits, depth + 1))
    raise VariableTypeError(
        f"cannot send a value of type {type(value).__name__} over the wire "
        "(supported: None, bool, int, float, str, list, dict, numpy array, torch tensor)",
        rule="wire_type",
    )


def encode_map(mapping: Mapping[str, Any] | None, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> pb.MapValue:
    if not mapping:
        return pb.MapValue()
    if len(mapping) > limits.max_list_items:
        raise LimitExceededError(
            f"map of {len(mapping)} entries exceeds the limit of {limits.max_list_items}", rule="max_list_items"
        )
    entries = []
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise VariableTypeError(f"map keys must be strings, got {type(key).__name__} {key!r}", rule="map_key")
        entries.append(pb.MapEntry(key=key, value=_encode(item, limits, depth)))
    return pb.MapValue(entries=entries)


def decode(msg: pb.Value, native: bool = True) -> Any:
    """Decodes a wire value (an unset Value is None); `native=False` keeps every array numpy."""
    kind = msg.WhichOneof("kind")
    if kind == "float_value":
        return msg.float_value
    if kind == "int_value":
        return msg.int_value
    if kind == "string_value":
        return msg.string_value
    if kind == "bool_value":
        return msg.bool_value
    if kind == "array_value":
        return array_from_wire(msg.array_value, native)
    if kind == "list_value":
        return [decode(v, native) for v in msg.list_value.items]
    if kind == "map_value":
        return decode_map(msg.map_value, native)
    return None


def decode_map(msg: pb.MapValue, native: bool = True) -> dict[str, Any]:
    return {entry.key: decode(entry.value, native) for entry in msg.entries}
