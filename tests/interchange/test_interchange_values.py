"""What the server stores for an array carried in its message (an import's, a registration's): exactly what the
general path of a write stores, bytes for bytes, and the same errors; a batch of them, as each one alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from interchange_support import arrays

from bridge._proto import bridge_pb2 as pb
from bridge.codec import WIRE_DTYPES, array_header, array_into, array_payload, encode, encode_map
from bridge.errors import BridgeError
from bridge.limits import DEFAULT_LIMITS
from bridge.server._service import BridgeServicer
from bridge.server._values import coerce_wire, decode_value
from bridge.store import MemoryStore, StoredValue
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


def _item(name: str, value: pb.Value, type_: str = "embedding", version: int = 1, **spec: object) -> bytes:
    item = pb.ExportedVariable(spec=pb.VariableSpec(name=name, type=type_, **spec), version=version)
    item.spec.initial_value.CopyFrom(value)
    return item.SerializeToString()


def _bad_bytes(count: int) -> pb.Value:
    return pb.Value(array_value=pb.NDArray(dtype="float32", shape=[4], data=b"\1" * count))


#: One import's variables, in order: runs of plain arrays with, among them, every way one can differ.
_BATCH = [
    *(_item(f"e{i}", _wire(np.arange(i, i + 4, dtype=np.float32))) for i in range(4)),
    _item("1bad name", _wire(np.ones(4, np.float32))),
    _item("short", _bad_bytes(12)),
    _item("long", _bad_bytes(20)),
    _item("negative", _wire(np.ones(4, np.float32)), version=-1),
    _item("e4", _wire(np.ones(4, np.float32)), version=7),
    _item("ruled", _wire(np.ones(4, np.float32)), access_rules=[pb.AccessRule(session_pattern="*")]),
    _item("unit", _wire(np.ones(4, np.float32)), constraints=encode_map({"normalize": True})),
    _item("tagged", _wire(np.ones(4, np.float32)), metadata=encode_map({"k": "v"})),
    _item("linked", _wire(np.ones(4, np.float32)), dependencies=["e0"]),
    *(_item(f"i{i}", _wire(np.arange(4, dtype=np.int32))) for i in range(2)),  # coerced to float64
    *(_item(f"m{i}", _wire(np.zeros((2, 2), np.float32))) for i in range(2)),  # not 1-d: refused
    *(_item(f"z{i}", _wire(np.zeros(0, np.float32))) for i in range(2)),  # no bytes
    *(_item(f"t{i}", _wire(np.full((2, 3), i, np.float64), "torch"), "tensor") for i in range(3)),
    *(_item(f"q{i}", _wire(np.ones(4, np.float32)), "quaternion") for i in range(2)),  # unknown type
    *(_item(f"s{i}", _wire(np.ones(4, np.float32)), "string") for i in range(2)),  # not an array type
    *(_item(f"l{i}", _wire(np.arange(3.0)), "list") for i in range(2)),  # a list type takes the elements
    *(_item(f"f{i}", encode(float(i)), "float") for i in range(2)),  # not an array
    *(_item(name, _wire(np.ones(3, np.float32))) for name in ("9 bad", "g0", "g1")),  # g0 stands for g1
]


def _seen(entry: Any) -> tuple[object, ...]:
    """What an import keeps of a validated variable, with the stored value as bytes."""
    if entry.error is not None:
        return entry.name, type(entry.error), entry.error.message
    fields = {**entry.fields, "value": (entry.fields["value"].head, bytes(entry.fields["value"].data or b""))}
    return entry.name, entry.version, entry.kinds, fields


async def test_a_batch_of_arrays_is_validated_as_each_one_is_on_its_own() -> None:
    servicer = BridgeServicer(MemoryStore())
    alone = [_seen(servicer._entry(pb.ExportedVariable.FromString(raw))) for raw in _BATCH]
    validated = []
    entry = servicer._entry
    servicer._entry = lambda item: validated.append(item.spec.name) or entry(item)  # type: ignore[method-assign]
    templates: dict[Any, Any] = {}
    items = [pb.ExportedVariable.FromString(raw) for raw in _BATCH]  # as they arrive: fresh messages
    assert [_seen(servicer._batched_entry(item, templates)) for item in items] == alone
    assert sum(len(seen) == 3 for seen in alone) == 13  # the refused ones, each with its own reason
    assert {"e1", "e2", "e3", "e4", "z1", "t1", "t2", "g1"}.isdisjoint(validated)  # stood for by e0, z0, t0, g0
    assert len(validated) == len(_BATCH) - 8


def _as_batches(raws: list[bytes]) -> list[pb.ExportedArrays]:
    """The plain array variables among `raws` as ExportedArrays batches, one per run of one layout and byte count."""
    batches: list[pb.ExportedArrays] = []
    for raw in raws:
        item = pb.ExportedVariable.FromString(raw)
        spec, array = item.spec, item.spec.initial_value.array_value
        layout = (spec.type, array.dtype, list(array.shape), array.framework, len(array.data))
        last = batches[-1] if batches else None
        if last is None or (*_layout(last), len(last.data) // len(last.names)) != layout:
            last = pb.ExportedArrays(type=spec.type, dtype=array.dtype, shape=array.shape, framework=array.framework)
            batches.append(last)
        last.names.append(spec.name)
        last.versions.append(item.version)
        last.data += array.data
    return batches


def _layout(batch: pb.ExportedArrays) -> tuple[object, ...]:
    return batch.type, batch.dtype, list(batch.shape), batch.framework


def _batchable(raw: bytes) -> bool:
    item = pb.ExportedVariable.FromString(raw)
    spec = item.spec
    plain = not (spec.HasField("constraints") or spec.HasField("metadata") or spec.dependencies or spec.access_rules)
    return plain and spec.initial_value.HasField("array_value")


async def test_a_batch_sent_as_exported_arrays_is_validated_as_each_one_is_on_its_own() -> None:
    """The same variables as `_BATCH`'s plain arrays, in ExportedArrays form (a batch per run of a layout; the
    short and long ones are batches of their own): the same entries, refusals and all."""
    servicer = BridgeServicer(MemoryStore())
    raws = [raw for raw in _BATCH if _batchable(raw)]
    alone = [_seen(servicer._entry(pb.ExportedVariable.FromString(raw))) for raw in raws]
    templates: dict[Any, Any] = {}
    batched = [_seen(entry) for batch in _as_batches(raws) for entry in servicer._array_entries(batch, templates)]
    assert batched == alone
    assert len(raws) == len(_BATCH) - 6  # the ruled, unit, tagged, linked and float ones go as variables
    assert sum(len(seen) == 3 for seen in alone) == 13  # every refusal of _BATCH, each with its own reason
