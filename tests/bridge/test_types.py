"""Coercion rules and constraints, checked locally (pure) and enforced by the server."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import ConstraintViolationError, SessionContext, UnknownTypeError, ValidationError, VariableTypeError
from bridge.types import get_type, infer_type, prepare


def coerce(type_name: str, value: object, **constraints: object) -> object:
    return prepare(type_name, value, constraints, "v")[2]


# -- the written rules (docs/types.md)


def test_an_int_is_a_valid_float_and_is_stored_as_float() -> None:
    assert type(coerce("float", 3)) is float


def test_one_and_a_half_is_not_a_valid_integer() -> None:
    with pytest.raises(ConstraintViolationError, match="not a whole number"):
        coerce("integer", 1.5)


def test_an_integral_float_is_a_valid_integer() -> None:
    assert coerce("integer", 2.0) == 2 and type(coerce("integer", 2.0)) is int


@pytest.mark.parametrize("type_name", ["integer", "float"])
def test_a_bool_is_not_a_number(type_name: str) -> None:
    with pytest.raises(VariableTypeError, match="got bool"):
        coerce(type_name, True)


def test_a_number_is_not_a_bool() -> None:
    with pytest.raises(VariableTypeError):
        coerce("boolean", 1)


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf, -0.0])
def test_special_floats_are_valid_without_bounds(x: float) -> None:
    out = coerce("float", x)
    assert math.isnan(out) if math.isnan(x) else (out == x and math.copysign(1, out) == math.copysign(1, x))


def test_nan_is_outside_every_range() -> None:
    with pytest.raises(ConstraintViolationError, match="NaN"):
        coerce("float", math.nan, min=0.0)


def test_integers_are_bounded_to_int64() -> None:
    with pytest.raises(ValueError, match="int64"):
        coerce("integer", 2**63)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(-100, 100), st.integers(0, 100))
def test_integer_bounds_property(n: int, lo: int, span: int) -> None:
    hi = lo + span
    if lo <= n <= hi:
        assert coerce("integer", n, min=lo, max=hi) == n
    else:
        with pytest.raises(ConstraintViolationError):
            coerce("integer", n, min=lo, max=hi)


@given(st.text(max_size=20), st.integers(0, 10), st.integers(0, 10))
def test_string_length_property(text: str, lo: int, extra: int) -> None:
    hi = lo + extra
    if lo <= len(text) <= hi:
        assert coerce("string", text, min_length=lo, max_length=hi) == text
    else:
        with pytest.raises(ConstraintViolationError, match="length"):
            coerce("string", text, min_length=lo, max_length=hi)


def test_string_pattern_must_match_whole_string() -> None:
    assert coerce("string", "gpt-4", pattern=r"gpt-\d") == "gpt-4"
    with pytest.raises(ConstraintViolationError, match="pattern"):
        coerce("string", "gpt-4o", pattern=r"gpt-\d")


def test_invalid_regex_is_refused_at_registration() -> None:
    with pytest.raises(ValidationError, match="not a valid RE2 pattern"):
        coerce("string", "x", pattern="(")
    with pytest.raises(ValidationError, match="backreferences"):
        coerce("string", "aa", pattern=r"(a)\1")


def test_patterns_cannot_backtrack_catastrophically() -> None:
    # Python's re needs about 2**40 steps for this; RE2 is linear in the input.
    with pytest.raises(ConstraintViolationError, match="does not match"):
        coerce("string", "a" * 40 + "c", pattern="(a+)+b?")


@pytest.mark.parametrize(
    ("type_name", "constraints", "message"),
    [
        ("tensor", {"dtype": ["float32"]}, "dtype"),
        ("list", {"item_type": ["float"]}, "must be a type name"),
        ("float", {"max": 10**400}, "finite number"),
        ("string", {"pattern": "x" * 300}, "the limit is 256"),
    ],
)
def test_malformed_constraints_are_validation_errors(type_name: str, constraints: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        prepare(type_name, None, constraints, "v")


def test_a_huge_int_is_not_a_float() -> None:
    with pytest.raises(ConstraintViolationError, match="too large for a float"):
        coerce("float", 10**400)


def test_choice_needs_choices_and_enforces_them() -> None:
    with pytest.raises(ValidationError, match="choices"):
        coerce("choice", "a")
    with pytest.raises(ConstraintViolationError, match="not one of"):
        coerce("choice", "c", choices=["a", "b"])


def test_module_is_a_dotted_reference_optionally_from_choices() -> None:
    assert coerce("module", "dspy.Predict") == "dspy.Predict"
    with pytest.raises(ConstraintViolationError):
        coerce("module", "not a module")
    with pytest.raises(ConstraintViolationError, match="not one of"):
        coerce("module", "ReAct", choices=["Predict"])


def test_embedding_normalize_stores_the_unit_vector_and_keeps_dtype() -> None:
    out = coerce("embedding", np.array([3.0, 4.0], dtype=np.float32), normalize=True, dimensions=2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.6, 0.8], rtol=1e-6)


def test_embedding_dimensions_and_rank() -> None:
    with pytest.raises(ConstraintViolationError, match="dimensions"):
        coerce("embedding", np.zeros(3), dimensions=4)
    with pytest.raises(ConstraintViolationError, match="1-d"):
        coerce("embedding", np.zeros((2, 2)))


def test_embedding_from_list_of_ints_becomes_float64() -> None:
    assert coerce("embedding", [1, 2, 3]).dtype == np.float64


def test_tensor_shape_and_dtype_constraints() -> None:
    arr = np.zeros((2, 3), dtype=np.float32)
    assert coerce("tensor", arr, shape=[-1, 3]).shape == (2, 3)
    assert coerce("tensor", arr, dtype="float64").dtype == np.float64  # safe cast
    with pytest.raises(ConstraintViolationError, match="shape"):
        coerce("tensor", arr, shape=[3, 2])
    with pytest.raises(ConstraintViolationError, match="safely cast"):
        coerce("tensor", np.zeros(2), dtype="int32")


def test_object_arrays_are_refused() -> None:
    with pytest.raises(VariableTypeError):
        coerce("tensor", np.array([object()]))


def test_list_item_type_and_length() -> None:
    assert coerce("list", (1, 2), item_type="float") == [1.0, 2.0]
    with pytest.raises(VariableTypeError):
        coerce("list", ["a"], item_type="integer")
    with pytest.raises(ConstraintViolationError, match="max_length"):
        coerce("list", [1, 2, 3], max_length=2)


def test_dict_keys_become_strings_and_collisions_are_refused() -> None:
    assert coerce("dict", {1: "a", "b": 2}) == {"1": "a", "b": 2}
    with pytest.raises(ConstraintViolationError, match="both become"):
        coerce("dict", {1: "a", "1": "b"})


def test_map_is_an_alias_of_dict() -> None:
    assert get_type("map").name == "dict"


def test_unknown_constraint_is_named() -> None:
    with pytest.raises(ValidationError, match=r"unknown constraint\(s\) \['maximum'\]"):
        coerce("float", 1.0, maximum=2.0)


def test_unknown_type_lists_known_types() -> None:
    with pytest.raises(UnknownTypeError, match="known types: float, integer"):
        get_type("decimal")


def test_none_needs_nullable() -> None:
    with pytest.raises(VariableTypeError, match="nullable"):
        coerce("string", None)
    assert coerce("string", None, nullable=True) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "boolean"),
        (3, "integer"),
        (3.0, "float"),
        ("s", "string"),
        ([1], "list"),
        ({"a": 1}, "dict"),
        (np.zeros(3), "tensor"),
    ],
)
def test_type_inference(value: object, expected: str) -> None:
    assert infer_type(value) == expected


def test_type_inference_failure_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="type_hint"):
        infer_type(object())


# -- through the server


async def test_server_stores_coerced_values(session: SessionContext) -> None:
    await session.register_variable("t", "float", 1)
    assert type(await session.get_variable("t")) is float
    await session.register_variable("e", "embedding", [3.0, 4.0], constraints={"normalize": True})
    np.testing.assert_allclose(await session.get_variable("e"), [0.6, 0.8])


async def test_stored_none_is_returned_not_confused_with_missing(session: SessionContext) -> None:
    await session.register_variable("maybe", "string", None, constraints={"nullable": True})
    assert await session.get_variable("maybe") is None
    assert await session.get_variable("maybe", default="fallback") is None  # a stored None is a value
    with pytest.raises(KeyError):
        await session.get_variable("absent")
    with pytest.raises(KeyError):
        await session.get_variable("absent", default=None)  # the spec: "None raises KeyError"
    assert await session.get_variable("absent", default=0) == 0


async def test_create_if_missing_infers_type_or_raises_type_error(session: SessionContext) -> None:
    await session.set_variable("count", 3, create_if_missing=True)
    [info] = await session.list_variables("count")
    assert info["type"] == "integer"
    with pytest.raises(TypeError, match="type_hint"):
        await session.set_variable("thing", object(), create_if_missing=True)


async def test_torch_tensors_come_back_as_torch(session: SessionContext) -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    await session.register_variable("weights", "tensor", t)
    back = await session.get_variable("weights")
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32 and back.shape == (2, 3)
    assert torch.equal(back, t)
    await session.set_variable("weights", np.ones((2, 3), dtype=np.float32))
    assert isinstance(await session.get_variable("weights"), np.ndarray)
