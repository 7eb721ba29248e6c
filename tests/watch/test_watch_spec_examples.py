"""The spec's "Variable Observation (Streaming)" examples and its progress monitor, run as written.

The examples loop over watches forever, as a program would; each test runs one as a task and
plays the rest of the program: it writes, waits for what the example prints, and ends each
watch the way a program would (cancel_watch), which ends the example's loop.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from typing import Any

from spec_examples import SPEC, run_example
from watch_support import WAIT

from bridge import BridgeServer, SessionContext


class Output:
    """Collects what the example passes to a function (print, update_ui, ...); lets the test wait for it."""

    def __init__(self) -> None:
        self.lines: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, *args: Any) -> None:
        self.lines.append(args[0] if len(args) == 1 else args)
        self._changed.set()

    async def wait_for(self, predicate: Any, timeout: float = WAIT) -> None:
        async def wait() -> None:
            while not predicate(self.lines):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


async def test_watch_variable_examples(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7)
    await session.register_variable("metrics", "integer", 0)
    printed, ui = Output(), Output()
    example = asyncio.create_task(run_example("watch_variable", session=session, print=printed, update_ui=ui))

    await printed.wait_for(lambda lines: lines == ["Significant change: None -> 0.7"])  # the initial value passes
    for value in (0.72, 0.8, 0.81):
        await session.set_variable("temperature", value)
    await printed.wait_for(lambda lines: lines[-1] == "Significant change: 0.72 -> 0.8")
    [first] = session.active_watches
    session.cancel_watch(first)  # the first loop ends; the second starts

    await ui.wait_for(lambda values: values == [0])
    started = time.monotonic()
    for value in range(1, 6):
        await session.set_variable("metrics", value)
    await ui.wait_for(lambda values: values[-1] == 5)
    assert len(ui.lines) <= 2 + (time.monotonic() - started) / 1.0  # max 1 update per second, the last kept
    [second] = session.active_watches
    session.cancel_watch(second)
    await asyncio.wait_for(example, WAIT)
    assert printed.lines == ["Significant change: None -> 0.7", "Significant change: 0.72 -> 0.8"]


async def test_watch_variables_example(session: SessionContext) -> None:
    await session.register_variables(
        [{"name": n, "type": "string", "initial_value": ""} for n in ("query", "filters", "sort")]
    )
    searches = Output()

    async def perform_search() -> None:
        searches(await session.get_variables(["query", "filters", "sort"]))

    example = asyncio.create_task(run_example("watch_variables", session=session, perform_search=perform_search))
    await searches.wait_for(lambda runs: len(runs) == 3)  # one per initial value
    await asyncio.gather(*(session.set_variable("query", q) for q in ("c", "ca", "cat")))
    await session.set_variable("filters", "pets")
    await searches.wait_for(lambda runs: len(runs) == 5)  # settled: one per changed variable
    assert searches.lines[-1] == {"query": "cat", "filters": "pets", "sort": ""}
    [watch] = session.active_watches
    session.cancel_watch(watch)
    await asyncio.wait_for(example, WAIT)
    assert len(searches.lines) == 5


async def test_cancel_watch_example(server: BridgeServer, session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7)
    out = await run_example("cancel_watch", session=session, asyncio=asyncio)
    [outcome] = await asyncio.gather(out["watch_task"], return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError)
    assert session.active_watches == ()
    await asyncio.wait_for(server.servicer.watches.wait_for_count(0), WAIT)


def spec_function(name: str) -> str:
    """The source of `async def name(...)` from a code block of the spec (the usage examples are whole functions)."""
    text = SPEC.read_text()
    start = re.search(rf"^async def {re.escape(name)}\(", text, re.M)
    assert start is not None, f"{name} is not in the spec"
    return textwrap.dedent(text[start.start() : text.index("```", start.start())])


async def test_the_progress_monitor_of_batch_processing(server: BridgeServer, session: SessionContext) -> None:
    printed = Output()

    async def process_batch(batch: list[int], temperature: float) -> list[float]:
        await asyncio.sleep(0.01)  # the work of a batch
        return [x * temperature for x in batch]

    scope: dict[str, Any] = {
        "session": session,
        "items": list(range(1000)),
        "process_batch": process_batch,
        "asyncio": asyncio,
        "print": printed,
    }
    exec(compile(spec_function("batch_processing_with_variables"), "<spec: batch processing>", "exec"), scope)
    started = time.monotonic()
    await asyncio.wait_for(scope["batch_processing_with_variables"](), WAIT)
    elapsed = time.monotonic() - started

    assert await session.get_variable("progress") == 100.0
    written = [round(min(i + 32, 1000) / 1000 * 100, 1) for i in range(0, 1000, 32)]
    shown = [float(re.fullmatch(r"Progress: (\d+\.\d)%", line).group(1)) for line in printed.lines]
    assert shown and shown == sorted(shown) and set(shown) <= {0.0, *written}
    assert len(shown) <= 2 + elapsed / 0.5  # throttle_ms=500: at most one every 500 ms
    await asyncio.wait_for(server.servicer.watches.wait_for_count(0), WAIT)  # monitor_task.cancel() released it
