"""Build a DSPy module from a `module` variable: the spec's strategy selection ('Predict', 'ChainOfThought', ...).

The variable names the strategy; the resolver builds that module class over the given
signature. The result is awaitable as the spec writes it (`await qa.forward(question=...)`):
modules with a native async path run through `acall`, the others in a worker thread, so
the event loop (watchers, heartbeats, a notebook) keeps going during the LM call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import dspy

from bridge import SessionContext

#: Module classes built from a signature. The ones that act through tools get tools=[] unless given some.
MODULES: dict[str, Callable[..., dspy.Module]] = {
    "Predict": dspy.Predict,
    "ChainOfThought": dspy.ChainOfThought,
    "ReAct": dspy.ReAct,
    "ReActV2": dspy.ReActV2,
    "ProgramOfThought": dspy.ProgramOfThought,
    "MultiChainComparison": dspy.MultiChainComparison,
    "CodeAct": dspy.CodeAct,
    "RLM": dspy.RLM,
}
_NEEDS_TOOLS = frozenset({"ReAct", "ReActV2", "CodeAct"})


class ResolvedModule:
    """A DSPy module built from a variable: `await forward(...)` as in the spec, `module(...)` to call it in sync code.

    `module` is the plain DSPy module, for compiling, saving or syncing its parameters.
    """

    def __init__(self, module: dspy.Module, strategy: str, variable: str) -> None:
        self.module = module
        self.strategy = strategy
        self.variable = variable

    async def forward(self, **kwargs: Any) -> dspy.Prediction:
        if _has_async_path(self.module):
            return await self.module.acall(**kwargs)
        return await asyncio.to_thread(self.module, **kwargs)

    async def acall(self, **kwargs: Any) -> dspy.Prediction:
        return await self.forward(**kwargs)

    def __call__(self, **kwargs: Any) -> dspy.Prediction:
        return self.module(**kwargs)

    def __repr__(self) -> str:
        return f"ResolvedModule({self.strategy!r} from {self.variable!r}: {self.module!r})"


def _has_async_path(module: dspy.Module) -> bool:
    """Whether the class that defines the module's `forward` defines its `aforward` too (CodeAct inherits
    ReAct's aforward but not its forward, so only its sync path is its own)."""
    owner = next(cls for cls in type(module).__mro__ if "forward" in vars(cls))
    return owner is not dspy.Module and "aforward" in vars(owner)


class ModuleVariableResolver:
    """Builds the module a `module`-typed variable names; `register` adds your own strategies."""

    def __init__(self, session: SessionContext) -> None:
        self.session = session
        self.modules: dict[str, Callable[..., dspy.Module]] = dict(MODULES)

    def register(self, name: str, factory: Callable[..., dspy.Module]) -> None:
        """Makes `name` (the variable's value) build `factory(signature, **kwargs)`."""
        if not callable(factory):
            raise TypeError(f"the factory for {name!r} must be callable (a dspy.Module class), got {factory!r}")
        self.modules[name] = factory

    def resolve(self, value: Any) -> tuple[str, Callable[..., dspy.Module]]:
        """The strategy name and factory for a variable's value ('ChainOfThought' or 'dspy.ChainOfThought')."""
        name = value.removeprefix("dspy.") if isinstance(value, str) else value
        factory = self.modules.get(name) if isinstance(name, str) else None
        if factory is None:
            raise ValueError(f"{value!r} names no known module; known: {', '.join(sorted(self.modules))}")
        return name, factory

    async def create_module(self, variable: str, signature: Any, **kwargs: Any) -> ResolvedModule:
        """The module the variable names now, over `signature`; `kwargs` go to its constructor."""
        value = await self.session.get_variable(variable)
        try:
            name, factory = self.resolve(value)
        except ValueError as exc:
            raise ValueError(f"variable {variable!r}: {exc}") from None
        if name in _NEEDS_TOOLS:
            kwargs.setdefault("tools", [])
        return ResolvedModule(factory(signature, **kwargs), name, variable)
