"""Shared by the interchange tests: the core's value strategies and exact equality, and export helpers."""

from __future__ import annotations

import importlib.util
import re
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import torch

from bridge import SessionContext
from bridge.interchange import VOLATILE_FIELDS, decode, encode


def core_tests(name: str) -> ModuleType:
    """A module of tests/bridge (whose strategies these tests reuse), loaded by path: test dirs are not packages."""
    spec = importlib.util.spec_from_file_location(f"_{name}", Path(__file__).parents[1] / "bridge" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_roundtrip = core_tests("test_roundtrip")

arrays = _roundtrip.arrays
plain = _roundtrip.plain
int64s = _roundtrip.int64s
floats = _roundtrip.floats
texts = _roundtrip.texts
_same = _roundtrip.same

FORMATS = ("json", "yaml", "pickle", "parquet")
#: The formats whose bytes an export -> import -> export keeps (pickle is not a format to diff).
DIFFABLE = ("json", "yaml", "parquet")


def same(a: Any, b: Any) -> bool:
    """`same` of the core's round-trip tests, with torch tensors (at any depth) compared as exactly as arrays."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return _same(a, b)


def fixed_volatile(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the fields an export documents as volatile set to fixed values."""
    return {**document, "session_id": "s", "revision": 0, "exported_at": "2026-01-01T00:00:00+00:00"}


_TEXT_VOLATILE = re.compile(rf'^(  "|)({"|".join(VOLATILE_FIELDS)})("?): .*$', re.M)


def without_volatile(data: bytes, format: str) -> bytes:
    """Bytes to compare two exports by: json/yaml with the volatile lines blanked in place (the
    rest of the bytes as written); parquet re-encoded with them fixed (they are in its footer)."""
    if format in ("json", "yaml"):
        return _TEXT_VOLATILE.sub(r"\1\2\3: -", data.decode()).encode()
    return encode(fixed_volatile(decode(data, format, allow_pickle=True)), format)


async def fresh(channel: grpc.aio.Channel) -> SessionContext:
    return await SessionContext(f"t_{uuid.uuid4().hex[:10]}", channel).initialize()


def document_of(data: bytes, format: str) -> dict[str, Any]:
    return decode(data, format, allow_pickle=True)


def value_of(document: dict[str, Any], name: str) -> Any:
    return next(v["value"] for v in document["variables"] if v["name"] == name)
