"""`import bridge` loads exactly what the README says: grpc, protobuf and numpy (no dspy, optuna, re2, server)."""

from __future__ import annotations

import json
import subprocess
import sys

#: What `import bridge` may load beyond the standard library. grpc itself imports the top-level
#: grpc_tools/grpc_health/grpc_reflection packages (bare namespace stubs) when they are installed,
#: and its Cython runtime; protobuf and grpc use typing_extensions.
ALLOWED = {"grpc", "google", "numpy", "grpc_tools", "grpc_health", "grpc_reflection", "typing_extensions"}


def _loaded(statement: str) -> dict[str, list[str]]:
    code = (
        f"import sys, json\n{statement}\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "third = sorted(m for m in top if m not in sys.stdlib_module_names and not m.startswith('_')"
        " and m not in ('cython_runtime', 'bridge', 'dspex_bridge'))\n"
        "print(json.dumps({'third': third, 'all': sorted(sys.modules)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_import_bridge_loads_only_grpc_protobuf_numpy() -> None:
    loaded = _loaded("import bridge, dspex_bridge")
    assert set(loaded["third"]) <= ALLOWED, sorted(set(loaded["third"]) - ALLOWED)
    # Only the stubs grpc itself imports: no health or reflection service, no server.
    assert not [m for m in loaded["all"] if m.startswith(("grpc_health.", "grpc_reflection.", "bridge.server"))]


def test_import_optimizers_loads_no_dspy() -> None:
    loaded = _loaded("import optimizers")
    assert not {"dspy", "litellm"} & set(loaded["third"])


def test_spec_import_path_reexports_bridge() -> None:
    import bridge
    import dspex_bridge

    assert dspex_bridge.SessionContext is bridge.SessionContext
    assert set(dspex_bridge.__all__) == set(bridge.__all__)
