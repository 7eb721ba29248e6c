"""The Optuna-driven search over teleprompter parameters: one history entry per trial, inner evaluations, watchers."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import dspy
import pytest
from dspy.teleprompt import BootstrapFewShot, BootstrapFewShotWithRandomSearch
from dspy_support import dummy_lm, exact, other_client, trainset, valset

from bridge import SessionContext, VariableUpdate
from dspex_dspy import DSPyOptimizationBridge, InnerEvaluation, VariableAwareOptimizer

STUDENT = "question -> answer"


async def _random_search(session: SessionContext) -> VariableAwareOptimizer:
    await session.register_variable("max_demos", "integer", 2, constraints={"min": 1, "max": 4})
    await session.register_variable("labeled", "integer", 1, constraints={"min": 0, "max": 3})
    return await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
        BootstrapFewShotWithRandomSearch,
        {"max_bootstrapped_demos": "max_demos", "max_labeled_demos": "labeled"},
        metric=exact,
        num_candidate_programs=1,
        num_threads=1,
    )


async def test_a_search_records_each_trial_with_its_inner_evaluations(session: SessionContext) -> None:
    optimizer = await _random_search(session)
    live: list[tuple[InnerEvaluation, bool]] = []
    with dspy.context(lm=dummy_lm()):
        program = await optimizer.compile(
            dspy.Predict(STUDENT),
            trainset=trainset(),
            valset=valset(),
            n_trials=4,
            sampler="tpe",
            seed=0,
            on_evaluation=lambda e: live.append((e, threading.current_thread() is threading.main_thread())),
        )

    history = await session.get_optimization_history("max_demos")
    assert [h["iteration"] for h in history] == [1, 2, 3, 4]  # one entry per trial
    assert history[0]["candidate"] == {"max_demos": 2, "labeled": 1}  # the first trial: the current values
    for entry, trial in zip(history, optimizer.trials, strict=True):
        logged = json.loads(entry["metrics"]["inner_log"])
        assert entry["metrics"]["inner_evaluations"] == len(logged) == len(trial.evaluations) >= 3
        assert [e["score"] for e in logged] == [e.score for e in trial.evaluations]
        assert entry["metrics"]["inner_best"] == max(e["score"] for e in logged)
        assert all(e["examples"] == len(valset()) and "demos" in e["program"] for e in logged)
        used = {"max_demos": trial.values["max_bootstrapped_demos"], "labeled": trial.values["max_labeled_demos"]}
        assert entry["candidate"] == used
        assert entry["score"] == trial.score
    assert [e for e, _ in live] == [e for t in optimizer.trials for e in t.evaluations]
    assert all(on_loop for _, on_loop in live)  # delivered on the event loop, as each evaluation ended

    # Each inner evaluation is also its own history entry, recorded as it ended: before its trial's.
    full = await session.get_optimization_history("max_demos", include_evaluations=True)
    expected = []
    for iteration, trial in enumerate(optimizer.trials, start=1):
        expected += [("evaluation", iteration, n, e.score) for n, e in enumerate(trial.evaluations, start=1)]
        expected.append(("trial", iteration, None, trial.score))
    assert [(h["kind"], h["iteration"], h["evaluation"], h["score"]) for h in full] == expected
    inner = [h for h in full if h["kind"] == "evaluation"]
    assert all("demos" in h["metrics"]["description"] and h["metrics"]["examples"] == len(valset()) for h in inner)
    assert all(h["kind"] == "trial" for h in history)  # the default history: one entry per trial

    best = max(history, key=lambda h: h["score"])
    assert await session.get_variables(["max_demos", "labeled"]) == best["candidate"]
    assert program is optimizer.best.program and optimizer.best.score == best["score"]
    status = await session.get_optimization_status("labeled")
    assert status["best_score"] == best["score"] and status["config"]["sampler"] == "tpe"


async def test_watchers_see_every_trial_as_it_runs(session: SessionContext) -> None:
    await session.register_variable("max_demos", "integer", 2, constraints={"min": 1, "max": 5})
    optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
        BootstrapFewShot, {"max_bootstrapped_demos": "max_demos"}, metric=exact
    )
    watcher = await other_client(session)
    seen: list[VariableUpdate] = []
    opened = asyncio.Event()

    async def watch() -> None:
        async for update in watcher.watch_variable("max_demos"):
            if update.kind == "initial":
                opened.set()  # the stream is open: every later write reaches it
                continue
            seen.append(update)
            if update.metadata.get("final"):
                return

    watching = asyncio.create_task(watch())
    await opened.wait()
    with dspy.context(lm=dummy_lm()):
        await optimizer.compile(dspy.Predict(STUDENT), trainset=trainset(), valset=valset(), n_trials=5, seed=1)
    await asyncio.wait_for(watching, 30)

    history = await session.get_optimization_history("max_demos")
    trial_writes = [u for u in seen if "iteration" in u.metadata and not u.metadata.get("final")]
    assert [int(u.metadata["iteration"]) for u in trial_writes] == [h["iteration"] for h in history]
    assert [u.value for u in trial_writes] == [h["value"] for h in history]
    assert seen[-1].metadata["final"] == "best" and seen[-1].value == max(history, key=lambda h: h["score"])["value"]


async def test_a_seeded_search_repeats_its_trials(session: SessionContext) -> None:
    sequences = []
    for run in range(2):
        await session.register_variable(f"demos{run}", "integer", 2, constraints={"min": 1, "max": 6})
        await session.register_variable(f"temp{run}", "float", 0.5, constraints={"min": 0.0, "max": 1.5})
        optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
            BootstrapFewShot,
            {"max_bootstrapped_demos": f"demos{run}", "teacher_temperature": f"temp{run}"},
            metric=exact,
        )
        with dspy.context(lm=dummy_lm()):
            await optimizer.compile(dspy.Predict(STUDENT), trainset=trainset(), valset=valset(), n_trials=6, seed=7)
        sequences.append([t.values for t in optimizer.trials])
    assert sequences[0] == sequences[1] and len({json.dumps(v) for v in sequences[0]}) > 1


@pytest.mark.parametrize(
    ("search", "low", "high"),
    [(None, 1, 6), ({"max_bootstrapped_demos": (2, 3)}, 2, 3)],
    ids=["from the variable's constraints", "from search="],
)
async def test_the_search_space_comes_from_search_or_the_constraints(
    session: SessionContext, search: dict[str, Any] | None, low: int, high: int
) -> None:
    await session.register_variable("max_demos", "integer", 2, constraints={"min": 1, "max": 6})
    optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
        BootstrapFewShot, {"max_bootstrapped_demos": "max_demos"}, metric=exact
    )
    with dspy.context(lm=dummy_lm()):
        await optimizer.compile(
            dspy.Predict(STUDENT),
            trainset=trainset(),
            valset=valset(),
            search=search,
            n_trials=6,
            sampler="random",
            seed=7,  # seeded: unseeded, all six draws from (2, 3) were the same 2 in one run out of 32
        )
    values = [t.values["max_bootstrapped_demos"] for t in optimizer.trials]
    assert len(values) == 6 and all(low <= v <= high for v in values[1:]) and len(set(values)) > 1
    status = await session.get_optimization_status("max_demos")
    assert status["config"]["sampler"] == "random"
    assert status["config"].get("bounds") == ({"max_demos": [low, high]} if search else None)


async def test_the_run_shows_a_progress_bar_per_trial(
    session: SessionContext, capsys: pytest.CaptureFixture[str]
) -> None:
    await session.register_variable("max_demos", "integer", 2, constraints={"min": 1, "max": 4})
    optimizer = await DSPyOptimizationBridge(session).create_variable_aware_optimizer(
        BootstrapFewShot, {"max_bootstrapped_demos": "max_demos"}, metric=exact
    )
    with dspy.context(lm=dummy_lm()):
        await optimizer.compile(
            dspy.Predict(STUDENT), trainset=trainset(), valset=valset(), n_trials=3, seed=0, progress=True
        )
    err = capsys.readouterr().err
    assert "dspy_bootstrapfewshot: max_demos" in err and "3/3" in err
