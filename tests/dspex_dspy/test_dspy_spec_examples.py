"""The spec's "DSPy Integration Enhancements" examples and its "Real-Time Adaptive System", run as written."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
import grpc
import pytest
from dspy.utils import DummyLM
from dspy_support import dummy_lm, exact, run_code, spec_method_example, spec_usage_example, trainset

from bridge import SessionContext
from dspex_dspy import DSPyOptimizationBridge, ModuleVariableResolver


async def test_create_variable_aware_optimizer_example(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("max_demos", "integer", 2, constraints={"min": 1, "max": 8})
    with dspy.context(lm=dummy_lm()):
        out = await run_code(
            spec_method_example("create_variable_aware_optimizer"),
            bridge=DSPyOptimizationBridge(session),
            accuracy_metric=exact,
            student=dspy.Predict("question -> answer"),
            train_data=trainset(),
        )
    program = out["optimized_program"]
    assert len([d for d in program.demos if d.get("augmented")]) == 2  # max_bootstrapped_demos from 'max_demos'
    [entry] = await session.get_optimization_history("temperature")
    assert entry["candidate"] == {"temperature": 0.7, "max_demos": 2}
    assert out["optimizer"].best.teleprompter.teacher_settings["lm"].kwargs["temperature"] == 0.7


async def test_sync_dspy_parameters_example(session: SessionContext) -> None:
    with dspy.context(lm=dummy_lm(reasoning=True)):
        out = await run_code(
            spec_method_example("sync_dspy_parameters"), bridge=DSPyOptimizationBridge(session), dspy=dspy
        )
    assert out["mappings"] == {"temperature": "cot_temperature", "max_tokens": "cot_max_tokens"}
    names = [v["name"] for v in await session.list_variables("cot_*")]
    assert names == [
        "cot_max_tokens",
        "cot_temperature",
    ]  # "Creates variables like 'cot_temperature', 'cot_max_tokens'"


SIMPLE = "What is 2+2?"
COMPLEX = "Explain the philosophical implications of consciousness in artificial intelligence systems"


async def test_real_time_adaptive_system(channel: grpc.aio.Channel, capsys: pytest.CaptureFixture[str]) -> None:
    code = spec_usage_example("Real-Time Adaptive System")
    sessions: list[SessionContext] = []

    def session_context(*args: Any, **kwargs: Any) -> SessionContext:  # the real class; keeps what it made
        sessions.append(SessionContext(*args, **kwargs))
        return sessions[-1]

    scope = {"SessionContext": session_context, "ModuleVariableResolver": ModuleVariableResolver}
    scope.update(channel=channel, asyncio=asyncio)
    exec(compile(code, "<spec: Real-Time Adaptive System>", "exec"), scope)
    lm = DummyLM({SIMPLE: {"answer": "4"}, COMPLEX: {"answer": "Open questions remain."}})
    with dspy.context(lm=lm):
        await scope["adaptive_reasoning_system"]()

    asked = [call["messages"][-1]["content"] for call in lm.history]
    assert len(asked) == 2 and SIMPLE in asked[0] and COMPLEX in asked[1]
    # Ten words / 20 = 0.5 is not above the 0.5 threshold: as written, both questions get Predict.
    assert all("reasoning" not in call["messages"][0]["content"] for call in lm.history)
    [session] = sessions
    [info] = await session.list_variables("reasoning_strategy", include_values=True)
    assert info["value"] == "Predict" and info["version"] == 3  # registered, then set once per question
    printed = capsys.readouterr().out
    # Two registrations and two strategy writes; the threshold's second read was a cache hit.
    assert "Total variable updates: 4" in printed
    stats = await session.get_variable_stats()
    assert stats["cache_hits"] >= 1 and f"Cache hit rate: {stats['cache_hit_rate']:.2%}" in printed
    await session.close()
