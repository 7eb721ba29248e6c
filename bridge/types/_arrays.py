"""embedding (a 1-d float vector) and tensor (an n-d array); both travel as raw bytes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..codec import WIRE_DTYPES, dtype_name, is_torch_tensor, torch_to_numpy
from ._base import VariableType


def _as_array(t: VariableType, value: Any, var: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        arr = value
    elif is_torch_tensor(value):
        arr = torch_to_numpy(value)
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:  # ragged nesting
            raise t.wrong_type(var, value, "a rectangular array") from exc
    else:
        raise t.wrong_type(var, value, "a numpy array, torch tensor or list of numbers")
    if dtype_name(arr.dtype) not in WIRE_DTYPES:
        raise t.wrong_type(var, value, f"a numeric array (dtype {arr.dtype} is not supported)")
    return arr


class EmbeddingType(VariableType):
    """A 1-d floating vector. With normalize=True the unit vector is stored (a zero vector stays zero)."""

    name = "embedding"
    constraint_keys = {"dimensions": "exact length", "normalize": "store the unit vector"}

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        dims = constraints.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims <= 0):
            raise self.bad_constraint(var, f"must be a positive int, got {dims!r}", "dimensions")
        if not isinstance(constraints.get("normalize", False), bool):
            raise self.bad_constraint(var, "must be a bool", "normalize")
        return constraints

    def coerces_arrays_by_shape(self, constraints: Mapping[str, Any]) -> bool:
        return not constraints.get("normalize")  # the unit vector depends on the elements

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> np.ndarray:
        arr = _as_array(self, value, var)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float64)
        elif arr.dtype.kind != "f":
            raise self.wrong_type(var, value, "a real-valued vector")
        if arr.ndim != 1:
            raise self.violation(var, f"an embedding is 1-d, got shape {arr.shape}", "ndim")
        dims = constraints.get("dimensions")
        if dims is not None and arr.shape[0] != dims:
            raise self.violation(var, f"has {arr.shape[0]} dimensions, expected {dims}", "dimensions")
        if constraints.get("normalize"):
            norm = float(np.linalg.norm(arr.astype(np.float64)))
            if not np.isfinite(norm):
                raise self.violation(var, "cannot normalize a vector with NaN or infinite entries", "normalize")
            if norm > 0.0:
                arr = (arr.astype(np.float64) / norm).astype(arr.dtype)
        return arr


class TensorType(VariableType):
    """An n-d array; `shape` may use -1 (or None) for any size in that dimension."""

    name = "tensor"
    constraint_keys = {"shape": "dimensions, -1 for any", "dtype": "element type; safe casts are applied"}

    def _check_constraints(self, constraints: dict[str, Any], var: str) -> dict[str, Any]:
        if "shape" in constraints:
            shape = constraints["shape"]
            if not isinstance(shape, (list, tuple)) or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= -1) for d in shape
            ):
                raise self.bad_constraint(
                    var, f"must be a list of ints >= 0, or -1/None for any, got {shape!r}", "shape"
                )
            constraints["shape"] = [-1 if d is None else d for d in shape]
        if "dtype" in constraints and (
            not isinstance(constraints["dtype"], str) or constraints["dtype"] not in WIRE_DTYPES
        ):
            raise self.bad_constraint(var, f"{constraints['dtype']!r} is not one of {sorted(WIRE_DTYPES)}", "dtype")
        return constraints

    def coerces_arrays_by_shape(self, constraints: Mapping[str, Any]) -> bool:
        return True  # its dtype and shape rules look at nothing else

    def coerce_value(self, value: Any, constraints: Mapping[str, Any], var: str) -> np.ndarray:
        arr = _as_array(self, value, var)
        dtype = constraints.get("dtype")
        if dtype is not None and dtype_name(arr.dtype) != dtype:
            if not np.can_cast(arr.dtype, dtype, casting="safe"):
                raise self.violation(var, f"dtype {arr.dtype} cannot be safely cast to {dtype}", "dtype")
            arr = arr.astype(dtype)
        shape = constraints.get("shape")
        if shape is not None and (
            len(shape) != arr.ndim or any(want not in (-1, got) for want, got in zip(shape, arr.shape, strict=True))
        ):
            raise self.violation(var, f"shape {tuple(arr.shape)} does not fit {tuple(shape)}", "shape")
        return arr
