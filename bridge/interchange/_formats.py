"""An export document <-> bytes, in json, yaml, pickle (loaded only when asked to) or parquet.

The document is plain data around Python values (see `_document`); json and yaml carry the
values in their portable form (`_portable`), parquet keeps arrays as raw binary columns.
Loading is defensive: sizes and nesting are bounded, YAML aliases and tags are refused, a
pickle is never loaded unless the caller passes `allow_pickle=True`, and even then only
plain data (no class is ever looked up).
"""

from __future__ import annotations

import io
import json
import pickle
from typing import Any

import yaml

from ..errors import ValidationError
from ._portable import from_portable, to_portable

FORMATS = ("json", "yaml", "pickle", "parquet")
#: The last key of a json/yaml/pickle export: a file cut short lacks it.
END_MARK = "end_of_export"
#: Largest input any format is read from (an export of 100,000 variables with history fits).
MAX_IMPORT_BYTES = 1 << 30


class ImportFormatError(ValidationError):
    """The data is not a readable export in the format given (truncated, corrupt or hostile)."""

    kind = "validation_error"


def check_format(format: str) -> str:
    if format not in FORMATS:
        raise ValidationError(f"unknown format {format!r}; supported: {', '.join(FORMATS)}", rule="format")
    return format


def encode(document: dict[str, Any], format: str) -> bytes:
    check_format(format)
    if format == "parquet":
        from ._parquet import encode_parquet

        return encode_parquet(document)
    portable = to_portable({**document, END_MARK: True}, limits=_DOCUMENT_LIMITS)  # the mark is written last
    if format == "json":
        return json.dumps(portable, ensure_ascii=False, indent=2, allow_nan=False).encode() + b"\n"
    if format == "yaml":
        return yaml.dump(portable, Dumper=_PlainDumper, allow_unicode=True, sort_keys=False, width=120).encode()
    return pickle.dumps(portable, protocol=5)


def decode(data: bytes, format: str, *, allow_pickle: bool = False) -> dict[str, Any]:
    """The document in `data`; ImportFormatError saying what is wrong with it otherwise."""
    check_format(format)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationError(f"import data must be bytes, got {type(data).__name__}", rule="import_data")
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportFormatError(f"{format} data of {len(data)} bytes exceeds the {MAX_IMPORT_BYTES}-byte limit")
    if format == "parquet":
        from ._parquet import decode_parquet

        return decode_parquet(bytes(data))
    if format == "pickle" and not allow_pickle:
        raise ValidationError(
            "refusing to load pickle data: unpickling can run arbitrary code. Pass allow_pickle=True only for "
            "data you created yourself, or export as json, yaml or parquet instead",
            rule="allow_pickle",
        )
    try:
        portable = _load(bytes(data), format)
    except RecursionError:
        raise ImportFormatError(f"{format} data nests too deeply to be an export") from None
    if not isinstance(portable, dict):
        raise ImportFormatError(f"{format} data is not an export document (got {type(portable).__name__})")
    if portable.pop(END_MARK, None) is not True:  # YAML cut short can still parse: the last key tells
        raise ImportFormatError(f"{format} data is truncated: the export's closing {END_MARK!r} mark is missing")
    try:
        return from_portable(portable, limits=_DOCUMENT_LIMITS)
    except RecursionError:
        raise ImportFormatError(f"{format} data nests too deeply to be an export") from None


def _load(data: bytes, format: str) -> Any:
    try:
        if format == "json":
            return json.loads(data)
        if format == "yaml":
            return yaml.load(data, Loader=_PlainLoader)
        return _PlainUnpickler(io.BytesIO(data)).load()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportFormatError(f"not valid JSON (truncated or corrupt?): {exc}") from None
    except yaml.YAMLError as exc:
        raise ImportFormatError(f"not valid YAML for an export (truncated, corrupt or hostile?): {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise ImportFormatError(
            f"not a readable pickle of plain data (truncated, corrupt or hostile?): {exc}"
        ) from None


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without aliases: an export never needs them, and they allow billion-laughs expansion."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed in an export", event.start_mark)
        return super().compose_node(parent, index)


class _PlainDumper(yaml.SafeDumper):
    """SafeDumper that double-quotes strings YAML would otherwise normalise (NEL, line separators, CR...)."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    risky = not text.isprintable() or any(c in text for c in "\x85\u2028\u2029\ufeff")
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"' if risky else None)


_PlainDumper.add_representer(str, _represent_str)


class _PlainUnpickler(pickle.Unpickler):
    """Loads dicts, lists, strings and numbers only: any class or function in the data is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the data references {module}.{name}; an export holds plain data only")


class _Limits:
    """Documents nest deeper than values (document -> variables -> variable -> history -> value)."""

    max_nesting_depth = 40
    max_list_items = 10_000_000


_DOCUMENT_LIMITS: Any = _Limits()
