"""The parquet form of an export: one row per variable, arrays as raw binary columns (pyarrow, an extra).

Columns: name, type, value (the portable JSON of a non-array value; null for arrays),
array_dtype / array_shape / array_data / array_framework (an embedding's or tensor's
little-endian bytes, uncopied by any text encoding), version, and the rest of each variable
as portable JSON text. An optimization run rides in the `optimization_runs` column of the
first exported variable it optimized (in name order, which is the document's order of runs),
so no footer grows with a long history. The document's other fields are the schema metadata
under `dspex`.

Columns are built and read whole: the array bytes go into one buffer and come back as views
of it, so a thousand embeddings cost about what pyarrow's own write and read of them do.
Pages are zstd-compressed and checksummed (a flipped byte fails the import); the array
column skips dictionary encoding, which never pays for distinct blobs.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np

from ..codec import WIRE_DTYPES, is_torch_tensor, torch_to_numpy
from ..errors import ValidationError
from ._formats import ImportFormatError
from ._portable import array_bytes, from_portable, to_portable

_META_KEY = b"dspex"
#: Variable fields kept as portable JSON text, in the document's key order (version goes between).
_JSON_FIELDS = ("constraints", "metadata", "access_rules", "dependencies")
_LATE_JSON_FIELDS = ("history",)
_RUNS = "optimization_runs"
_TEXT_COLUMNS = ("name", "type", "value", "array_dtype", "array_framework", *_JSON_FIELDS, *_LATE_JSON_FIELDS, _RUNS)
_COLUMNS = ("name", "type", "value", "array_dtype", "array_shape", "array_data", "array_framework")
_COLUMNS += (*_JSON_FIELDS, "version", *_LATE_JSON_FIELDS, _RUNS)
_LITTLE = {name: np.dtype(name).newbyteorder("<") for name in WIRE_DTYPES}


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
    if not value and type(value) in (dict, list):  # the commonest constraints, metadata and rules
        return "{}" if type(value) is dict else "[]"
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
    columns: dict[str, list[Any]] = {k: [] for k in _COLUMNS if k != "array_data"}
    payloads: list[Any] = []
    present = set()
    for var in document["variables"]:
        value = var["value"]
        columns["name"].append(var["name"])
        columns["type"].append(var["type"])
        if isinstance(value, np.ndarray) or is_torch_tensor(value):
            framework = "torch" if is_torch_tensor(value) else ""
            arr = torch_to_numpy(value) if framework else value
            dtype, payload = array_bytes(arr)
            columns["value"].append(None)
            columns["array_dtype"].append(dtype)
            columns["array_shape"].append(arr.shape)
            columns["array_framework"].append(framework)
            payloads.append(payload)
        else:
            columns["value"].append(_text(value))
            for key in ("array_dtype", "array_shape", "array_framework"):
                columns[key].append(None)
            payloads.append(None)
        columns["version"].append(var.get("version"))
        for key in (*_JSON_FIELDS, *_LATE_JSON_FIELDS):
            if key in var:
                present.add(key)
                columns[key].append(_text(var[key]))
            else:
                columns[key].append(None)
    runs = _runs_by_row(document)
    columns[_RUNS] = [None] * len(payloads) if runs is None else [_text(r) if r else None for r in runs]
    arrays = {k: pa.array(v, type=pa.string()) for k, v in columns.items() if k in _TEXT_COLUMNS}
    arrays["array_shape"] = pa.array(columns["array_shape"], type=pa.list_(pa.int64()))
    arrays["version"] = pa.array(columns["version"], type=pa.int64())
    arrays["array_data"] = _binary_column(pa, payloads)
    table = pa.table({k: arrays[k] for k in _COLUMNS})
    header = {k: v for k, v in document.items() if k not in ("variables", _RUNS)}
    header["variable_fields"] = sorted(present)
    header["has_runs"] = runs is not None
    table = table.replace_schema_metadata({_META_KEY: _text(header).encode()})
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=[k for k in _COLUMNS if k != "array_data"],
        write_page_checksum=True,  # a flipped byte is caught on import
    )
    return sink.getvalue()


def _binary_column(pa: Any, payloads: list[Any]) -> Any:
    """One large_binary column over one buffer of every array's bytes (nulls for rows without one)."""
    present = np.fromiter((p is not None for p in payloads), dtype=bool, count=len(payloads))
    offsets = np.zeros(len(payloads) + 1, dtype=np.int64)
    np.cumsum([len(p) if p is not None else 0 for p in payloads], out=offsets[1:])
    data = b"".join(p for p in payloads if p is not None)
    validity = pa.py_buffer(np.packbits(present, bitorder="little").tobytes())
    nulls = len(payloads) - int(present.sum())
    return pa.Array.from_buffers(
        pa.large_binary(), len(payloads), [validity, pa.py_buffer(offsets), pa.py_buffer(data)], nulls
    )


