"""docs/dspy.md's table of mapping names is what the code accepts, teleprompter by teleprompter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dspy import teleprompt

from dspex_dspy import parameters

DOC = Path(__file__).resolve().parents[2] / "docs" / "dspy.md"


def _rows() -> dict[str, tuple[str, str]]:
    text = DOC.read_text()
    table = text[text.index("| teleprompter | its parameters") :].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        name, real, derived = (cell.strip() for cell in line.strip("|").split("|"))
        rows[name.strip("`")] = (real, derived)
    return rows


ROWS = _rows()


@pytest.mark.parametrize("name", list(ROWS))
def test_the_table_lists_each_name_with_its_kind_and_target(name: str) -> None:
    real, derived = ROWS[name]
    table = parameters(getattr(teleprompt, name))
    documented = {}
    for group in real.split(" · "):
        kind, names = group.split(": ", 1)
        for entry in names.split(", "):
            documented[entry.strip("`†")] = (kind, entry.endswith("†"))
    assert documented == {p.name: (p.kind, p.stage == "compile") for p in table.values() if p.stage != "derived"}
    targets = dict(re.findall(r"`(\w+)` → `([^`]+)`", derived))
    assert targets == {p.name: p.target for p in table.values() if p.stage == "derived"}
