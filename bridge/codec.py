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
from .errors import ConstraintViolationError, LimitExceededError, ValidationError, VariableTypeError
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

#: The field of SetVariableRequest and GetVariableResponse that carries array bytes outside the value.
ARRAY_DATA_FIELD = pb.SetVariableRequest.DESCRIPTOR.fields_by_name["array_data"].number
assert pb.GetVariableResponse.DESCRIPTOR.fields_by_name["array_data"].number == ARRAY_DATA_FIELD

#: Most dimensions an array may have on the wire (numpy itself allows 64).
MAX_NDIM = 32
#: Each wire dtype as the little-endian numpy dtype it means (building one costs microseconds).
_WIRE_NUMPY: dict[str, np.dtype[Any]] = {name: np.dtype(name).newbyteorder("<") for name in WIRE_DTYPES}


def is_torch_tensor(value: object) -> bool:
    """True for a torch.Tensor, without importing torch."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def torch_to_numpy(value: Any) -> np.ndarray:
    try:
        return value.detach().cpu().resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError) as exc:  # bfloat16 (numpy cannot hold it), sparse layouts, ...
        raise VariableTypeError(
            f"cannot send this torch tensor ({value.dtype}, {value.layout}): {exc}", rule="dtype"
        ) from exc


_DTYPE_NAMES: dict[str, str] = {}


def dtype_name(dtype: np.dtype[Any]) -> str:
    """`dtype.name`, which numpy builds anew each time (about 2 µs); `dtype.str` is cheap and determines it."""
    key = dtype.str
    name = _DTYPE_NAMES.get(key)
    if name is None:
        name = dtype.name
        if len(_DTYPE_NAMES) < 1024:  # a handful in practice: bounded all the same
            _DTYPE_NAMES[key] = name
    return name


def _little_endian(arr: np.ndarray) -> np.ndarray:
    if dtype_name(arr.dtype) not in WIRE_DTYPES:
        raise VariableTypeError(
            f"array dtype {arr.dtype} is not supported on the wire (supported: {', '.join(sorted(WIRE_DTYPES))})",
            rule="dtype",
        )
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and _BIG_ENDIAN):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # ascontiguousarray would make 0-d 1-d


def array_header(target: pb.NDArray, arr: np.ndarray, framework: str = "") -> None:
    """Everything about an array but its bytes: dtype, shape, framework."""
    target.dtype = dtype_name(arr.dtype)
    del target.shape[:]
    target.shape.extend(arr.shape)
    target.framework = framework


def array_payload(arr: np.ndarray) -> memoryview | bytes:
    """The array's elements as little-endian row-major bytes: a view when they already are, not a copy."""
    arr = _little_endian(arr)
    if arr.nbytes == 0:
        return b""
    return memoryview(arr.reshape(-1)).cast("B").toreadonly()


def array_into(target: pb.NDArray, arr: np.ndarray, framework: str = "") -> None:
    """Writes an array, bytes included, into a wire message in place."""
    arr = _little_endian(arr)
    array_header(target, arr, framework)
    target.data = arr.tobytes()


def array_from_wire(msg: pb.NDArray, native: bool = True, data: bytes | memoryview | None = None) -> Any:
    """The array as a read-only numpy view over the received bytes (no copy).

    `data` holds the bytes when they travelled outside the message (`array_data`).
    With `native`, an array sent from torch comes back as a (writable) torch tensor when
    torch is installed.
    """
    shape = tuple(msg.shape)
    dtype, expected = array_layout(msg.dtype, shape)
    if data is None or len(data) == 0:
        data = msg.data  # each access copies the bytes out of the message
    if len(data) != expected:
        raise ValidationError(
            f"array of shape {shape} and dtype {msg.dtype} needs {expected} bytes, got {len(data)}",
            rule="array_size",
        )
    try:
        view = np.frombuffer(data, dtype=dtype).reshape(shape)
    except ValueError as exc:  # e.g. an empty array whose other dimensions overflow numpy's size
        raise ValidationError(f"array shape {shape} is not representable: {exc}", rule="shape") from None
    return to_native(view, msg.framework) if native else view


#: (wire dtype, shape) -> (numpy dtype, byte count) of the valid layouts seen: arrays come in few of them.
_LAYOUTS: dict[tuple[str, tuple[int, ...]], tuple[np.dtype[Any], int]] = {}


def array_layout(dtype_name: str, shape: tuple[int, ...]) -> tuple[np.dtype[Any], int]:
    """Checks an array's wire dtype and shape; its numpy dtype and byte count (remembered: a bounded few)."""
    layout = _LAYOUTS.get((dtype_name, shape))
    if layout is not None:
        return layout
    dtype = _WIRE_NUMPY.get(dtype_name)
    if dtype is None:
        raise VariableTypeError(f"unknown wire dtype {dtype_name[:40]!r}", rule="dtype")
    if len(shape) > MAX_NDIM:
        raise ValidationError(f"array has {len(shape)} dimensions; the limit is {MAX_NDIM}", rule="shape")
    if any(d < 0 for d in shape):
        raise ValidationError(f"array shape {shape} has a negative dimension", rule="shape")
    layout = (dtype, math.prod(shape) * dtype.itemsize)
    if len(_LAYOUTS) < 1024:
        _LAYOUTS[(dtype_name, shape)] = layout
    return layout


