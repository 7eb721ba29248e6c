"""Variable values as plain JSON/YAML data, exactly: every type round-trips bit for bit.

JSON has no NaN or infinities and neither format has arrays, so those are tagged objects:
`{"$float": "nan" | "inf" | "-inf"}` and `{"$array": {"dtype", "shape", "data": base64,
"framework"}}` (little-endian, row-major, as on the wire). A dict whose keys could be
mistaken for a tag (any key starting with "$") is wrapped as `{"$dict": {...}}`. Finite
floats stay numbers with a decimal point or exponent (so 1.0 stays a float, -0.0 keeps its
sign), ints stay integers: int vs float survives at every nesting level.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..codec import WIRE_DTYPES, array_payload, dtype_name, is_torch_tensor, torch_to_numpy
from ..errors import LimitExceededError, ValidationError
from ..limits import DEFAULT_LIMITS, Limits

TAGS = ("$float", "$array", "$dict")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: numpy's dtype.name is a Python property that costs microseconds: looked up here instead (little-endian only).
_NAMES = {np.dtype(name).newbyteorder("<"): name for name in WIRE_DTYPES}


def array_bytes(arr: np.ndarray) -> tuple[str, memoryview | bytes]:
    """An array's wire dtype name and its little-endian row-major bytes (a view when they already are)."""
    name = _NAMES.get(arr.dtype)
    if name is not None and arr.flags.c_contiguous:
        return name, memoryview(arr.reshape(-1)).cast("B") if arr.nbytes else b""
    return dtype_name(arr.dtype), array_payload(arr)  # big-endian or strided: converted (and checked) by the codec


#: Values that are their own portable form (exact types: subclasses, e.g. numpy scalars, take the long way).
_PLAIN = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> bool:
    """A value that is its own portable form; checked inline in the loops below, which run per element."""
    t = type(value)
    return t in _PLAIN or (t is float and math.isfinite(value))


def to_portable(value: Any, depth: int = 0, limits: Limits = DEFAULT_LIMITS) -> Any:
    """A value as JSON-able data (str keys, no NaN, arrays tagged)."""
    if _plain(value):
        return value
    if depth > limits.max_nesting_depth:
        raise LimitExceededError(f"value nests deeper than {limits.max_nesting_depth} levels", rule="max_nesting_depth")
    if type(value) is dict or (not isinstance(value, (list, tuple)) and isinstance(value, Mapping)):
        out = {
            (k if type(k) is str else str(k)): v if _plain(v) else to_portable(v, depth + 1, limits)
            for k, v in value.items()
        }
        return {"$dict": out} if any(k.startswith("$") for k in out) else out
    if isinstance(value, (list, tuple)):
        return [v if _plain(v) else to_portable(v, depth + 1, limits) for v in value]
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, np.ndarray) or is_torch_tensor(value):
        framework = "torch" if is_torch_tensor(value) else ""
        arr = torch_to_numpy(value) if framework else value
        dtype, payload = array_bytes(arr)
        return {
            "$array": {
                "dtype": dtype,
                "shape": list(arr.shape),
                "data": base64.b64encode(payload).decode("ascii"),
                "framework": framework,
            }
        }
    raise ValidationError(f"cannot export a value of type {type(value).__name__}", rule="export_type")


def from_portable(data: Any, depth: int = 0, limits: Limits = DEFAULT_LIMITS, native: bool = True) -> Any:
    """The value `to_portable` made; ValidationError naming what is malformed otherwise."""
    t = type(data)
    if t in _PLAIN:
        return data
    if t is float:
        if not math.isfinite(data):
            raise ValidationError("a non-finite float must be tagged {'$float': ...}", rule="import_value")
        return data
    if depth > limits.max_nesting_depth:
        raise LimitExceededError(f"value nests deeper than {limits.max_nesting_depth} levels", rule="max_nesting_depth")
    if t is list:
        if len(data) > limits.max_list_items:
            raise LimitExceededError(
                f"a list of {len(data)} items exceeds {limits.max_list_items}", rule="max_list_items"
            )
        return [v if _plain(v) else from_portable(v, depth + 1, limits, native) for v in data]
    if t is dict:
        if len(data) == 1:
            ((key, inner),) = data.items()
            if key == "$float":
                if inner not in _SPECIAL:
                    raise ValidationError(f"unknown $float {str(inner)[:20]!r}; expected nan, inf or -inf")
                return _SPECIAL[inner]
            if key == "$array":
                return _array(inner, native)
            if key == "$dict":
                if not isinstance(inner, dict):
                    raise ValidationError("$dict must hold an object", rule="import_value")
                return {k: from_portable(v, depth + 1, limits, native) for k, v in inner.items()}
        if any(type(k) is not str or k.startswith("$") for k in data):
            if all(type(k) is str for k in data):
                raise ValidationError(f"unknown tag among keys {sorted(data)[:5]}", rule="import_value")
            data = {str(k): v for k, v in data.items()}  # a YAML or pickle key that is not a string
            return from_portable(data, depth, limits, native)
        if len(data) > limits.max_list_items:
            raise LimitExceededError(
                f"a map of {len(data)} entries exceeds {limits.max_list_items}", rule="max_list_items"
            )
        return {k: v if _plain(v) else from_portable(v, depth + 1, limits, native) for k, v in data.items()}
    raise ValidationError(f"unexpected {type(data).__name__} in a value", rule="import_value")


def _array(spec: Any, native: bool) -> Any:
    if not isinstance(spec, dict) or set(spec) - {"dtype", "shape", "data", "framework"}:
        raise ValidationError("$array needs dtype, shape, data (and optionally framework)", rule="import_value")
    dtype, shape, data = spec.get("dtype"), spec.get("shape"), spec.get("data")
    if dtype not in WIRE_DTYPES:
        raise ValidationError(f"$array dtype {str(dtype)[:20]!r} is not one of {sorted(WIRE_DTYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValidationError(f"$array shape must be a list of non-negative ints, got {str(shape)[:40]}")
    if not isinstance(data, str):
        raise ValidationError("$array data must be base64 text", rule="import_value")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("$array data is not valid base64", rule="import_value") from None
    itemsize = np.dtype(dtype).itemsize
    if math.prod(shape) * itemsize != len(raw):  # checked before anything is allocated from the shape
        raise ValidationError(
            f"$array of shape {shape} and dtype {dtype} needs {math.prod(shape) * itemsize} bytes, has {len(raw)}",
            rule="import_value",
        )
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    if native and spec.get("framework") == "torch":
        try:
            import torch
        except ImportError:
            return arr
        return torch.from_numpy(arr.copy())
    return arr
