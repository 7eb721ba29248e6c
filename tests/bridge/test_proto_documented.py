"""Every message, field, enum value and RPC of the wire contract carries a comment."""

from __future__ import annotations

import re
from pathlib import Path

PROTO = Path(__file__).resolve().parents[2] / "bridge" / "proto" / "dspex_bridge" / "v1" / "bridge.proto"
DECL = re.compile(r"^\s*(message|enum|rpc|service|oneof)\b|^\s*(repeated\s+|map<[^>]+>\s+)?[\w.]+\s+\w+\s*=\s*\d+;")


def test_every_declaration_is_commented() -> None:
    lines = PROTO.read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        if not DECL.search(line) or line.strip().startswith(("oneof", "service")):
            continue
        trailing = "//" in line
        preceding = i > 0 and lines[i - 1].strip().startswith("//")
        if not (trailing or preceding):
            undocumented.append(f"{i + 1}: {line.strip()}")
    assert not undocumented, "undocumented in bridge.proto:\n" + "\n".join(undocumented)