def decode_parquet(data: bytes) -> dict[str, Any]:
    pa, pq = _pyarrow()
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
    missing = set(_COLUMNS) - set(table.column_names)
    if missing:
        raise ImportFormatError(f"the parquet export lacks columns {sorted(missing)}")
    col = {k: table.column(k).to_pylist() for k in _COLUMNS if k != "array_data"}
    payloads = _payloads(pa, table.column("array_data"))
    early = [(key, col[key]) for key in _JSON_FIELDS if key in fields]
    late = [(key, col[key]) for key in _LATE_JSON_FIELDS if key in fields]
    dtypes, shapes, frameworks, values = col["array_dtype"], col["array_shape"], col["array_framework"], col["value"]
    versions, row_runs = col["version"], col[_RUNS]
    variables = []
    runs: list[Any] = []
    for i, (name, type_) in enumerate(zip(col["name"], col["type"], strict=True)):
        var: dict[str, Any] = {"name": name, "type": type_}
        if dtypes[i] is not None:
            value = _array(name, dtypes[i], shapes[i], payloads[i])
            var["value"] = _torch(value) if frameworks[i] == "torch" else value
        else:
            var["value"] = _field(values[i], name, "value")
        for key, texts in early:
            if texts[i] is not None:
                var[key] = _field(texts[i], name, key)
        if versions[i] is not None:
            var["version"] = versions[i]
        for key, texts in late:
            if texts[i] is not None:
                var[key] = _field(texts[i], name, key)
        if row_runs[i] is not None:
            these = _field(row_runs[i], name, _RUNS)
            if not isinstance(these, list):
                raise ImportFormatError(f"{name}: {_RUNS} is not a list")
            runs.extend(these)
        variables.append(var)
    document = {**header, "variables": variables}
    if has_runs:
        document[_RUNS] = runs
    return document


def _payloads(pa: Any, column: Any) -> list[np.ndarray | None]:
    """Each row's array bytes, as read-only views of the column's one buffer (None where there is none)."""
    if column.type not in (pa.binary(), pa.large_binary()):
        raise ImportFormatError(f"the parquet export's array_data column is {column.type}, not binary")
    out: list[np.ndarray | None] = []
    for chunk in column.chunks:
        _, offsets_buf, data_buf = chunk.buffers()
        width = np.int64 if chunk.type == pa.large_binary() else np.int32
        offsets = np.frombuffer(offsets_buf, dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
        raw = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        out.extend(raw[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(chunk)))
    return out


def _field(text: Any, name: str, key: str) -> Any:
    """A variable's field kept as portable JSON text."""
    if text == "{}" or text == "[]":  # the commonest constraints, metadata and rules
        return {} if text == "{}" else []
    return from_portable(_json(text, f"{name}: {key}"))


def _json(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise ImportFormatError(f"{what}: expected JSON text")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ImportFormatError(f"{what}: corrupt JSON ({exc})") from None


def _array(name: str, dtype: Any, shape: Any, raw: np.ndarray | None) -> np.ndarray:
    if dtype not in WIRE_DTYPES or not isinstance(shape, list) or raw is None:
        raise ValidationError(f"{name}: malformed array columns", rule="import_value")
    little = _LITTLE[dtype]
    if any(d < 0 for d in shape) or math.prod(shape) * little.itemsize != raw.nbytes:
        raise ValidationError(f"{name}: array of shape {shape} and dtype {dtype} does not match its {raw.nbytes} bytes")
    return raw.view(little).reshape(shape) if raw.nbytes else np.empty(shape, dtype=little)


def _torch(arr: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return arr
    return torch.from_numpy(arr.copy())