def to_native(arr: np.ndarray, framework: str) -> Any:
    """An array received from the wire as its sender had it: a torch tensor when sent from torch (and torch
    is installed), else the array."""
    return _to_torch(arr) if framework == "torch" else arr


def _to_torch(arr: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return arr
    return torch.from_numpy(arr.copy())  # torch wants writable memory


def encode(value: Any, limits: Limits = DEFAULT_LIMITS) -> pb.Value:
    """Encodes a Python value; raises VariableTypeError for values the wire cannot carry."""
    target = pb.Value()
    encode_into(target, value, limits)
    return target


def encode_into(target: pb.Value, value: Any, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> None:
    """Encodes into a field of a message being built: protobuf copies a message passed to a
    constructor, which for a large array costs more than the whole call."""
    if type(value) is float:  # the commonest value, first
        target.float_value = value
        return
    if depth > limits.max_nesting_depth:
        raise LimitExceededError(f"value nests deeper than {limits.max_nesting_depth} levels", rule="max_nesting_depth")
    # bool before int: bool is a subclass of int.
    if value is None:
        target.null_value = pb.NULL_VALUE
    elif isinstance(value, (bool, np.bool_)):
        target.bool_value = bool(value)
    elif isinstance(value, (int, np.integer)):
        ivalue = int(value)
        if not INT64_MIN <= ivalue <= INT64_MAX:
            raise ConstraintViolationError(f"integer {ivalue} is outside the int64 range", rule="int64_range")
        target.int_value = ivalue
    elif isinstance(value, (float, np.floating)):
        target.float_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, np.ndarray):
        array_into(target.array_value, value)
    elif is_torch_tensor(value):
        array_into(target.array_value, torch_to_numpy(value), framework="torch")
    elif isinstance(value, (list, tuple)):
        if len(value) > limits.max_list_items:
            raise LimitExceededError(
                f"list of {len(value)} items exceeds the limit of {limits.max_list_items}", rule="max_list_items"
            )
        target.list_value.SetInParent()
        items = target.list_value.items
        for item in value:
            encode_into(items.add(), item, limits, depth + 1)
    elif isinstance(value, Mapping):
        target.map_value.SetInParent()
        map_into(target.map_value, value, limits, depth + 1)
    else:
        raise VariableTypeError(
            f"cannot send a value of type {type(value).__name__} over the wire "
            "(supported: None, bool, int, float, str, list, dict, numpy array, torch tensor)",
            rule="wire_type",
        )


def encode_map(mapping: Mapping[str, Any] | None, limits: Limits = DEFAULT_LIMITS) -> pb.MapValue:
    target = pb.MapValue()
    map_into(target, mapping, limits)
    return target


def map_into(
    target: pb.MapValue, mapping: Mapping[str, Any] | None, limits: Limits = DEFAULT_LIMITS, depth: int = 0
) -> None:
    if not mapping:
        return
    if len(mapping) > limits.max_list_items:
        raise LimitExceededError(
            f"map of {len(mapping)} entries exceeds the limit of {limits.max_list_items}", rule="max_list_items"
        )
    entries = target.entries
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise VariableTypeError(f"map keys must be strings, got {type(key).__name__} {key!r}", rule="map_key")
        entry = entries.add()
        entry.key = key
        encode_into(entry.value, item, limits, depth)


def decode(msg: pb.Value, native: bool = True, limits: Limits | None = None) -> Any:
    """Decodes a wire value (an unset Value is None).

    `native=False` keeps every array a numpy view; `limits` (the server passes its own)
    bounds nesting depth and container sizes.
    """
    return _decode(msg, native, limits, 0)


def decode_map(msg: pb.MapValue, native: bool = True, limits: Limits | None = None) -> dict[str, Any]:
    return _decode_map(msg, native, limits, 0)


def _check_container(count: int, depth: int, limits: Limits) -> None:
    if depth > limits.max_nesting_depth:
        raise LimitExceededError(f"value nests deeper than {limits.max_nesting_depth} levels", rule="max_nesting_depth")
    if count > limits.max_list_items:
        raise LimitExceededError(
            f"a list or map of {count} items exceeds the limit of {limits.max_list_items}", rule="max_list_items"
        )


def _decode(msg: pb.Value, native: bool, limits: Limits | None, depth: int) -> Any:
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
        items = msg.list_value.items
        if limits is not None:
            _check_container(len(items), depth, limits)
        return [_decode(v, native, limits, depth + 1) for v in items]
    if kind == "map_value":
        return _decode_map(msg.map_value, native, limits, depth + 1)
    return None


def _decode_map(msg: pb.MapValue, native: bool, limits: Limits | None, depth: int) -> dict[str, Any]:
    entries = msg.entries
    if limits is not None:
        _check_container(len(entries), depth, limits)
    out = {entry.key: _decode(entry.value, native, limits, depth) for entry in entries}
    if len(out) != len(entries):
        keys = [entry.key for entry in entries]
        dupes = sorted({k[:40] for k in keys if keys.count(k) > 1})[:5]
        raise ValidationError(f"map has duplicate keys {dupes}", rule="map_key")
    return out
