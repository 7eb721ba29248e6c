"""The optimization part of the spec's "Error Handling Patterns", runnable.

`safe_optimization` is the spec's function as written. To take its interesting branch,
another client of the session is already optimizing 'hyperparameter' when it starts, so
it gets the "already being optimized" ValueError, waits for that run to end, and retries.

Run it in the venv: `python examples/error_handling.py [--address HOST:PORT]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from bridge.server import serve_process
from dspex_bridge import SessionContext, connect

logger = logging.getLogger("error_handling")


def score(hyperparameter: float) -> float:
    """A stand-in objective with its optimum at 0.3."""
    return -((hyperparameter - 0.3) ** 2)


async def safe_optimization(session: SessionContext) -> str:
    """The spec's "Handle optimization failures" block."""
    try:
        opt_id = await session.start_optimization("hyperparameter", "bayesian")
    except ValueError as e:
        if "already being optimized" in str(e):
            # Wait for current optimization to complete
            status = await session.get_optimization_status("hyperparameter")
            logger.info(f"Waiting for optimization {status['optimization_id']}")

            while status["is_optimizing"]:
                await asyncio.sleep(1)
                status = await session.get_optimization_status("hyperparameter")

            # Retry
            opt_id = await session.start_optimization("hyperparameter", "bayesian")
        else:
            raise
    return opt_id


async def run(address: str) -> None:
    async with connect(address) as channel:
        session = await SessionContext("errors_demo", channel, cleanup_on_close=True).initialize()
        await session.register_variable("hyperparameter", "float", 1.0, constraints={"min": 0.0, "max": 2.0})
        await session.register_objective("hyperparameter", score)

        async def slow_score(hyperparameter: float) -> float:
            await asyncio.sleep(0.02)  # a colleague's slower evaluation, so its run is still going
            return score(hyperparameter)

        colleague = await SessionContext("errors_demo", channel, token=session.token).initialize()
        first = await colleague.start_optimization(
            "hyperparameter", "tpe", max_iterations=30, objective=slow_score, convergence_threshold=0, seed=0
        )
        print(f"another client is optimizing: {first}")

        second = await safe_optimization(session)
        print(f"safe_optimization waited for {first} and then started {second}")
        status = await session.wait_optimization("hyperparameter")
        print(f"{second}: {status['state']} after {status['iteration']} iterations, best {status['best_value']:.4f}")
        history = await session.get_optimization_history("hyperparameter", limit=1000)
        runs = sorted({h["optimization_id"] for h in history})
        print(f"history holds {len(history)} iterations over {len(runs)} runs")
        await colleague.close()
        await session.close()


async def main(address: str | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if address:
        await run(address)
        return
    with serve_process() as served:
        await run(served.address)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="use a running server instead of starting one")
    asyncio.run(main(parser.parse_args().address))
