"""Watching from a notebook: top-level `async for` and `await` in a real Jupyter kernel."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

CELLS = [
    """
import asyncio
from dspex_bridge import BridgeServer, SessionContext, connect

server = await BridgeServer().start()
channel = connect(server.address)
session = await SessionContext("notebook", channel).initialize()
await session.register_variable("progress", "float", 0.0)
""",
    """
watch = session.watch_variable("progress")
await watch.started()
for p in (25.0, 50.0, 100.0):
    await session.set_variable("progress", p)
""",
    """
seen = []
async for update in watch:
    seen.append((update.kind, update.value))
    if update.value == 100.0:
        break
print(seen)
""",
    """
watch_task = asyncio.create_task(session.watch_variable("progress"))
await asyncio.wait_for(server.servicer.watches.wait_for_count(2), 10)
session.cancel_watch(watch_task)
watch.close()
await asyncio.wait_for(server.servicer.watches.wait_for_count(0), 10)
print("open watches:", server.servicer.watches.count)
await session.close()
await channel.close()
await server.stop(1)
""",
]


def test_a_notebook_watches_with_top_level_await(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source.strip()) for source in CELLS])
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    text = "".join(o.get("text", "") for o in outputs)
    assert "[('initial', 0.0), ('update', 25.0), ('update', 50.0), ('update', 100.0)]" in text
    assert "open watches: 0" in text
