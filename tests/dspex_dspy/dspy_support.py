"""Shared pieces of the DSPy plugin tests: a DummyLM task, its metrics, a second client, spec extraction."""

from __future__ import annotations

from typing import Any

import dspy
from dspy.utils import DummyLM
from helpers import other_client
from spec_examples import example as spec_method_example
from spec_examples import run_code
from spec_examples import usage_example as spec_usage_example

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


__all__ = ["other_client", "run_code", "spec_method_example", "spec_usage_example"]
