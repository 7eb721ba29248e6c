"""End-to-end demo: a `dspex serve` process on the embedded store, and a client using the spec's API.

Run it with `python3 dev.py demo` (which sets everything up), or inside the venv:
`python examples/quickstart.py [--address HOST:PORT]` to use a server you started yourself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
from tqdm.auto import tqdm

from bridge.server import serve_process
from dspex_bridge import SessionContext, connect


@contextlib.asynccontextmanager
async def open_session(address: str) -> AsyncIterator[SessionContext]:
    async with connect(address) as channel, SessionContext("quickstart", channel, cleanup_on_close=True) as session:
        yield session


def step(title: str) -> None:
    print(f"\n== {title}")


async def demo(session: SessionContext) -> None:
    step("register typed variables atomically (one revision)")
    ids = await session.register_variables(
        [
            {"name": "temperature", "type": "float", "initial_value": 0.7, "constraints": {"min": 0.0, "max": 2.0}},
            {"name": "max_tokens", "type": "integer", "initial_value": 256, "constraints": {"min": 1, "max": 4096}},
            {
                "name": "model",
                "type": "choice",
                "initial_value": "gpt-4",
                "constraints": {"choices": ["gpt-4", "claude-3", "gemini"]},
            },
            {
                "name": "reasoning_strategy",
                "type": "module",
                "initial_value": "ChainOfThought",
                "constraints": {"choices": ["Predict", "ChainOfThought", "ReAct"]},
            },
            {"name": "verbose", "type": "boolean", "initial_value": False},
            {"name": "system_prompt", "type": "string", "initial_value": "Answer briefly."},
            {"name": "stop_words", "type": "list", "initial_value": ["\n\n", "###"]},
            {"name": "lm_config", "type": "dict", "initial_value": {"cache": True, "retries": 3, "backoff": 0.5}},
        ]
    )
    rng = np.random.default_rng(0)
    await session.register_variable(
        "context_embedding",
        "embedding",
        rng.normal(size=768).astype(np.float32),
        constraints={"dimensions": 768, "normalize": True},
    )
    await session.register_variable("weights", "tensor", rng.normal(size=(3, 4, 5)), constraints={"shape": [3, 4, 5]})
    print(f"registered {len(ids) + 2} variables, e.g. temperature -> {ids['temperature']}")

    step("read them back with their Python types")
    values = await session.get_variables(list(ids))
    for name, value in values.items():
        print(f"  {name:<20} {type(value).__name__:<6} {value!r}")
    embedding = await session.get_variable("context_embedding")
    weights = await session.get_variable("weights")
    print(
        f"  {'context_embedding':<20} {type(embedding).__name__} {embedding.dtype} {embedding.shape}, "
        f"norm {np.linalg.norm(embedding):.4f} (stored normalized)"
    )
    print(f"  {'weights':<20} {type(weights).__name__} {weights.dtype} {weights.shape}")

    step("the server enforces types and constraints")
    for name, bad in [("temperature", 3.5), ("model", "llama"), ("max_tokens", 1.5), ("verbose", "yes")]:
        try:
            await session.set_variable(name, bad)
        except (ValueError, TypeError) as exc:
            print(f"  refused {name}={bad!r}: {type(exc).__name__}: {exc}")

    step("batch updates: atomic (all or nothing) and per-variable")
    ok = await session.update_variables({"temperature": 0.9, "max_tokens": 512, "model": "claude-3"}, atomic=True)
    print(f"  atomic, all valid: {ok}")
    failed = await session.update_variables({"temperature": 0.1, "max_tokens": -5}, atomic=True)
    print(f"  atomic, one invalid: {failed}")
    print(f"  temperature is still {await session.get_variable('temperature')}")
    partial = await session.update_variables({"temperature": 0.1, "max_tokens": -5}, atomic=False)
    print(f"  non-atomic: {partial}")

    step("a parameter sweep streamed into a variable, 50 concurrent writers")
    await session.register_variable("sweep_score", "float", 0.0)
    temps = np.linspace(0.0, 2.0, 50)
    progress = tqdm(total=len(temps), desc="sweep", unit="write")

    async def evaluate(i: int, t: float) -> None:
        score = float(np.exp(-((t - 1.1) ** 2) / 0.2))  # a stand-in objective
        await session.set_variable("sweep_score", score, metadata={"iteration": i, "temperature": round(t, 3)})
        progress.update()

    await asyncio.gather(*(evaluate(i, t) for i, t in enumerate(temps)))
    progress.close()
    [info] = await session.list_variables("sweep_score")
    print(
        f"  sweep_score: version {info['version']} after 50 writes (nothing lost), "
        f"written by {info['updated_by']!r} at revision {info['mod_revision']}"
    )

    step("everything in the session")
    for var in await session.list_variables():
        print(f"  {var['name']:<20} {var['type']:<10} v{var['version']:<3} reads={var['stats']['read_count']}")


async def main(address: str | None) -> None:
    if address:
        async with open_session(address) as session:
            await demo(session)
        return
    with serve_process() as served:
        print(f"server: dspex serve on {served.address} (embedded store)")
        async with open_session(served.address) as session:
            await demo(session)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", help="use a running server instead of starting one")
    asyncio.run(main(parser.parse_args().address))
