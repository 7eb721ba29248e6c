"""The custom optimizer in docs/optimizers.md works as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from optimizer_support import SPACE, drive, parabola

from optimizers import BaseOptimizer

DOC = Path(__file__).resolve().parents[2] / "docs" / "optimizers.md"


def _example() -> type[BaseOptimizer]:
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "class " in block]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace["LocalSearch"]


def test_the_documented_subclass_optimizes() -> None:
    local_search = _example()
    trials = drive(local_search(SPACE, {"scale": 0.05}, seed=0), parabola, 60)
    assert abs(max(trials, key=lambda t: t.score or -1e9).candidate["x"] - 0.3) <= 0.02
    with pytest.raises(ValueError, match="accepts \\['scale'\\]"):
        local_search(SPACE, {"size": 1})
