"""sync_dspy_parameters: variables for each predictor's LM parameters, followed live into its next LM call."""

from __future__ import annotations

import uuid
from pathlib import Path

import dspy
import pytest
from dspy_support import FACTS, dummy_lm, other_client

from bridge import BridgeServer, SessionContext, connect
from dspex_dspy import DSPyOptimizationBridge

QUESTION = next(iter(FACTS))


class TwoStep(dspy.Module):
    """A program with two predictors: their variables carry their paths."""

    def __init__(self) -> None:
        super().__init__()
        self.generate_answer = dspy.ChainOfThought("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict")

    def forward(self, question: str) -> dspy.Prediction:
        return self.generate_answer(question=question)


async def test_sync_creates_the_spec_s_variables(session: SessionContext) -> None:
    cot = dspy.ChainOfThought("question -> answer", temperature=0.3)
    with dspy.context(lm=dummy_lm(reasoning=True)):
        mapping = await DSPyOptimizationBridge(session).sync_dspy_parameters(cot, variable_prefix="cot_")
    assert mapping == {"temperature": "cot_temperature", "max_tokens": "cot_max_tokens"}
    found = await session.get_variables(list(mapping.values()), include_metadata=True)
    assert found["cot_temperature"]["type"] == "float" and found["cot_temperature"]["value"] == 0.3  # its config
    assert found["cot_temperature"]["constraints"] == {"min": 0.0, "max": 2.0, "nullable": True}
    assert found["cot_max_tokens"]["type"] == "integer" and found["cot_max_tokens"]["value"] == 1000  # DummyLM's
    assert cot.predict.config == {"temperature": 0.3, "max_tokens": 1000}


async def test_a_multi_predictor_program_gets_its_paths_in_the_names(session: SessionContext) -> None:
    program = TwoStep()
    program.check.config = {"top_p": 0.9}
    with dspy.context(lm=dummy_lm(reasoning=True)):
        mapping = await DSPyOptimizationBridge(session).sync_dspy_parameters(program, "rag_")
    assert mapping == {
        "generate_answer.temperature": "rag_generate_answer_temperature",
        "generate_answer.max_tokens": "rag_generate_answer_max_tokens",
        "check.temperature": "rag_check_temperature",
        "check.max_tokens": "rag_check_max_tokens",
        "check.top_p": "rag_check_top_p",  # an LM parameter the predictor already sets is synced too
    }


async def test_a_write_by_another_client_reaches_the_next_lm_call(session: SessionContext) -> None:
    lm = dummy_lm(reasoning=True)
    cot = dspy.ChainOfThought("question -> answer")
    bridge = DSPyOptimizationBridge(session)
    with dspy.context(lm=lm):
        await bridge.sync_dspy_parameters(cot, "cot_")
        sync = bridge.parameter_sync(cot)
        cot(question=QUESTION)
        assert lm.history[-1]["kwargs"] == {"temperature": 0.0, "max_tokens": 1000}

        other = await other_client(session)
        await other.set_variable("cot_temperature", 1.3)
        await sync.wait_applied("cot_temperature", value=1.3)
        cot(question=QUESTION)
        assert lm.history[-1]["kwargs"]["temperature"] == 1.3

        await session.set_variable("cot_max_tokens", 64)  # this client's own write arrives the same way
        version = await sync.wait_applied("cot_max_tokens", version=2)
        cot(question=QUESTION)
        assert lm.history[-1]["kwargs"] == {"temperature": 1.3, "max_tokens": 64} and version == 2

        await other.set_variable("cot_temperature", None)  # None: back to the LM's own default
        await sync.wait_applied("cot_temperature", value=None)
        cot(question=QUESTION)
        assert lm.history[-1]["kwargs"] == {"max_tokens": 64}
    await bridge.close()
    assert not sync.running


async def test_the_lm_call_path_makes_no_rpc() -> None:
    """Once an update is applied, LM calls go on with the right kwargs even with the server gone."""
    lm = dummy_lm()
    predict = dspy.Predict("question -> answer")
    async with BridgeServer() as server, connect(server.address) as channel:
        session = await SessionContext(f"test_{uuid.uuid4().hex[:8]}", channel).initialize()
        bridge = DSPyOptimizationBridge(session)
        with dspy.context(lm=lm):
            await bridge.sync_dspy_parameters(predict, "qa_")
        await session.set_variable("qa_temperature", 0.55)
        await bridge.parameter_sync(predict).wait_applied("qa_temperature", value=0.55)
        await server.stop(grace=0)
        with dspy.context(lm=lm):
            for _ in range(3):
                predict(question=QUESTION)
        await bridge.close()
    assert [h["kwargs"]["temperature"] for h in lm.history[-3:]] == [0.55] * 3


async def test_config_survives_save_and_restore(session: SessionContext, tmp_path: Path) -> None:
    lm = dummy_lm(reasoning=True)
    bridge = DSPyOptimizationBridge(session)
    cot = dspy.ChainOfThought("question -> answer")
    with dspy.context(lm=lm):
        await bridge.sync_dspy_parameters(cot, "cot_")
    await session.set_variable("cot_temperature", 0.9)
    await bridge.parameter_sync(cot).wait_applied("cot_temperature", value=0.9)
    cot.save(tmp_path / "cot.json")

    loaded = dspy.ChainOfThought("question -> answer")
    loaded.load(tmp_path / "cot.json")
    assert loaded.predict.config == {}  # DSPy's save() keeps no config
    mapping = await bridge.restore_dspy_parameters(loaded, "cot_")
    assert mapping == {"temperature": "cot_temperature", "max_tokens": "cot_max_tokens"}
    assert loaded.predict.config == {"temperature": 0.9, "max_tokens": 1000}
    with dspy.context(lm=lm):
        loaded(question=QUESTION)
    assert lm.history[-1]["kwargs"] == {"temperature": 0.9, "max_tokens": 1000}

    other = await other_client(session)
    await other.set_variable("cot_temperature", 0.2)  # the restored module is synced too
    await bridge.parameter_sync(loaded).wait_applied("cot_temperature", value=0.2)
    assert loaded.predict.config["temperature"] == 0.2
    await bridge.close()


async def test_existing_variables_win_and_must_fit(session: SessionContext) -> None:
    await session.register_variable("qa_temperature", "float", 0.25, constraints={"min": 0.0, "max": 1.0})
    predict = dspy.Predict("question -> answer", temperature=0.8)
    bridge = DSPyOptimizationBridge(session)
    with dspy.context(lm=dummy_lm()):
        await bridge.sync_dspy_parameters(predict, "qa_")
    assert predict.config["temperature"] == 0.25  # bound to the variable, whose value wins

    await session.register_variable("bad_max_tokens", "string", "many")
    with dspy.context(lm=dummy_lm()), pytest.raises(TypeError, match="'bad_max_tokens' is a 'string' variable"):
        await bridge.sync_dspy_parameters(dspy.Predict("question -> answer"), "bad_")
    await bridge.close()


async def test_restore_without_synced_variables_says_how_to_create_them(session: SessionContext) -> None:
    with pytest.raises(KeyError, match=r"sync_dspy_parameters\(module, variable_prefix='cot_'\) creates them"):
        await DSPyOptimizationBridge(session).restore_dspy_parameters(dspy.ChainOfThought("q -> a"), "cot_")
