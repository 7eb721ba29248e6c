"""ModuleVariableResolver: a `module` variable names the strategy; the resolver builds it, awaitable as in the spec."""

from __future__ import annotations

import threading

import dspy
import pytest
from dspy_support import FACTS, dummy_lm

from bridge import SessionContext
from dspex_dspy import MODULES, ModuleVariableResolver

QUESTION, ANSWER = next(iter(FACTS.items()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DSPy deprecates ProgramOfThought and CodeAct for RLM
async def test_the_resolver_builds_each_module_kind(session: SessionContext) -> None:
    await session.register_variable("strategy", "module", "Predict", constraints={"choices": sorted(MODULES)})
    resolver = ModuleVariableResolver(session)
    for name, cls in MODULES.items():
        await session.set_variable("strategy", name)
        resolved = await resolver.create_module("strategy", "question -> answer")
        assert type(resolved.module) is cls and resolved.strategy == name and resolved.variable == "strategy"
        assert resolved.module.named_predictors()  # a real DSPy module over the signature


@pytest.mark.parametrize("strategy", ["Predict", "dspy.ChainOfThought"])
async def test_forward_is_awaitable_as_in_the_spec(session: SessionContext, strategy: str) -> None:
    await session.register_variable("reasoning_strategy", "module", strategy)
    qa = await ModuleVariableResolver(session).create_module("reasoning_strategy", "question -> answer")
    lm = dummy_lm(reasoning=True)
    with dspy.context(lm=lm):
        answer = await qa.forward(question=QUESTION)
        again = qa(question=QUESTION)  # and callable from sync code
    assert answer.answer == again.answer == ANSWER and len(lm.history) == 2


class Echo(dspy.Module):
    """A strategy of one's own, with no async path of its own: it runs in a worker thread."""

    def __init__(self, signature: str) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature)
        self.threads: list[str] = []

    def forward(self, **kwargs: str) -> dspy.Prediction:
        self.threads.append(threading.current_thread().name)
        return self.predict(**kwargs)


async def test_registered_strategies_resolve_and_run_off_the_event_loop(session: SessionContext) -> None:
    await session.register_variable("strategy", "module", "Echo")
    resolver = ModuleVariableResolver(session)
    resolver.register("Echo", Echo)
    qa = await resolver.create_module("strategy", "question -> answer")
    with dspy.context(lm=dummy_lm()):
        answer = await qa.forward(question=QUESTION)
    assert answer.answer == ANSWER and qa.module.threads and qa.module.threads[0] != threading.main_thread().name


async def test_a_variable_naming_no_known_module_is_refused_with_the_known_ones(session: SessionContext) -> None:
    await session.register_variable("strategy", "module", "TreeOfThought")
    with pytest.raises(ValueError, match=r"variable 'strategy': 'TreeOfThought' names no known module; known: ") as e:
        await ModuleVariableResolver(session).create_module("strategy", "question -> answer")
    assert all(name in str(e.value) for name in MODULES)
