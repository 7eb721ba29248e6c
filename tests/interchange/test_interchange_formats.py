"""Every value survives every format exactly; hostile, truncated and newer files are refused clearly."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
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


def _arrays_document(*values: Any) -> dict[str, Any]:
    doc = document(*values)
    for var in doc["variables"]:
        var["type"] = "tensor"
    return doc


def test_parquet_reads_a_batch_of_same_shaped_arrays_back_each_as_its_own_array() -> None:
    batch = [np.arange(i, i + 768, dtype=np.float32) for i in range(50)]
    back = [var["value"] for var in roundtrip(_arrays_document(*batch), "parquet")["variables"]]
    assert all(same(got, arr) and type(got) is np.ndarray for got, arr in zip(back, batch, strict=True))
    back[0][:] = -1  # views of one buffer, each over its own bytes
    assert all(same(got, arr) for got, arr in zip(back[1:], batch[1:], strict=True))


@pytest.mark.parametrize(
    "odd",
    [np.arange(767, dtype=np.float32), np.arange(768.0), np.zeros((0,), np.float32), np.array(1.5, np.float32), 0.5],
    ids=["shorter", "float64", "empty", "0-d", "not-an-array"],
)
def test_parquet_reads_a_mixed_batch_of_arrays_exactly(odd: Any) -> None:
    values = [np.arange(768, dtype=np.float32), odd, torch.ones(768), np.arange(768, dtype=np.float32)[::-1]]
    back = roundtrip(_arrays_document(*values), "parquet")["variables"]
    assert all(same(var["value"], value) for var, value in zip(back, values, strict=True))


def _rewritten(data: bytes, change: Any, **options: Any) -> bytes:
    """Our parquet file with its table changed by `change` (schema metadata kept), written by pyarrow."""
    table = pq.read_table(io.BytesIO(data))
    sink = io.BytesIO()
    pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), sink, **options)
    return sink.getvalue()


def test_parquet_written_in_several_row_groups_reads_back_exactly() -> None:
    values = [np.arange(i, i + 16, dtype=np.float32) for i in range(10)]
    data = _rewritten(encode(_arrays_document(*values), "parquet"), lambda t: t, row_group_size=3)
    assert all(same(v["value"], x) for v, x in zip(decode(data, "parquet")["variables"], values, strict=True))


def _column(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
    index = table.column_names.index(name)
    return table.set_column(index, name, pa.array(values, type=table.schema.field(name).type))


@pytest.mark.parametrize(
    "name,values,match",
    [
        ("array_data", [b"\0" * 64, b"\0" * 64, b"\0" * 60], "does not match its 60 bytes"),
        ("array_data", [b"\0" * 64, None, b"\0" * 64], "malformed array columns"),
        ("array_shape", [[16], [16], [-1]], "does not match"),
        ("array_dtype", ["float32", "float32", "float128"], "malformed array columns"),
    ],
    ids=["short-bytes", "no-bytes", "negative-dimension", "unknown-dtype"],
)
def test_parquet_refuses_array_columns_that_do_not_agree(name: str, values: list[Any], match: str) -> None:
    data = encode(_arrays_document(*(np.zeros(16, np.float32) for _ in range(3))), "parquet")
    with pytest.raises(ValueError, match=match):
        decode(_rewritten(data, lambda t: _column(t, name, values)), "parquet")
