"""Every value survives every format exactly; hostile, truncated and newer files are refused clearly."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from interchange_support import arrays, plain, same

from bridge.interchange import FORMATS, ImportFormatError, check_document, decode, encode

TEXT_FORMATS = [f for f in FORMATS if f != "pickle"]
END = b', "end_of_export": true}'


def document(*values: Any) -> dict[str, Any]:
    return {
        "format": "dspex-variables",
        "format_version": 1,
        "session_id": "s",
        "revision": 3,
        "exported_at": "2026-12-01T00:00:00+00:00",
        "variables": [
            {"name": f"v{i}", "type": "dict", "value": v, "constraints": {"min": float("-inf")}, "metadata": {"k": i}}
            for i, v in enumerate(values)
        ],
    }


def roundtrip(doc: dict[str, Any], format: str) -> dict[str, Any]:
    return decode(encode(doc, format), format, allow_pickle=True)


@pytest.mark.parametrize("format", FORMATS)
@given(value=plain)
def test_plain_values_roundtrip_exactly(format: str, value: Any) -> None:
    back = roundtrip(document(value), format)
    assert same(back["variables"][0]["value"], value)
    assert back["variables"][0]["constraints"]["min"] == float("-inf")


@pytest.mark.parametrize("format", FORMATS)
@given(arr=arrays)
def test_arrays_roundtrip_bit_exact_with_dtype_and_shape(format: str, arr: np.ndarray) -> None:
    back = roundtrip(document(arr), format)["variables"][0]["value"]
    assert same(back, arr)


@pytest.mark.parametrize("format", FORMATS)
def test_the_edge_values(format: str) -> None:
    values = [
        float("nan"), float("inf"), float("-inf"), -0.0, 1.0, 1, [1, 1.0, [2, 2.0]], {"a": 1, "b": 1.0},
        2**63 - 1, -(2**63), "ünïcødé 🚀", {"$float": "nan"}, {"$weird": 1}, None, True,
    ]  # fmt: skip
    back = roundtrip(document(*values), format)
    for var, value in zip(back["variables"], values, strict=True):
        assert same(var["value"], value), (format, value)


@pytest.mark.parametrize("format", FORMATS)
def test_torch_tensors_come_back_as_torch(format: str) -> None:
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    back = roundtrip(document(tensor, np.arange(3)), format)["variables"]
    assert isinstance(back[0]["value"], torch.Tensor) and torch.equal(back[0]["value"], tensor)
    assert isinstance(back[1]["value"], np.ndarray)


@pytest.mark.parametrize("format", TEXT_FORMATS)
def test_encoding_is_deterministic(format: str) -> None:
    doc = document(0.5, np.arange(4.0), {"x": [1, 2.5]})
    assert encode(doc, format) == encode(doc, format)


def test_pickle_is_refused_without_opt_in() -> None:
    data = encode(document(1), "pickle")
    with pytest.raises(ValueError, match="refusing to load pickle data: unpickling can run arbitrary code"):
        decode(data, "pickle")


def test_even_an_allowed_pickle_loads_plain_data_only() -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    with pytest.raises(ImportFormatError, match=r"references builtins.print"):
        decode(pickle.dumps({"format": "dspex-variables", "x": Evil()}), "pickle", allow_pickle=True)


@pytest.mark.parametrize("format", FORMATS)
def test_truncated_data_is_refused(format: str) -> None:
    data = encode(document(np.arange(100.0), {"a": [1, 2, 3]}), format)
    with pytest.raises(ValueError, match=r"truncated|corrupt|not an export|not a dspex"):
        check_document(decode(data[: len(data) // 2], format, allow_pickle=True))


@pytest.mark.parametrize(
    "format,data,match",
    [
        ("json", b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        ("json", b'{"format": "dspex-variables", "v": ' + b'{"a":' * 60 + b"1" + b"}" * 60 + END, "nests deeper"),
        ("yaml", b"a: &a [x, x]\nb: [*a, *a, *a]\n", "aliases are not allowed"),
        ("yaml", b"!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
        ("json", b'{"v": {"$array": {"dtype": "float64", "shape": [100000000000], "data": ""}}' + END, "needs 8000"),
        ("json", b'{"v": {"$float": "huge"}' + END, "unknown \\$float"),
        ("json", b'{"format": "dspex-variables", "variables": []}', "truncated: the export's closing"),
        ("parquet", b"PAR1 not really", "not a readable parquet"),
        ("json", b"\xff\xfe", "not valid JSON"),
    ],
    ids=[
        "deep-json",
        "deep-value",
        "yaml-alias-bomb",
        "yaml-python-tag",
        "huge-array",
        "bad-tag",
        "no-end-mark",
        "parquet",
        "bytes",
    ],
)
def test_hostile_data_is_refused_with_a_clear_error(format: str, data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode(data, format)


def test_a_newer_format_version_is_refused() -> None:
    doc = {**document(1), "format_version": 2}
    with pytest.raises(ValueError, match="format_version 2, newer than the 1 this dspex-dspy reads; upgrade"):
        check_document(roundtrip(doc, "json"))


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'; supported: json, yaml, pickle, parquet"):
        encode(document(1), "xml")
