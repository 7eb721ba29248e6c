"""One switch from the offline model to a real one: the `DSPEX_LM` environment variable.

`DSPEX_LM=openai/gpt-4o-mini` makes every example, notebook and the main job use
`dspy.LM("openai/gpt-4o-mini")`; `DSPEX_LM_API_BASE` and `DSPEX_LM_API_KEY` point it at
an OpenAI-compatible server (a local vLLM or Ollama, a proxy) and give its key. Unset,
they use the offline toy model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import dspy
from dspy.utils import DummyLM

from ._toy import toy_lm

MODEL_ENV = "DSPEX_LM"
API_BASE_ENV = "DSPEX_LM_API_BASE"
API_KEY_ENV = "DSPEX_LM_API_KEY"


def lm_from_env(offline: Callable[[], dspy.BaseLM] = toy_lm, environ: Mapping[str, str] | None = None) -> dspy.BaseLM:
    """A real `dspy.LM` when DSPEX_LM names a model (with DSPEX_LM_API_BASE/KEY if set), else `offline()`."""
    env = os.environ if environ is None else environ
    model = env.get(MODEL_ENV, "").strip()
    if not model:
        return offline()
    kwargs = {}
    if env.get(API_BASE_ENV):
        kwargs["api_base"] = env[API_BASE_ENV]
    if env.get(API_KEY_ENV):
        kwargs["api_key"] = env[API_KEY_ENV]
    return dspy.LM(model, **kwargs)


def describe_lm(lm: dspy.BaseLM) -> str:
    """One line saying which model a script runs on (and that the offline one is a stand-in)."""
    if lm.model == "toy/qa":
        return f"the offline toy model (set {MODEL_ENV}=provider/model for a real one)"
    if isinstance(lm, DummyLM):
        return f"DummyLM, offline (set {MODEL_ENV}=provider/model for a real LM)"
    base = lm.kwargs.get("api_base")
    return f"{lm.model}" + (f" at {base}" if base else "")
