"""Shared pieces of the DSPy plugin tests: a DummyLM task, its metrics, a second client, spec extraction."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import dspy
from dspy.utils import DummyLM

from bridge import SessionContext

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "python-variables-api.md"

#: question -> answer; DummyLM answers "capital of X?" right except for the last two, which it gets wrong.
FACTS = {
    f"What is the capital of {country}?": capital
    for country, capital in [
        ("France", "Paris"),
        ("Japan", "Tokyo"),
        ("Italy", "Rome"),
        ("Canada", "Ottawa"),
        ("Kenya", "Nairobi"),
        ("Peru", "Lima"),
        ("Norway", "Oslo"),
        ("Egypt", "Cairo"),
        ("Chile", "Santiago"),
        ("Spain", "Madrid"),
        ("Ghana", "Accra"),
        ("Nepal", "Kathmandu"),
    ]
}
WRONG = {"What is the capital of Ghana?": "Kumasi", "What is the capital of Nepal?": "Pokhara"}


def examples() -> list[dspy.Example]:
    return [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in FACTS.items()]


def trainset() -> list[dspy.Example]:
    return examples()[:8]


def valset() -> list[dspy.Example]:
    return examples()[8:]


def dummy_lm(*, reasoning: bool = False, **kwargs: Any) -> DummyLM:
    """Answers each question from FACTS (WRONG for two), with a reasoning field for ChainOfThought."""
    answers = {}
    for question, answer in FACTS.items():
        fields = {"answer": WRONG.get(question, answer)}
        answers[question] = {"reasoning": "Recalling the capital.", **fields} if reasoning else fields
    return DummyLM(answers, **kwargs)


def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
    return example.answer == prediction.answer


def feedback_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
    """GEPA's metric: a score with feedback text."""
    ok = gold.answer == pred.answer
    return dspy.Prediction(score=float(ok), feedback="correct" if ok else f"the answer is {gold.answer}")


async def other_client(session: SessionContext) -> SessionContext:
    """Another client of the same session (it joins with the session's token), on the same channel."""
    return await SessionContext(session.session_id, session.channel, token=session.token).initialize()


def spec_method_example(method: str) -> str:
    """The `Examples:` block of an indented `async def <method>(` docstring in the spec (class methods)."""
    text = SPEC.read_text()
    start = re.search(rf"^\s*async def {re.escape(method)}\(", text, re.M)
    if start is None:
        raise LookupError(f"{method} is not in the spec")
    body = text[start.end() :]
    examples_at = body.index("Examples:")
    end = body.index('"""', examples_at)
    return textwrap.dedent(body[examples_at + len("Examples:") : end]).strip("\n") + "\n"


def spec_usage_example(title: str) -> str:
    """The python block under a `### <title>` heading of the spec's usage examples."""
    text = SPEC.read_text()
    section = text[text.index(f"### {title}\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


async def run_code(code: str, **namespace: Any) -> dict[str, Any]:
    """Runs code as the body of an async function (so `await` works as written); returns its locals."""
    source = "async def __example():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n"
    scope: dict[str, Any] = dict(namespace)
    exec(compile(source, "<spec example>", "exec"), scope)
    return await scope["__example"]()
