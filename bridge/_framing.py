"""Protobuf wire framing for one bytes field, so large arrays move without extra copies.

protobuf-python copies a bytes field on every assignment, serialization, parse and
read: a 4 MiB tensor was copied about ten times per set+get, with page faults on each
fresh buffer. The wire format itself allows better: a message is a sequence of fields
in any order, and concatenating serialized messages merges them. So a sender writes the
array's bytes as a leading length-delimited field followed by the rest of the message
serialized by protobuf, and a receiver that finds that field first slices it out of the
buffer and lets protobuf parse the rest. The bytes are standard protobuf: any parser
reads them, and a message laid out any other way is simply parsed whole.

Only tags and varints are written here (protobuf-python exposes no public encoder for
them); tests check every frame against protobuf itself.
"""

from __future__ import annotations


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (protobuf's encoding of lengths, tags and uint64)."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position); ValueError if the varint is truncated or longer than 10 bytes."""
    view = memoryview(buf)
    result = shift = 0
    for i in range(pos, min(pos + 10, len(view))):
        byte = view[i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i + 1
        shift += 7
    raise ValueError("truncated or overlong varint")


def bytes_field_prefix(field_number: int, length: int) -> bytes:
    """Tag and length that precede a length-delimited field of `length` bytes."""
    return varint(field_number << 3 | 2) + varint(length)


def bytes_field_tag(field_number: int) -> bytes:
    return varint(field_number << 3 | 2)


def split_leading_field(raw: bytes, field_number: int, tag: bytes | None = None) -> tuple[memoryview | None, bytes]:
    """If `raw` starts with the given bytes field: (a view of its payload, the rest); else (None, raw).

    `tag` is `bytes_field_tag(field_number)`, for callers that precompute it.
    """
    tag = tag or bytes_field_tag(field_number)
    if not raw.startswith(tag):
        return None, raw
    try:
        length, start = read_varint(raw, len(tag))
    except ValueError:
        return None, raw
    end = start + length
    if end > len(raw):
        return None, raw
    return memoryview(raw)[start:end], raw[end:]
