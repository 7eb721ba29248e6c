"""The value strategies and exact equality of the core's round-trip tests, for the export formats."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_roundtrip", Path(__file__).parents[1] / "bridge" / "test_roundtrip.py")
assert _spec is not None and _spec.loader is not None
_roundtrip = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_roundtrip)

arrays = _roundtrip.arrays
plain = _roundtrip.plain
same = _roundtrip.same
