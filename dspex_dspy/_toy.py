"""A bundled toy question-answering task and an offline model for it, so examples and notebooks run anywhere.

`toy_lm()` is a real `dspy.LM` over a scripted engine (DSPy's custom-engine API,
`complete(Request) -> Response`). Unlike `DummyLM`, whose answers ignore the prompt's
demos and the sampling settings, it answers correctly more often with more demos in the
prompt and a temperature near 0.4, deterministically for a given prompt, so compiling
and searching have something to find. Replace it with a real model through `DSPEX_LM`.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

#: (question, answer) pairs of the toy task.
TOY_QA: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Kenya?", "Nairobi"),
    ("What is the capital of Peru?", "Lima"),
    ("What is the capital of Norway?", "Oslo"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is 2 + 2?", "4"),
    ("What is 7 * 6?", "42"),
    ("What is 15 - 9?", "6"),
    ("What is 81 / 9?", "9"),
    ("What is 12 + 30?", "42"),
    ("What is 5 * 5?", "25"),
    ("Which planet is closest to the Sun?", "Mercury"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the largest planet in the Solar System?", "Jupiter"),
    ("What gas do plants absorb from the air?", "Carbon dioxide"),
    ("What is the chemical symbol for gold?", "Au"),
    ("What is the chemical symbol for sodium?", "Na"),
    ("How many legs does a spider have?", "8"),
    ("How many continents are there?", "7"),
    ("What is the boiling point of water in Celsius?", "100"),
    ("Who wrote Hamlet?", "William Shakespeare"),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
    ("What is the longest river in Africa?", "Nile"),
    ("What is the hardest natural substance?", "Diamond"),
    ("What is the freezing point of water in Fahrenheit?", "32"),
    ("Which ocean is the largest?", "Pacific"),
    ("What language has the most native speakers?", "Mandarin Chinese"),
)

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]")
_RESPOND = re.compile(r"Respond with the corresponding output fields(.*)", re.S)
_DEFAULT_TEMPERATURE = 0.7


def toy_dataset() -> list[dspy.Example]:
    """The toy task as DSPy examples (input: question)."""
    return [dspy.Example(question=q, answer=a).with_inputs("question") for q, a in TOY_QA]


def exact_match(example: Any, prediction: Any, trace: Any = None) -> bool:
    """The toy task's metric: the answer, case and surrounding space aside."""
    return str(prediction.answer).strip().lower() == str(example.answer).strip().lower()


def toy_accuracy(demos: int, temperature: float) -> float:
    """The chance the toy model answers right: rises with demos (saturating), falls away from temperature 0.4."""
    p = 0.3 + 0.55 * (1 - math.exp(-min(demos, 8) / 2.5)) - 0.35 * (temperature - 0.4) ** 2
    return min(max(p, 0.02), 0.98)


class ToyQAEngine:
    """Scripted completions in ChatAdapter's format: right or wrong as `toy_accuracy` says, seeded per prompt."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.answers = dict(TOY_QA)
        self._others = [a for _, a in TOY_QA]

    def complete(self, request: Any) -> Response:
        last = request.messages[-1].text or ""
        demos = sum(1 for m in request.messages[:-1] if m.role == "assistant")
        temperature = request.config.temperature
        temperature = _DEFAULT_TEMPERATURE if temperature is None else temperature
        question = _first_input(last)
        answer = self._answer(question, demos, temperature)
        respond = _RESPOND.search(last)
        fields = [f for f in _FIELD.findall(respond.group(1) if respond else "") if f != "completed"] or ["answer"]
        text = "".join(
            f"[[ ## {field} ## ]]\n{answer if field == 'answer' else f'Recalling what I know about: {question}'}\n\n"
            for field in fields
        )
        message = Message.assistant([TextPart(text + "[[ ## completed ## ]]")])
        return Response(id=None, model="toy", message=message, finish_reason="stop", usage=Usage(0, 0, 0))

    def _answer(self, question: str, demos: int, temperature: float) -> str:
        gold = self.answers.get(question)
        if gold is None:
            return "I do not know"
        digest = hashlib.blake2b(f"{self.seed}|{question}|{temperature:.3f}|{demos}".encode(), digest_size=8)
        draw = int.from_bytes(digest.digest(), "big") / 2**64
        if draw < toy_accuracy(demos, temperature):
            return gold
        return self._others[(self._others.index(gold) + 1 + int(draw * 7)) % len(self._others)]


def _first_input(text: str) -> str:
    match = re.search(r"\[\[ ## \w+ ## \]\]\n(.*?)(?:\n\n|\Z)", text, re.S)
    return match.group(1).strip() if match else ""


def toy_lm(seed: int = 0) -> dspy.LM:
    """The offline stand-in model: a `dspy.LM` over `ToyQAEngine` (no network, no cache)."""
    return dspy.LM("toy/qa", engine=ToyQAEngine(seed), cache=False, temperature=_DEFAULT_TEMPERATURE, max_tokens=256)
