"""What the server stores for an array carried in its message (an import's, a registration's): exactly what the
general path of a write stores, bytes for bytes, and the same errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from interchange_support import arrays

from bridge._proto import bridge_pb2 as pb
from bridge.codec import WIRE_DTYPES, array_header, array_into, array_payload
from bridge.errors import BridgeError
from bridge.limits import DEFAULT_LIMITS
from bridge.server._values import coerce_wire, decode_value
from bridge.store import StoredValue
from bridge.types import TYPES


def _wire(arr: np.ndarray, framework: str = "") -> pb.Value:
    value = pb.Value()
    array_into(value.array_value, arr, framework)
    return value


def _general(type_name: str, value: pb.Value, constraints: dict[str, object]) -> StoredValue:
    """The stored value as the general path builds it: decode, coerce, a fresh head and the array's bytes."""
    coerced = TYPES[type_name].coerce(decode_value(value, "v", DEFAULT_LIMITS), constraints, "v")
    head = pb.Value()
    array_header(head.array_value, coerced, value.array_value.framework)
    return StoredValue(head.SerializeToString(), array_payload(coerced))


def _same(a: StoredValue, b: StoredValue) -> bool:
    return a.head == b.head and bytes(a.data or b"") == bytes(b.data or b"")


@given(arr=arrays)
def test_a_tensor_is_stored_as_the_general_path_stores_it(arr: np.ndarray) -> None:
    for framework in ("", "torch", "jax"):
        value = _wire(arr, framework)
        assert _same(coerce_wire(TYPES["tensor"], value, {}, "v", DEFAULT_LIMITS), _general("tensor", value, {}))


@pytest.mark.parametrize("dtype", sorted(WIRE_DTYPES))
def test_every_wire_dtype_keeps_its_name_in_the_stored_head(dtype: str) -> None:
    value = _wire(np.zeros((2, 3), dtype=dtype))
    stored = coerce_wire(TYPES["tensor"], value, {}, "v", DEFAULT_LIMITS)
    assert _same(stored, _general("tensor", value, {}))
    assert pb.Value.FromString(stored.head).array_value.dtype == dtype


@pytest.mark.parametrize(
    "type_name,arr,constraints",
    [
        ("embedding", np.arange(4, dtype=np.float32), {"normalize": True}),  # coerced: a new array
        ("embedding", np.arange(4, dtype=np.int32), {}),  # ints become float64
        ("tensor", np.arange(6, dtype=np.int16).reshape(2, 3), {"dtype": "float64"}),  # a safe cast
        ("embedding", np.zeros(0, dtype=np.float32), {}),  # no bytes
        ("tensor", np.array(2.5), {}),  # 0-d
    ],
)
def test_a_coerced_or_edge_array_is_stored_as_the_general_path_stores_it(
    type_name: str, arr: np.ndarray, constraints: dict[str, object]
) -> None:
    value = _wire(arr)
    stored = coerce_wire(TYPES[type_name], value, constraints, "v", DEFAULT_LIMITS)
    assert _same(stored, _general(type_name, value, constraints))


@pytest.mark.parametrize(
    "type_name,value,constraints",
    [
        ("embedding", _wire(np.zeros((2, 2), dtype=np.float32)), {}),
        ("embedding", _wire(np.zeros(3, dtype=np.float32)), {"dimensions": 4}),
        ("embedding", _wire(np.zeros(3, dtype=np.complex64)), {}),
        ("string", _wire(np.zeros(3)), {}),
        ("tensor", pb.Value(array_value=pb.NDArray(dtype="float32", shape=[4], data=b"\0" * 8)), {}),
        ("tensor", pb.Value(array_value=pb.NDArray(dtype="float128", shape=[1], data=b"\0" * 16)), {}),
    ],
)
def test_a_bad_array_fails_as_the_general_path_fails_it(type_name: str, value: pb.Value, constraints: dict) -> None:
    with pytest.raises(BridgeError) as general:
        _general(type_name, value, constraints)
    with pytest.raises(type(general.value)) as fast:
        coerce_wire(TYPES[type_name], value, constraints, "v", DEFAULT_LIMITS)
    assert fast.value.message == general.value.message
