"""The spec's "Real-Time Adaptive System", runnable: the reasoning strategy is a `module` variable.

`python examples/adaptive_reasoning.py [--address HOST:PORT]` starts a `dspex serve` (unless
given one), then runs the spec's system: a watcher follows the strategy variable, each
question's complexity picks Predict or ChainOfThought, and `ModuleVariableResolver` builds
that module to answer it (awaited, as the spec writes it). Offline, a `DummyLM` answers;
`DSPEX_LM=provider/model` answers with a real LM. It ends, as the spec's does, with
`get_variable_stats()`: the server's count of writes and this client's cache hit rate.
"""

from __future__ import annotations

import argparse
import asyncio

import dspy
import grpc
from dspy.utils import DummyLM

from bridge.server import serve_process
from dspex_bridge import SessionContext
from dspex_dspy import ModuleVariableResolver, describe_lm, lm_from_env

SIMPLE_Q = "What is 2+2?"
COMPLEX_Q = "Explain the philosophical implications of consciousness in artificial intelligence systems"


def offline_lm() -> DummyLM:
    """Answers the two questions (with a rationale, for ChainOfThought)."""
    return DummyLM(
        {
            SIMPLE_Q: {"reasoning": "Two plus two.", "answer": "4"},
            COMPLEX_Q: {"reasoning": "Minds, machines and experience.", "answer": "That is still debated."},
        }
    )


async def adaptive_reasoning_system(channel: grpc.aio.Channel) -> list[tuple[str, str, str]]:
    session = SessionContext("adaptive_session", channel)
    await session.initialize()

    # Register module-type variable for strategy selection
    await session.register_variable(
        "reasoning_strategy",
        "module",
        "ChainOfThought",
        constraints={"choices": ["Predict", "ChainOfThought", "ReAct", "ProgramOfThought"]},
    )

    # Register performance threshold
    await session.register_variable("complexity_threshold", "float", 0.5, constraints={"min": 0.0, "max": 1.0})

    # Module resolver
    resolver = ModuleVariableResolver(session)

    # Watch for strategy changes
    async def strategy_watcher() -> None:
        async for update in session.watch_variable("reasoning_strategy"):
            print(f"Strategy changed to: {update.value}")

    watcher_task = asyncio.create_task(strategy_watcher())

    # Adaptive question answering
    async def answer_question(question: str) -> tuple[str, str, str]:
        # Assess complexity
        complexity = len(question.split()) / 20.0  # Simple heuristic

        # Auto-adjust strategy based on complexity
        threshold = await session.get_variable("complexity_threshold")
        if complexity > threshold:
            await session.set_variable("reasoning_strategy", "ChainOfThought")
        else:
            await session.set_variable("reasoning_strategy", "Predict")

        # Create module based on current strategy
        qa_module = await resolver.create_module("reasoning_strategy", "question -> answer")

        # Answer with automatic strategy
        prediction = await qa_module.forward(question=question)
        return question, qa_module.strategy, prediction.answer

    # Test with questions of varying complexity (a threshold of 0.4 sends the long one to ChainOfThought)
    await session.set_variable("complexity_threshold", 0.4)
    answers = [await answer_question(SIMPLE_Q), await answer_question(COMPLEX_Q)]
    for question, strategy, answer in answers:
        print(f"{strategy:>14}: {question} -> {answer}")

    # Get performance stats
    stats = await session.get_variable_stats()
    print(f"Total variable updates: {stats['write_count']}")
    print(f"Cache hit rate: {stats['cache_hit_rate']:.2%}")

    # Cleanup
    watcher_task.cancel()
    await session.cleanup()
    return answers


async def main(address: str | None) -> None:
    lm = lm_from_env(offline=offline_lm)
    print(f"model: {describe_lm(lm)}")
    with dspy.context(lm=lm):
        if address:
            async with grpc.aio.insecure_channel(address) as channel:
                await adaptive_reasoning_system(channel)
            return
        with serve_process() as served:
            print(f"server: dspex serve on {served.address} (embedded in-memory store)")
            async with grpc.aio.insecure_channel(served.address) as channel:
                await adaptive_reasoning_system(channel)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="use a running server instead of starting one")
    asyncio.run(main(parser.parse_args().address))
