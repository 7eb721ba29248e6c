"""DSPyOptimizationBridge: the spec's entry point from a session to DSPy teleprompters and programs."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Mapping
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from bridge import SessionContext, VariableNotFoundError

from ._optimizer import VariableAwareOptimizer
from ._parameters import accepted_kwargs, check_carrier, check_mappings
from ._search import SEARCHES, optimizer_name, search_class
from ._sync import ParameterSync, bind


def check_teleprompter(optimizer_class: Any) -> type:
    """The class, if it is a DSPy teleprompter class; TypeError saying what was given otherwise."""
    if isinstance(optimizer_class, Teleprompter):
        raise TypeError(
            f"pass the teleprompter class, not an instance: {type(optimizer_class).__name__}, not "
            f"{type(optimizer_class).__name__}(...) (its arguments go in create_variable_aware_optimizer's kwargs)"
        )
    if not (inspect.isclass(optimizer_class) and issubclass(optimizer_class, Teleprompter)):
        raise TypeError(
            f"{optimizer_class!r} is not a DSPy teleprompter: pass a subclass of dspy.teleprompt.Teleprompter, "
            "such as BootstrapFewShot, BootstrapFewShotWithRandomSearch, LabeledFewShot, MIPROv2 or GEPA"
        )
    return optimizer_class


class DSPyOptimizationBridge:
    """Teleprompters whose parameters live in session variables, and programs whose LM settings do.

    `async with DSPyOptimizationBridge(session)` (or `await close()`) stops the parameter
    syncs it started; the predictors keep the values they hold.
    """

    def __init__(self, session_context: SessionContext) -> None:
        self.session_context = session_context
        #: dspy_<teleprompter> optimizer_type -> class, registered on this session by this bridge.
        self._registered_optimizers: dict[str, type] = {}
        self._syncs: weakref.WeakKeyDictionary[dspy.Module, ParameterSync] = weakref.WeakKeyDictionary()

    async def __aenter__(self) -> DSPyOptimizationBridge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for sync in list(self._syncs.values()):
            await sync.aclose()
        self._syncs.clear()

    # ------------------------------------------------------------ teleprompters

    async def create_variable_aware_optimizer(
        self, optimizer_class: type, variable_mappings: Mapping[str, str], **kwargs: Any
    ) -> VariableAwareOptimizer:
        """A VariableAwareOptimizer for `optimizer_class` whose `variable_mappings` (parameter -> variable)
        are read from the session; `kwargs` are the teleprompter's other arguments (`metric=` also scores trials).

        Checked here, before anything runs: the class is a teleprompter, each mapping name is one
        of its parameters (or a derived name such as teacher_temperature), each variable exists
        and its type can carry the parameter, and every kwarg is one the class takes.
        """
        teleprompter = check_teleprompter(optimizer_class)
        if not isinstance(variable_mappings, Mapping) or not variable_mappings:
            raise ValueError("variable_mappings must map at least one teleprompter parameter to a variable")
        params = check_mappings(teleprompter, variable_mappings)
        metric = kwargs.get("metric")
        accepted = accepted_kwargs(teleprompter)
        takes_metric = accepted is None or "metric" in accepted
        init_kwargs = {k: v for k, v in kwargs.items() if k != "metric" or takes_metric}
        unknown = [] if accepted is None else sorted(set(init_kwargs) - accepted)
        if unknown:
            raise TypeError(
                f"{teleprompter.__name__} takes no argument {', '.join(map(repr, unknown))}; "
                f"it takes {', '.join(sorted(accepted or ()))}"
            )
        both = sorted(name for name, p in params.items() if p.stage == "init" and name in init_kwargs)
        if both:
            raise ValueError(f"{both} are mapped to variables and passed as arguments too; give each one way")
        infos = await self._infos(variable_mappings)
        for name, param in params.items():
            check_carrier(param, variable_mappings[name], infos[variable_mappings[name]])
        names = {param: infos[ref]["name"] for param, ref in variable_mappings.items()}
        search = SEARCHES.get(optimizer_name(teleprompter.__name__)) or search_class(teleprompter.__name__)
        if self._registered_optimizers.get(search.name) is not search:
            await self.session_context.register_python_optimizer(search.name, search)
            self._registered_optimizers[search.name] = search
        return VariableAwareOptimizer(self.session_context, teleprompter, params, names, init_kwargs, metric, infos)

    async def _infos(self, variable_mappings: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        refs = list(dict.fromkeys(variable_mappings.values()))
        found = await self.session_context.get_variables(refs, defaults=dict.fromkeys(refs), include_metadata=True)
        missing = [(param, ref) for param, ref in variable_mappings.items() if not found[ref]["found"]]
        if missing:
            listed = ", ".join(f"{param} -> {ref!r}" for param, ref in missing)
            raise VariableNotFoundError(
                f"variable_mappings name variables that do not exist in session "
                f"{self.session_context.session_id!r}: {listed}; register them first",
                variable=",".join(ref for _, ref in missing),
            )
        return found

    # ------------------------------------------------------------ program parameters

    async def sync_dspy_parameters(self, dspy_module: dspy.Module, variable_prefix: str = "") -> dict[str, str]:
        """Binds every predictor's LM parameters to variables (created when missing) and returns
        parameter -> variable name; from then on a change of a variable, by any client, sets the
        predictor's config for its next LM call (see `parameter_sync`)."""
        return (await self._bind(dspy_module, variable_prefix, create=True)).mapping

    async def restore_dspy_parameters(self, dspy_module: dspy.Module, variable_prefix: str = "") -> dict[str, str]:
        """Puts the synced variables' values back into a (reloaded) module's predictors and keeps them synced;
        KeyError when the variables were never created (DSPy's save() does not keep a predictor's config)."""
        return (await self._bind(dspy_module, variable_prefix, create=False)).mapping

    async def _bind(self, module: dspy.Module, prefix: str, *, create: bool) -> ParameterSync:
        if not isinstance(module, dspy.Module):
            raise TypeError(f"expected a dspy.Module, got {type(module).__name__}")
        if not isinstance(prefix, str):
            raise TypeError(f"variable_prefix must be a string, got {type(prefix).__name__}")
        previous = self._syncs.pop(module, None)
        if previous is not None:
            await previous.aclose()
        sync = await bind(self.session_context, module, prefix, create=create)
        self._syncs[module] = sync
        return sync

    def parameter_sync(self, dspy_module: dspy.Module) -> ParameterSync:
        """The live sync of a module (to await an update with `wait_applied`, or `refresh`)."""
        try:
            return self._syncs[dspy_module]
        except KeyError:
            raise KeyError(f"{type(dspy_module).__name__} is not synced; call sync_dspy_parameters first") from None
