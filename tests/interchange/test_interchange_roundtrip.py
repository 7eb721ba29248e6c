"""Every type, through every format, through a real server: export -> import into a fresh session ->
export again gives the same values exactly and the same bytes except the documented volatile fields."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from interchange_support import (
    DIFFABLE,
    FORMATS,
    arrays,
    document_of,
    floats,
    fresh,
    int64s,
    plain,
    same,
    texts,
    without_volatile,
)

from bridge import SessionContext
from bridge.interchange import VOLATILE_FIELDS

choices = st.lists(st.text(min_size=1), min_size=1, max_size=4, unique=True).flatmap(
    lambda cs: st.tuples(st.just({"choices": cs}), st.sampled_from(cs))
)
embeddings = st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dtype: hnp.arrays(dtype, st.sampled_from([(0,), (768,), (5,)]))
)
#: One variable of every type: (type, value, constraints).
variables = st.tuples(
    st.tuples(st.just("float"), floats, st.just({})),
    st.tuples(st.just("integer"), int64s, st.just({})),
    st.tuples(st.just("string"), texts, st.just({})),
    st.tuples(st.just("boolean"), st.booleans(), st.just({})),
    choices.map(lambda c: ("choice", c[1], c[0])),
    st.tuples(st.just("module"), st.sampled_from(["dspy.ChainOfThought", "Predict"]), st.just({})),
    st.tuples(st.just("embedding"), embeddings, st.just({})),
    st.tuples(st.just("tensor"), arrays, st.just({})),
    st.tuples(st.just("list"), st.lists(plain, max_size=5), st.just({})),
    st.tuples(st.just("dict"), st.dictionaries(texts, plain, max_size=5), st.just({})),
)


async def _populate(session: SessionContext, specs: tuple[tuple[str, Any, dict[str, Any]], ...]) -> list[str]:
    names = []
    for i, (type_, value, constraints) in enumerate(specs):
        name = f"v{i}_{type_}"
        await session.register_variable(name, type_, value, constraints=constraints)
        names.append(name)
    return names


async def _check_roundtrip(channel: grpc.aio.Channel, source: SessionContext, format: str, history: bool) -> None:
    names = [v["name"] for v in await source.list_variables()]
    first = await source.export_variables(format=format, include_history=history)
    target = await fresh(channel)
    summary = await target.import_variables(first, format=format, allow_pickle=True)
    assert (summary["imported"], summary["skipped"], summary["errors"]) == (len(names), 0, 0), summary
    originals = await source.get_variables(names)
    for name, value in (await target.get_variables(names)).items():
        assert same(value, originals[name]), (name, value, originals[name])
    exported = {v["name"]: v["value"] for v in document_of(first, format)["variables"]}
    assert all(same(exported[n], originals[n]) for n in names)
    again = await target.export_variables(format=format, include_history=history)
    if format in DIFFABLE:
        assert without_volatile(again, format) == without_volatile(first, format)
    a, b = document_of(first, format), document_of(again, format)
    assert list(a) == list(b) and all(same(a[k], b[k]) for k in a if k not in VOLATILE_FIELDS)
    await source.cleanup()
    await target.cleanup()


@pytest.mark.parametrize("format", FORMATS)
@given(specs=variables)
async def test_every_type_roundtrips_exactly(channel: grpc.aio.Channel, format: str, specs: Any) -> None:
    source = await fresh(channel)
    await _populate(source, specs)
    await _check_roundtrip(channel, source, format, history=False)


@pytest.mark.parametrize("format", FORMATS)
@given(values=st.lists(floats, min_size=1, max_size=6), tensors=st.lists(arrays, min_size=1, max_size=3))
async def test_history_roundtrips_exactly(
    channel: grpc.aio.Channel, format: str, values: list[float], tensors: list[np.ndarray]
) -> None:
    source = await fresh(channel)
    await source.register_variable("x", "float", values[0])
    for value in values[1:]:
        await source.set_variable("x", value, metadata={"step": str(value)})
    await source.register_variable("t", "tensor", tensors[0])
    for arr in tensors[1:]:
        await source.set_variable("t", arr)
    await _check_roundtrip(channel, source, format, history=True)


@pytest.mark.parametrize("format", FORMATS)
async def test_the_edge_values_and_torch(channel: grpc.aio.Channel, format: str) -> None:
    source = await fresh(channel)
    specs = (
        ("float", float("nan"), {}),
        ("float", float("-inf"), {}),
        ("float", -0.0, {}),
        ("integer", 2**63 - 1, {}),
        ("integer", -(2**63), {}),
        ("string", "ünïcødé 🚀\u2028\x85", {}),
        ("list", [1, 1.0, [2, 2.0, None], {"$float": "nan"}], {}),
        ("dict", {"$array": 1, "a": {"b": [True, 0.5]}}, {}),
        ("tensor", torch.arange(12, dtype=torch.float32).reshape(3, 4), {}),
        ("tensor", np.arange(6, dtype=">i4").reshape(2, 3), {}),
        ("embedding", np.linspace(0, 1, 768, dtype=np.float32), {"dimensions": 768}),
    )
    await _populate(source, specs)
    data = await source.export_variables(format=format)
    target = await fresh(channel)
    assert (await target.import_variables(data, format=format, allow_pickle=True))["errors"] == 0
    back = await target.get_variable("v8_tensor")
    assert isinstance(back, torch.Tensor) and torch.equal(back, specs[8][1])
    await _check_roundtrip(channel, source, format, history=True)
