"""The spec's "Variable Retrieval" and "Variable Creation and Updates" examples, run as written."""

from __future__ import annotations

import numpy as np
import pytest
from spec_examples import run_example

from bridge import SessionContext


async def test_get_variable_examples(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("model", "string", "gpt-4")
    await session.register_variable("threshold", "float", 0.25)
    await session.register_variable("context_embedding", "embedding", np.arange(4.0))

    out = await run_example("get_variable", session=session)

    assert out["temperature"] == 0.7 and type(out["temperature"]) is float
    assert out["max_tokens"] == 256  # missing, so the default
    assert out["current_temp"] == 0.7
    assert out["model_name"] == "gpt-4" and type(out["model_name"]) is str
    assert out["threshold"] == 0.25 and type(out["threshold"]) is float
    assert isinstance(out["embedding"], np.ndarray)
    np.testing.assert_array_equal(out["embedding"], np.arange(4.0))


async def test_get_variables_examples(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7)
    await session.register_variable("max_tokens", "integer", 256)
    await session.register_variable("model", "choice", "gpt-4", constraints={"choices": ["gpt-4", "claude-3"]})

    out = await run_example("get_variables", session=session)

    assert out["vars"] == {"temp": 0.7, "tokens": 256}  # the last assignment: both missing, both defaulted
    info = out["vars_info"]
    assert set(info) == {"temperature", "model"}
    assert info["temperature"]["value"] == 0.7
    assert info["temperature"]["type"] == "float"
    assert isinstance(info["temperature"]["metadata"], dict)
    stats = info["temperature"]["stats"]
    assert stats["read_count"] >= 2 and stats["cache_hits"] == 0 and stats["cache_misses"] >= 2
    assert info["model"]["value"] == "gpt-4"


async def test_get_variables_first_example_returns_values(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7)
    await session.register_variable("max_tokens", "integer", 256)
    await session.register_variable("model", "string", "gpt-4")
    assert await session.get_variables(["temperature", "max_tokens", "model"]) == {
        "temperature": 0.7,
        "max_tokens": 256,
        "model": "gpt-4",
    }


async def test_register_variable_examples(session: SessionContext) -> None:
    style_id = await session.register_variable("style", "float", 1.0)

    out = await run_example("register_variable", session=session, np=np, style_id=style_id)

    assert out["temp_id"].startswith("var_") and out["embed_id"].startswith("var_")
    assert len({out["temp_id"], out["embed_id"], out["derived_id"], style_id}) == 4
    embedding = await session.get_variable("context_embedding")
    assert embedding.shape == (768,) and not embedding.any()  # a zero vector has no direction to normalize
    [derived] = await session.list_variables("effective_temperature")
    assert derived["dependencies"] == [out["temp_id"], style_id]


async def test_register_variables_example(session: SessionContext) -> None:
    out = await run_example("register_variables", session=session)

    assert set(out["var_ids"]) == {"temperature", "model"}
    assert await session.get_variables(["temperature", "model"]) == {"temperature": 0.7, "model": "gpt-4"}
    with pytest.raises(ValueError, match="not one of"):
        await session.set_variable("model", "llama")


async def test_set_variable_examples(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})

    await run_example("set_variable", session=session)

    assert await session.get_variable("temperature") == 0.9
    assert await session.get_variable("new_config") == {"key": "value"}
    [temp] = await session.list_variables("temperature")
    assert temp["version"] == 3
    assert temp["last_update_metadata"] == {"reason": "user_preference", "source": "ui"}
    [config] = await session.list_variables("new_config")
    assert config["type"] == "dict"


async def test_update_variables_example(session: SessionContext, capsys: pytest.CaptureFixture[str]) -> None:
    await session.register_variable("temperature", "float", 0.7)
    await session.register_variable("max_tokens", "integer", 256)
    await session.register_variable("model", "choice", "claude-3", constraints={"choices": ["gpt-4", "claude-3"]})

    out = await run_example("update_variables", session=session)

    assert out["results"] == {"temperature": True, "max_tokens": True, "model": True}
    assert capsys.readouterr().out == ""
    assert await session.get_variables(["temperature", "max_tokens", "model"]) == {
        "temperature": 0.8,
        "max_tokens": 512,
        "model": "gpt-4",
    }


async def test_update_variables_example_reports_failures(
    session: SessionContext, capsys: pytest.CaptureFixture[str]
) -> None:
    await session.register_variable("temperature", "float", 0.7)
    await session.register_variable("max_tokens", "integer", 256, constraints={"max": 300})
    await session.register_variable("model", "string", "x")

    out = await run_example("update_variables", session=session)

    assert out["results"]["max_tokens"] == "max_tokens: 512 is above the maximum 300 (constraint 'max')"
    assert "not applied" in out["results"]["temperature"]
    printed = capsys.readouterr().out
    assert "Failed to update max_tokens: max_tokens: 512 is above the maximum 300" in printed
    assert await session.get_variable("temperature") == 0.7  # atomic: nothing applied


def test_the_vendored_spec_is_the_shared_one() -> None:
    from spec_examples import SPEC

    shared = SPEC.parents[3] / "shared" / "spec" / SPEC.name
    if not shared.exists():
        pytest.skip("no shared/ checkout beside this repository")
    assert SPEC.read_text() == shared.read_text(), "docs/spec is stale: copy ../shared/spec over it"
