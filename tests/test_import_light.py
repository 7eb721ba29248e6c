"""`import bridge` stays light: no dspy, no optuna, no torch, no server modules."""

from __future__ import annotations

import subprocess
import sys


def test_import_bridge_pulls_in_nothing_heavy() -> None:
    code = (
        "import sys, bridge, dspex_bridge\n"
        "heavy = {'dspy', 'optuna', 'torch', 'pandas', 'litellm'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_spec_import_path_reexports_bridge() -> None:
    import bridge
    import dspex_bridge

    assert dspex_bridge.SessionContext is bridge.SessionContext
    assert set(dspex_bridge.__all__) == set(bridge.__all__)
