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
Pages are checksummed (a flipped byte fails the import). The text columns are
zstd-compressed; the array column is snappy-compressed (pyarrow's default codec), since zstd
saves little on floats (7 % on random float32) for twice the time of the whole write and
read, and skips dictionary encoding, which never pays for distinct blobs.
"""

from __future__ import annotations

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
_COLUMNS = ("name", "type", "value", "array_dtype", "array_shape", "array_data", "array_framework")
_COLUMNS += (*_JSON_FIELDS, "version", *_LATE_JSON_FIELDS, _RUNS)
_LITTLE = {name: np.dtype(name).newbyteorder("<") for name in WIRE_DTYPES}
#: How the file is written (`pq.write_table` options); benchmarks.interchange times pyarrow with them too.
WRITE_OPTIONS: dict[str, Any] = {
    "compression": {**{k: "zstd" for k in _COLUMNS}, "array_data": "snappy"},
    "use_dictionary": [k for k in _COLUMNS if k != "array_data"],
    "write_page_checksum": True,  # a flipped byte is caught on import
}
_NO_ARRAY = (None, None, None, None)


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
    """Column by column: each column is one pass over the variables."""
    pa, pq = _pyarrow()
    variables = document["variables"]
    array_rows = [_array_row(var["value"]) for var in variables]
    dtypes, shapes, frameworks, payloads = zip(*array_rows, strict=True) if array_rows else ((),) * 4
    columns: dict[str, Any] = {
        "name": [var["name"] for var in variables],
        "type": [var["type"] for var in variables],
        "value": [
            _text(var["value"]) if row is _NO_ARRAY else None for var, row in zip(variables, array_rows, strict=True)
        ],
        "array_dtype": dtypes,
        "array_framework": frameworks,
    }
    present = []
    for key in (*_JSON_FIELDS, *_LATE_JSON_FIELDS):
        texts = [_text(var[key]) if key in var else None for var in variables]
        if any(text is not None for text in texts):
            present.append(key)
        columns[key] = texts
    runs = _runs_by_row(document)
    columns[_RUNS] = [None] * len(variables) if runs is None else [_text(r) if r else None for r in runs]
    arrow = {k: pa.array(v, type=pa.string()) for k, v in columns.items()}
    arrow["array_shape"] = pa.array(shapes, type=pa.list_(pa.int64()))
    arrow["version"] = pa.array([var.get("version") for var in variables], type=pa.int64())
    arrow["array_data"] = _binary_column(pa, payloads)
    table = pa.table({k: arrow[k] for k in _COLUMNS})
    header = {k: v for k, v in document.items() if k not in ("variables", _RUNS)}
    header["variable_fields"] = sorted(present)
    header["has_runs"] = runs is not None
    table = table.replace_schema_metadata({_META_KEY: _text(header).encode()})
    sink = pa.BufferOutputStream()  # pyarrow's own buffer: a BytesIO is written through Python, page by page
    pq.write_table(table, sink, **WRITE_OPTIONS)
    return sink.getvalue().to_pybytes()


def _array_row(value: Any) -> tuple[Any, Any, Any, Any]:
    """An array's dtype, shape, framework and little-endian bytes; `_NO_ARRAY` for any other value."""
    if isinstance(value, np.ndarray):
        dtype, payload = array_bytes(value)
        return dtype, value.shape, "", payload
    if is_torch_tensor(value):
        arr = torch_to_numpy(value)
        dtype, payload = array_bytes(arr)
        return dtype, arr.shape, "torch", payload
    return _NO_ARRAY


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
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)  # read in place
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
    arrays = _arrays(pa, table.column("array_data"), col["name"], col["array_dtype"], col["array_shape"])
    early = [(key, col[key]) for key in _JSON_FIELDS if key in fields]
    late = [(key, col[key]) for key in _LATE_JSON_FIELDS if key in fields]
    variables = []
    runs: list[Any] = []
    rows = zip(
        col["name"], col["type"], col["value"], arrays, col["array_framework"], col["version"], col[_RUNS], strict=True
    )
    for i, (name, type_, text, array, framework, version, row_runs) in enumerate(rows):
        var: dict[str, Any] = {"name": name, "type": type_}
        if array is not None:
            var["value"] = _torch(array) if framework == "torch" else array
        else:
            var["value"] = _field(text, name, "value")
        for key, texts in early:
            if texts[i] is not None:
                var[key] = _field(texts[i], name, key)
        if version is not None:
            var["version"] = version
        for key, texts in late:
            if texts[i] is not None:
                var[key] = _field(texts[i], name, key)
        if row_runs is not None:
            these = _field(row_runs, name, _RUNS)
            if not isinstance(these, list):
                raise ImportFormatError(f"{name}: {_RUNS} is not a list")
            runs.extend(these)
        variables.append(var)
    document = {**header, "variables": variables}
    if has_runs:
        document[_RUNS] = runs
    return document


def _arrays(pa: Any, column: Any, names: list[Any], dtypes: list[Any], shapes: list[Any]) -> list[np.ndarray | None]:
    """Each row's array (None for a row without a dtype), as a view of the column's one buffer."""
    if column.type not in (pa.binary(), pa.large_binary()):
        raise ImportFormatError(f"the parquet export's array_data column is {column.type}, not binary")
    chunk = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()  # several: copied into one
    _, offsets_buf, data_buf = chunk.buffers()
    width = np.int64 if chunk.type == pa.large_binary() else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[chunk.offset : chunk.offset + len(chunk) + 1]
    raw = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    block = _block(chunk, offsets, raw, dtypes, shapes)
    if block is not None:
        return list(block)
    valid = chunk.is_valid().to_numpy(zero_copy_only=False)
    return [
        None if dtype is None else _array(name, dtype, shape, raw[offsets[i] : offsets[i + 1]] if valid[i] else None)
        for i, (name, dtype, shape) in enumerate(zip(names, dtypes, shapes, strict=True))
    ]


def _block(chunk: Any, offsets: np.ndarray, raw: np.ndarray, dtypes: list[Any], shapes: list[Any]) -> Any:
    """Every row's array as one (rows, *shape) view, when all rows hold non-empty arrays of one dtype and
    shape (a batch of embeddings); None otherwise, and each row is read on its own."""
    if not dtypes or chunk.null_count or dtypes.count(dtypes[0]) != len(dtypes):
        return None
    little, shape = _LITTLE.get(dtypes[0]), shapes[0]
    if little is None or not isinstance(shape, list) or shapes.count(shape) != len(shapes):
        return None
    if not shape or not all(type(d) is int and d > 0 for d in shape):  # a 0-d row would come back a scalar
        return None
    size = math.prod(shape) * little.itemsize
    if not np.array_equal(np.diff(offsets), np.full(len(dtypes), size)):
        return None
    return raw[offsets[0] : offsets[-1]].view(little).reshape(len(dtypes), *shape)


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
    little = _LITTLE.get(dtype)
    if little is None or not isinstance(shape, list) or raw is None:
        raise ValidationError(f"{name}: malformed array columns", rule="import_value")
    if min(shape, default=0) < 0 or math.prod(shape) * little.itemsize != raw.nbytes:
        raise ValidationError(f"{name}: array of shape {shape} and dtype {dtype} does not match its {raw.nbytes} bytes")
    return raw.view(little).reshape(shape) if raw.nbytes else np.empty(shape, dtype=little)


def _torch(arr: np.ndarray) -> Any:
    try:
        import torch
    except ImportError:
        return arr
    return torch.from_numpy(arr.copy())
