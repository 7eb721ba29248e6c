"""The parquet form of an export: one row per variable, arrays as raw binary columns (pyarrow, an extra).

Columns: name, type, value (the portable JSON of a non-array value; null for arrays),
array_dtype / array_shape / array_data / array_framework (an embedding's or tensor's
little-endian bytes, uncopied by any text encoding), version, and the rest of each variable
as portable JSON text. An optimization run rides in the `optimization_runs` column of the
first exported variable it optimized (in name order, which is the document's order of runs),
so no footer grows with a long history. The document's other fields are the schema metadata
under `dspex`.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ..codec import WIRE_DTYPES, array_payload, is_torch_tensor, torch_to_numpy
from ..errors import ValidationError
from ._portable import from_portable, to_portable

_META_KEY = b"dspex"
#: Variable fields kept as portable JSON text, in the document's key order (version goes between).
_JSON_FIELDS = ("constraints", "metadata", "access_rules", "dependencies")
_LATE_JSON_FIELDS = ("history",)
_ARRAY_COLUMNS = ("array_dtype", "array_shape", "array_data", "array_framework")
_RUNS = "optimization_runs"


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValidationError(
            "the parquet format needs pyarrow: pip install 'dspex-dspy[parquet]'", rule="format"
        ) from None
    return pa, pq


def _text(value: Any) -> str:
    return json.dumps(to_portable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _runs_by_row(document: dict[str, Any]) -> list[list[Any]] | None:
    """Each row's runs: those whose first exported variable (in name order) it is."""
    if _RUNS not in document:
        return None
    rows = {var["name"]: i for i, var in enumerate(document["variables"])}
    by_row: list[list[Any]] = [[] for _ in rows]
    for run in document[_RUNS]:
        owners = sorted(name for name in run.get("variables", ()) if name in rows)
        if not owners:
            raise ValidationError(f"run {run.get('optimization_id')!r} names none of the exported variables")
        by_row[rows[owners[0]]].append(run)
    return by_row


def encode_parquet(document: dict[str, Any]) -> bytes:
    pa, pq = _pyarrow()
    columns: dict[str, list[Any]] = {
        k: [] for k in ("name", "type", "value", *_ARRAY_COLUMNS, *_JSON_FIELDS, "version", *_LATE_JSON_FIELDS, _RUNS)
    }
    present = set()
    for var in document["variables"]:
        value = var["value"]
        columns["name"].append(var["name"])
        columns["type"].append(var["type"])
        if isinstance(value, np.ndarray) or is_torch_tensor(value):
            framework = "torch" if is_torch_tensor(value) else ""
            arr = torch_to_numpy(value) if framework else value
            columns["value"].append(None)
            columns["array_dtype"].append(arr.dtype.name)
            columns["array_shape"].append(list(arr.shape))
            columns["array_data"].append(bytes(array_payload(arr)))
            columns["array_framework"].append(framework)
        else:
            columns["value"].append(_text(value))
            for key in _ARRAY_COLUMNS:
                columns[key].append(None)
        columns["version"].append(var.get("version"))
        for key in (*_JSON_FIELDS, *_LATE_JSON_FIELDS):
            if key in var:
                present.add(key)
            columns[key].append(_text(var[key]) if key in var else None)
    runs = _runs_by_row(document)
    columns[_RUNS] = [None] * len(columns["name"]) if runs is None else [_text(r) if r else None for r in runs]
    types = {"array_shape": pa.list_(pa.int64()), "array_data": pa.binary(), "version": pa.int64()}
    table = pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in columns.items()})
    header = {k: v for k, v in document.items() if k not in ("variables", _RUNS)}
    header["variable_fields"] = sorted(present)
    header["has_runs"] = runs is not None
    table = table.replace_schema_metadata({_META_KEY: _text(header).encode()})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_page_checksum=True)  # a flipped byte is caught on import
    return sink.getvalue()


def decode_parquet(data: bytes) -> dict[str, Any]:
    pa, pq = _pyarrow()
    from ._formats import ImportFormatError

    if not data.startswith(b"PAR1"):  # the footer's magic is checked by pyarrow, the leading one is not
        raise ImportFormatError("not a readable parquet export (corrupt?): it does not start with PAR1")
    try:
        table = pq.read_table(io.BytesIO(data), page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise ImportFormatError(f"not a readable parquet export (truncated or corrupt?): {exc}") from None
    meta = (table.schema.metadata or {}).get(_META_KEY)
    if meta is None:
        raise ImportFormatError("this parquet file is not a dspex export (no 'dspex' schema metadata)")
    header = from_portable(_json(meta.decode(), "schema metadata"))
    if not isinstance(header, dict):
        raise ImportFormatError("the parquet export's header is not an object")
    fields = set(header.pop("variable_fields", ()))
    has_runs = header.pop("has_runs", False) is True
    missing = {"name", "type", "value", *_ARRAY_COLUMNS, "version", _RUNS} - set(table.column_names)
    if missing:
        raise ImportFormatError(f"the parquet export lacks columns {sorted(missing)}")
    variables = []
    runs: list[Any] = []
    for row in table.to_pylist():
        var: dict[str, Any] = {"name": row["name"], "type": row["type"]}
        if row["array_dtype"] is not None:
            var["value"] = _array(row)
        else:
            var["value"] = from_portable(_json(row["value"], f"{row['name']}: value"))
        for key in _JSON_FIELDS:
            if key in fields and row.get(key) is not None:
                var[key] = from_portable(_json(row[key], f"{row['name']}: {key}"))
        if row["version"] is not None:
            var["version"] = row["version"]
        for key in _LATE_JSON_FIELDS:
            if key in fields and row.get(key) is not None:
                var[key] = from_portable(_json(row[key], f"{row['name']}: {key}"))
        if row[_RUNS] is not None:
            row_runs = from_portable(_json(row[_RUNS], f"{row['name']}: {_RUNS}"))
            if not isinstance(row_runs, list):
                raise ImportFormatError(f"{row['name']}: {_RUNS} is not a list")
            runs.extend(row_runs)
        variables.append(var)
    document = {**header, "variables": variables}
    if has_runs:
        document[_RUNS] = runs
    return document


def _json(text: Any, what: str) -> Any:
    from ._formats import ImportFormatError

    if not isinstance(text, str):
        raise ImportFormatError(f"{what}: expected JSON text")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ImportFormatError(f"{what}: corrupt JSON ({exc})") from None


def _array(row: dict[str, Any]) -> Any:
    dtype, shape, raw = row["array_dtype"], row["array_shape"], row["array_data"]
    if dtype not in WIRE_DTYPES or not isinstance(shape, list) or not isinstance(raw, bytes):
        raise ValidationError(f"{row['name']}: malformed array columns", rule="import_value")
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize != len(raw):
        raise ValidationError(
            f"{row['name']}: array of shape {shape} and dtype {dtype} does not match its {len(raw)} bytes"
        )
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
    if row.get("array_framework") == "torch":
        try:
            import torch
        except ImportError:
            return arr
        return torch.from_numpy(arr.copy())
    return arr
