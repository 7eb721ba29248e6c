"""The spec's "Complete Optimization Workflow", runnable: a `dspex serve` on the embedded store, then the workflow.

Run it with `python3 dev.py demo` (which sets everything up), or in the venv:
`python examples/optimization_workflow.py [--address HOST:PORT] [--out PATH]`.

The objective is a stand-in with a known optimum (accuracy peaks at an effective
temperature of 0.55): a small scoring function (the DSPy main job, dspy_main_job.py, scores a
compiled program instead). The export at the end is the spec's `export_variables` call: the
variables matching r'.*temperature.*' with their history and the optimization run, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from pathlib import Path
from typing import Any

import grpc
from tqdm.auto import tqdm

from bridge.server import serve_process
from dspex_bridge import SessionContext

#: The stand-in objective's optimum: the effective temperature (base x style) that scores best.
BEST_EFFECTIVE_TEMPERATURE = 0.55


def accuracy_at(base_temperature: float, style_modifier: float = 1.0) -> dict[str, float]:
    """A smooth stand-in for evaluating a program at a temperature: accuracy and a token cost."""
    effective = base_temperature * style_modifier
    accuracy = 0.92 * math.exp(-((effective - BEST_EFFECTIVE_TEMPERATURE) ** 2) / 0.08)
    return {"accuracy": accuracy, "tokens": round(180 + 60 * effective)}


async def optimization_workflow(address: str, out: Path) -> dict[str, Any]:
    # Initialize session (the spec's first lines, with the server's address)
    channel = grpc.aio.insecure_channel(address)
    session = SessionContext("session_123", channel)
    await session.initialize()

    # Register variables with dependencies
    temp_id = await session.register_variable("base_temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    style_id = await session.register_variable("style_modifier", "float", 1.0, constraints={"min": 0.5, "max": 1.5})

    # Derived variable with dependencies
    await session.register_variable("effective_temperature", "float", 0.7, dependencies=[temp_id, style_id])

    # The objective, evaluated in this client: the spec's call below passes none, so register it.
    async def objective(base_temperature: float) -> dict[str, float]:
        style = await session.get_variable("style_modifier")
        await session.set_variable("effective_temperature", base_temperature * style)
        return accuracy_at(base_temperature, style)

    await session.register_objective("base_temperature", objective, metric="accuracy")

    # Start optimization with callback (a progress bar per run, advancing per iteration)
    bar = tqdm(total=100, desc="bayesian: base_temperature", unit="it")

    def on_progress(iteration: int, value: float, metrics: dict[str, float]) -> None:
        bar.update()
        bar.set_postfix(temp=f"{value:.3f}", accuracy=f"{metrics.get('accuracy', 0):.3f}")
        if iteration % 5 == 0:
            tqdm.write(f"Iteration {iteration}: temp={value:.3f}, accuracy={metrics.get('accuracy', 0):.3f}")

    await session.start_optimization(
        "base_temperature",
        "bayesian",
        optimizer_config={"acquisition_function": "ei", "xi": 0.01},
        callback=on_progress,
        seed=0,  # the spec's call plus a seed, so the demo repeats exactly
    )

    # Monitor optimization
    while True:
        status = await session.get_optimization_status("base_temperature")
        if not status["is_optimizing"]:
            break
        await asyncio.sleep(1)
    bar.close()

    print(f"Optimization complete! Best value: {status['best_value']}")
    style = await session.get_variable("style_modifier")
    await session.set_variable("effective_temperature", status["best_value"] * style, metadata={"from": "best"})
    print(
        f"  state {status['state']} after {status['iteration']} iterations; best accuracy "
        f"{status['best_metrics']['accuracy']:.4f} (the stand-in peaks at {BEST_EFFECTIVE_TEMPERATURE})"
    )

    # Export results
    export_data = await session.export_variables(include_history=True, filter_pattern=r".*temperature.*")
    with open(out, "wb") as f:
        f.write(export_data)
    print(f"  wrote {out} ({len(export_data):,} bytes)")

    await session.cleanup()
    await channel.close()
    return status


async def main(address: str | None, out: Path) -> None:
    if address:
        await optimization_workflow(address, out)
        return
    with serve_process() as served:
        print(f"server: dspex serve on {served.address} (embedded in-memory store)")
        await optimization_workflow(served.address, out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="use a running server instead of starting one")
    parser.add_argument("--out", type=Path, default=Path("optimization_results.json"), help="where to write the export")
    args = parser.parse_args()
    asyncio.run(main(args.address, args.out))
