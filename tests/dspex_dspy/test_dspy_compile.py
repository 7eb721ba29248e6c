"""Compiling through the bridge does what bare DSPy does, and records the run in the mapped variables."""

from __future__ import annotations

import asyncio
from typing import Any

import dspy
import pytest
from dspy.teleprompt import (
    GEPA,
    BootstrapFewShot,
    BootstrapFewShotWithRandomSearch,
    LabeledFewShot,
    MIPROv2,
    Teleprompter,
)
from dspy.utils import DummyLM
from dspy_support import dummy_lm, exact, feedback_metric, other_client, trainset, valset

from bridge import SessionContext
from dspex_dspy import DSPyOptimizationBridge


async def _variables(session: SessionContext) -> None:
    await session.register_variable("temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0})
    await session.register_variable("max_demos", "integer", 3, constraints={"min": 1, "max": 6})


def _state(program: dspy.Module) -> dict[str, Any]:
    return {name: p.dump_state() for name, p in program.named_predictors()}


async def test_bootstrap_through_the_bridge_matches_bare_dspy(session: SessionContext) -> None:
    await _variables(session)
    lm = dummy_lm()
    with dspy.context(lm=lm):
        optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
            BootstrapFewShot,
            {"teacher_temperature": "temperature", "max_bootstrapped_demos": "max_demos"},
            metric=exact,
            max_labeled_demos=2,
        )
        ours = await optimizer.compile(dspy.Predict("question -> answer"), trainset=trainset())
        bare = BootstrapFewShot(
            metric=exact,
            max_bootstrapped_demos=3,
            max_labeled_demos=2,
            teacher_settings={"lm": lm.copy(temperature=0.7)},
        ).compile(dspy.Predict("question -> answer"), trainset=trainset())

    assert [d.toDict() for d in ours.demos] == [d.toDict() for d in bare.demos]
    assert len([d for d in ours.demos if d.get("augmented")]) == 3
    assert optimizer.best_values == {"teacher_temperature": 0.7, "max_bootstrapped_demos": 3}
    teacher_lm = optimizer.best.teleprompter.teacher_settings["lm"]
    assert teacher_lm.kwargs["temperature"] == 0.7 and teacher_lm.history  # the teacher ran at that temperature
    assert await session.get_variables(["temperature", "max_demos"]) == {"temperature": 0.7, "max_demos": 3}
    for name in ("temperature", "max_demos"):
        [entry] = await session.get_optimization_history(name)
        assert entry["candidate"] == {"temperature": 0.7, "max_demos": 3}
        assert entry["metrics"]["demos"] == len(ours.demos) == entry["score"]
        assert entry["metrics"]["score_source"] == "demos" and entry["state"] == "ok"
    status = await session.get_optimization_status("max_demos")
    assert status["optimizer_type"] == "dspy_bootstrapfewshot" and status["state"] == "completed"


def _gepa_reflection() -> DummyLM:
    return DummyLM({"": {"new_instruction": "Name the capital city."}}, adapter=dspy.JSONAdapter())


def _mipro_prompts() -> DummyLM:
    return DummyLM({"proposed_instruction": {"proposed_instruction": "Name the capital city."}})


