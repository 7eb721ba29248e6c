"""Every type survives the wire bit-exactly: pure codec property tests, then through a real server."""

from __future__ import annotations

import math
import struct
import uuid
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bridge import SessionContext
from bridge.codec import INT64_MAX, INT64_MIN, decode, encode

floats = st.floats(allow_nan=True, allow_infinity=True)
int64s = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
texts = st.text()  # full unicode, surrogates excluded by hypothesis
scalars = st.none() | st.booleans() | int64s | floats | texts
plain = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
    max_leaves=20,
)
SHAPES = [(), (0,), (768,), (3, 4, 5)]
DTYPES = [np.float32, np.float64, np.int64]
arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: st.sampled_from(SHAPES).flatmap(lambda shape: hnp.arrays(dtype, shape))
)


def same(a: Any, b: Any) -> bool:
    """Equality that is exact about int vs float, NaN, -0.0, dtype, shape and bytes."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@given(plain)
def test_codec_roundtrips_plain_values(value: Any) -> None:
    assert same(decode(encode(value)), value)


@given(arrays)
def test_codec_roundtrips_arrays_bit_exact(arr: np.ndarray) -> None:
    back = decode(encode(arr))
    assert same(back, arr)
    assert not back.flags.writeable  # a read-only view over the received bytes: no copy


@given(floats)
def test_float_bits_survive_including_nan_payloads(x: float) -> None:
    assert struct.pack("<d", decode(encode(x))) == struct.pack("<d", x)


def test_big_endian_arrays_come_back_little_endian_with_same_values() -> None:
    arr = np.arange(6, dtype=">f8").reshape(2, 3)
    back = decode(encode(arr))
    assert back.dtype == np.float64 and back.shape == (2, 3)
    np.testing.assert_array_equal(back, arr)


def _name() -> str:
    return f"v_{uuid.uuid4().hex[:12]}"


@given(floats)
async def test_float_variable_roundtrip(session: SessionContext, x: float) -> None:
    name = _name()
    await session.register_variable(name, "float", x)
    assert same(await session.get_variable(name), x)
    await session.set_variable(name, x)
    assert same(await session.get_variable(name), x)


@given(int64s)
async def test_integer_variable_roundtrip(session: SessionContext, n: int) -> None:
    name = _name()
    await session.register_variable(name, "integer", n)
    assert same(await session.get_variable(name), n)


@given(texts)
async def test_string_variable_roundtrip(session: SessionContext, text: str) -> None:
    name = _name()
    await session.register_variable(name, "string", text)
    assert same(await session.get_variable(name), text)


@given(st.booleans())
async def test_boolean_variable_roundtrip(session: SessionContext, flag: bool) -> None:
    name = _name()
    await session.register_variable(name, "boolean", flag)
    assert same(await session.get_variable(name), flag)


@given(
    st.lists(st.text(min_size=1), min_size=1, max_size=5, unique=True).flatmap(
        lambda cs: st.tuples(st.just(cs), st.sampled_from(cs))
    )
)
async def test_choice_variable_roundtrip(session: SessionContext, case: tuple[list[str], str]) -> None:
    choices, pick = case
    name = _name()
    await session.register_variable(name, "choice", pick, constraints={"choices": choices})
    assert same(await session.get_variable(name), pick)


async def test_module_variable_roundtrip(session: SessionContext) -> None:
    await session.register_variable("strategy", "module", "dspy.ChainOfThought")
    assert await session.get_variable("strategy") == "dspy.ChainOfThought"


@given(st.lists(plain, max_size=6))
async def test_list_variable_roundtrip_keeps_int_vs_float(session: SessionContext, items: list[Any]) -> None:
    name = _name()
    await session.register_variable(name, "list", items)
    assert same(await session.get_variable(name), items)


@given(st.dictionaries(texts, plain, max_size=6))
async def test_dict_variable_roundtrip_keeps_order_and_kinds(session: SessionContext, mapping: dict[str, Any]) -> None:
    name = _name()
    await session.register_variable(name, "dict", mapping)
    assert same(await session.get_variable(name), mapping)


@given(arrays)
async def test_tensor_variable_roundtrip_bit_exact(session: SessionContext, arr: np.ndarray) -> None:
    name = _name()
    await session.register_variable(name, "tensor", arr)
    assert same(await session.get_variable(name), arr)
    await session.set_variable(name, arr)
    assert same(await session.get_variable(name), arr)


@given(
    st.sampled_from([np.float32, np.float64]).flatmap(
        lambda dtype: hnp.arrays(dtype, st.sampled_from([(0,), (768,), (5,)]))
    )
)
async def test_embedding_variable_roundtrip_bit_exact(session: SessionContext, arr: np.ndarray) -> None:
    name = _name()
    await session.register_variable(name, "embedding", arr)
    assert same(await session.get_variable(name), arr)
