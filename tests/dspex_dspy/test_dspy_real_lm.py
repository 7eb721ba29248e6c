"""The real-LM switch: DSPEX_LM makes a real `dspy.LM`, exercised end to end against a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest
from dspy.utils import DummyLM
from dspy_support import other_client
from openai_compatible import OpenAICompatibleServer

from bridge import SessionContext
from dspex_dspy import API_BASE_ENV, API_KEY_ENV, MODEL_ENV, DSPyOptimizationBridge, lm_from_env, toy_lm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: litellm (under dspy.LM) would fetch its model price list from the network; this keeps it local.
OFFLINE = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def test_without_the_variable_the_offline_model_is_used() -> None:
    assert lm_from_env(environ={}).model == toy_lm().model == "toy/qa"
    assert isinstance(lm_from_env(offline=lambda: DummyLM([]), environ={MODEL_ENV: " "}), DummyLM)


async def test_a_real_lm_receives_the_synced_parameters(
    session: SessionContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    with OpenAICompatibleServer(fail_first=1) as server:
        environ = {MODEL_ENV: "openai/toy-model", API_BASE_ENV: server.api_base, API_KEY_ENV: "sk-loopback"}
        lm = lm_from_env(environ=environ)
        assert isinstance(lm, dspy.LM) and lm.model == "openai/toy-model"
        predict = dspy.Predict("question -> answer")
        bridge = DSPyOptimizationBridge(session)
        with dspy.context(lm=lm):
            mapping = await bridge.sync_dspy_parameters(predict, "qa_")
            other = await other_client(session)
            await other.update_variables({"qa_temperature": 0.35, "qa_max_tokens": 77})
            await bridge.parameter_sync(predict).wait_applied("qa_max_tokens", value=77)
            answer = await predict.acall(question="What is the capital of Peru?")
        await bridge.close()

    assert mapping == {"temperature": "qa_temperature", "max_tokens": "qa_max_tokens"}
    assert answer.answer == "Lima"
    assert server.refused == 1  # the first attempt got a 503 and the client retried
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-loopback"
    assert request["model"] == "toy-model" and request["temperature"] == 0.35
    assert 77 in (request.get("max_tokens"), request.get("max_completion_tokens"))


def test_the_main_job_runs_on_a_real_lm(tmp_path: Path) -> None:
    with OpenAICompatibleServer(fail_first=1) as server:
        env = {
            **os.environ,
            **OFFLINE,
            MODEL_ENV: "openai/toy-model",
            API_BASE_ENV: server.api_base,
            API_KEY_ENV: "sk-loopback",
            "DSPY_CACHEDIR": str(tmp_path / "dspy-cache"),
        }
        done = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "dspy_main_job.py"),
                "--trials",
                "3",
                "--iterations",
                "3",
                "--out",
                "r.json",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"model: openai/toy-model at {server.api_base}" in done.stdout
    assert "Best parameters: " in done.stdout and "Best score: " in done.stdout
    assert server.refused == 1 and len(server.requests) > 10
    assert {r["auth"] for r in server.requests} == {"Bearer sk-loopback"}
    temperatures = {r.get("temperature") for r in server.requests}
    history = json.loads((tmp_path / "r.json").read_text())
    tried = {
        round(trial["candidate"]["base_temperature"], 6)
        for run in history["optimization_runs"]
        for trial in run["trials"]
        if "base_temperature" in trial["candidate"]
    }
    assert tried
    assert tried <= {round(t, 6) for t in temperatures if t is not None}  # each workflow iteration reached the LM