_MIPRO_COMPILE = {
    "minibatch": False,
    "data_aware_proposer": False,
    "program_aware_proposer": False,
    "tip_aware_proposer": False,
    "fewshot_aware_proposer": False,
}
#: teleprompter, mapping, its other arguments, compile kwargs, and the values the variables hold.
CASES = {
    "random_search": (
        BootstrapFewShotWithRandomSearch,
        {"max_bootstrapped_demos": "max_demos"},
        {"metric": exact, "num_candidate_programs": 2, "num_threads": 1, "max_labeled_demos": 1},
        {},
    ),
    "labeled": (LabeledFewShot, {"k": "max_demos"}, {"metric": exact}, {}),
    "mipro": (
        MIPROv2,
        {"max_bootstrapped_demos": "max_demos", "num_trials": "trials", "prompt_temperature": "temperature"},
        {"metric": exact, "auto": None, "num_candidates": 2, "max_labeled_demos": 1, "num_threads": 1, "seed": 0},
        _MIPRO_COMPILE,
    ),
    "gepa": (
        GEPA,
        {"max_metric_calls": "budget", "reflection_temperature": "temperature"},
        {"metric": feedback_metric, "num_threads": 1, "use_merge": False, "reflection_minibatch_size": 2, "seed": 0},
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_teleprompter_compiles_as_bare_dspy_does(session: SessionContext, case: str) -> None:
    teleprompter, mapping, kwargs, compile_kwargs = CASES[case]
    await _variables(session)
    await session.register_variable("trials", "integer", 3, constraints={"min": 1, "max": 10})
    await session.register_variable("budget", "integer", 24, constraints={"min": 10, "max": 100})
    values = {"max_demos": 3, "trials": 3, "budget": 24, "temperature": 0.7}
    models = {"prompt_model": _mipro_prompts()} if case == "mipro" else {}
    if case == "gepa":
        models = {"reflection_lm": _gepa_reflection()}
    lm = dummy_lm()
    with dspy.context(lm=lm):
        optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
            teleprompter, mapping, **kwargs, **models
        )
        ours = await optimizer.compile(
            dspy.Predict("question -> answer"), trainset=trainset(), valset=valset(), **compile_kwargs
        )
        bare_kwargs = {**kwargs, **models}
        bare_compile = dict(compile_kwargs)
        for param, variable in mapping.items():
            param_info = optimizer.params[param]
            if param_info.stage == "init":
                bare_kwargs[param] = values[variable]
            elif param_info.stage == "compile":
                bare_compile[param] = values[variable]
            else:
                bare_kwargs[param_info.role] = (models.get(param_info.role) or lm).copy(temperature=0.7)
        if teleprompter is LabeledFewShot:
            bare_kwargs.pop("metric")
        takes_valset = teleprompter is not LabeledFewShot
        bare = teleprompter(**bare_kwargs).compile(
            dspy.Predict("question -> answer"),
            trainset=trainset(),
            **({"valset": valset()} if takes_valset else {}),
            **bare_compile,
        )
        score = dspy.Evaluate(devset=valset(), metric=kwargs["metric"], num_threads=1)(bare).score

    assert _state(ours) == _state(bare)
    [entry] = await session.get_optimization_history(
        "temperature" if "temperature" in mapping.values() else "max_demos"
    )
    assert entry["score"] == score and entry["metrics"]["score_source"] == "valset"
    assert entry["candidate"] == {v: values[v] for v in dict.fromkeys(mapping.values())}
    evaluated_inside = teleprompter is not LabeledFewShot
    assert (entry["metrics"]["inner_evaluations"] > 0) == evaluated_inside
    assert len(optimizer.best.evaluations) == entry["metrics"]["inner_evaluations"]


async def test_start_optimization_drives_a_dspy_search_under_the_same_leases(session: SessionContext) -> None:
    await _variables(session)
    bridge = DSPyOptimizationBridge(session)
    with dspy.context(lm=dummy_lm()):
        optimizer = await bridge.create_variable_aware_optimizer(
            BootstrapFewShot,
            {"teacher_temperature": "temperature", "max_bootstrapped_demos": "max_demos"},
            metric=exact,
        )
        await optimizer.register_objective(dspy.Predict("question -> answer"), trainset=trainset(), valset=valset())
        first_done, release = asyncio.Event(), asyncio.Event()

        async def hold_after_first(iteration: int, value: Any, metrics: dict[str, Any]) -> None:
            if iteration == 1:
                first_done.set()
                await release.wait()

        opt_id = await session.start_optimization(
            ["temperature", "max_demos"], "dspy_bootstrapfewshot", max_iterations=3, seed=0, callback=hold_after_first
        )
        await first_done.wait()
        other = await other_client(session)
        with pytest.raises(ValueError, match="already being optimized"):
            await other.start_optimization("max_demos", "tpe", objective=lambda x: 1.0)
        release.set()
        status = await session.wait_optimization("max_demos", timeout=60)

    assert status["optimization_id"] == opt_id and status["state"] == "completed" and status["iteration"] == 3
    assert status["optimizer_type"] == "dspy_bootstrapfewshot"
    history = await session.get_optimization_history("temperature")
    assert [h["iteration"] for h in history] == [1, 2, 3]
    assert history[0]["candidate"] == {"temperature": 0.7, "max_demos": 3}  # the first trial: current values
    assert len(optimizer.trials) == 3 and optimizer.best.score == status["best_score"]


class FirstK(Teleprompter):
    """A teleprompter of one's own: the first k training examples become the demos."""

    def __init__(self, k: int = 1) -> None:
        self.k = k

    def compile(self, student: dspy.Module, *, trainset: list[dspy.Example]) -> dspy.Module:
        program = student.reset_copy()
        for _, predictor in program.named_predictors():
            predictor.demos = list(trainset[: self.k])
        return program


async def test_any_teleprompter_class_gets_its_own_search(session: SessionContext) -> None:
    await _variables(session)
    optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(FirstK, {"k": "max_demos"})
    with dspy.context(lm=dummy_lm()):
        program = await optimizer.compile(dspy.Predict("question -> answer"), trainset=trainset())
    assert program.demos == trainset()[:3]
    status = await session.get_optimization_status("max_demos")
    assert status["optimizer_type"] == optimizer.optimizer_type == "dspy_firstk" and status["best_score"] == 3
