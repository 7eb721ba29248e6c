"""The small files that security settings name (certificates, keys, API keys): read with a bound, checked for shape.

A bound, because a path can name anything (a log, /dev/zero); a shape check, because grpc
answers a malformed PEM only with "failed to bind" or a failed handshake, far from the cause.
"""

from __future__ import annotations

import os
from pathlib import Path

#: A PEM bundle of a few hundred CA certificates is under 300 KiB.
MAX_PEM_BYTES = 1 << 20

PemSource = bytes | str | os.PathLike[str]


def read_bounded(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of `path`, refused (ValueError) past `limit` bytes; OSError names the path."""
    with Path(path).open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{what} {os.fspath(path)!r} is larger than {limit} bytes")
    return data


def load_pem(source: PemSource, what: str, marker: bytes = b"CERTIFICATE") -> bytes:
    """PEM bytes from `source`, bytes themselves or a path to read; `marker` must be on a BEGIN line."""
    data = source if isinstance(source, bytes) else read_bounded(source, MAX_PEM_BYTES, what)
    where = "" if isinstance(source, bytes) else f" {os.fspath(source)!r}"
    if b"-----BEGIN " not in data or marker + b"-----" not in data:
        raise ValueError(f"{what}{where} holds no PEM '-----BEGIN ...{marker.decode()}-----' block")
    return data
