"""Live binding of predictors' LM parameters to session variables.

A sync reads (or creates) the variables once, writes their values into each predictor's
`config`, and then follows them with one watch: each update, by this client or any other,
is applied to `config` as it arrives. An LM call therefore reads a local dict and makes no
RPC; it sees a write once the watch has delivered it, and `wait_applied` lets a caller
await exactly that (by version or by value), with no sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from bridge import SessionContext, VariableExistsError, VariableNotFoundError

from ._lm_parameters import ALWAYS, LM_PARAMETERS, Slot, check_carrier, slots, wanted

log = logging.getLogger("dspex.dspy")
_ANY = object()


class ParameterSync:
    """The variables of one module's predictors, kept in their `config` by a watch task."""

    def __init__(self, session: SessionContext, bound: Sequence[Slot]) -> None:
        self.session = session
        self.slots = list(bound)
        self._by_variable: dict[str, list[Slot]] = {}
        for slot in self.slots:
            self._by_variable.setdefault(slot.variable, []).append(slot)
        #: variable -> the version whose value the predictors hold now.
        self.versions: dict[str, int] = {}
        self.values: dict[str, Any] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def mapping(self) -> dict[str, str]:
        """parameter -> variable name, as sync_dspy_parameters returns it."""
        return {slot.key: slot.variable for slot in self.slots}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _apply(self, variable: str, value: Any, version: int) -> None:
        if version <= self.versions.get(variable, 0):
            return  # an older value than the one applied (the watch's initial after our read)
        for slot in self._by_variable[variable]:
            slot.apply(value)
        self.versions[variable] = version
        self.values[variable] = value

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def start(self, infos: dict[str, dict[str, Any]]) -> None:
        """Applies the values read at sync time, then follows the variables from that point on."""
        for variable, info in infos.items():
            self._apply(variable, info["value"], info["version"])
        watch = self.session.watch_variables(list(self._by_variable), include_initial=True)
        self._task = asyncio.create_task(self._follow(watch), name=f"dspy parameter sync {list(self._by_variable)}")

    async def _follow(self, watch: Any) -> None:
        try:
            async for update in watch:
                if update.kind == "delete":
                    log.warning("synced variable %r was deleted; its predictors keep the last value", update.name)
                    continue
                self._apply(update.name, update.value, update.version)
                await self._notify()
        except Exception as exc:  # the session went away: the predictors keep their values, waiters are told
            log.warning("parameter sync of %s stopped: %s", sorted(self._by_variable), exc)
        finally:
            watch.close()
            await self._notify()

    async def refresh(self) -> None:
        """Reads every variable once and applies it: a pull, for callers that must not wait on the watch."""
        infos = await self.session.get_variables(list(self._by_variable), include_metadata=True)
        for variable, info in infos.items():
            self._apply(variable, info["value"], info["version"])
        await self._notify()

    async def wait_applied(
        self, variable: str, *, version: int | None = None, value: Any = _ANY, timeout: float | None = None
    ) -> int:
        """Waits until the predictors hold `variable` at `version` (or later), or with `value`; returns the version."""
        if variable not in self._by_variable:
            raise KeyError(f"{variable!r} is not synced here; synced: {sorted(self._by_variable)}")

        def holds() -> bool:
            if version is not None and self.versions.get(variable, 0) < version:
                return False
            return value is _ANY or self.values.get(variable, _ANY) == value

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: holds() or not self.running)
        if not holds():
            raise RuntimeError(f"the sync of {variable!r} stopped before that update arrived")
        return self.versions[variable]

    async def aclose(self) -> None:
        """Stops following; the predictors keep the values they hold."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def bind(session: SessionContext, module: Any, prefix: str, *, create: bool) -> ParameterSync:
    """A started ParameterSync for the module: existing variables are bound (their values win), missing ones
    created from what the predictors use now (`create`), or refused with KeyError (restore)."""
    candidates = wanted(module, prefix) if create else slots(module, prefix, LM_PARAMETERS)
    for _ in range(3):  # register what is missing, then bind; again if another client registered one meanwhile
        names = [s.variable for s in candidates]
        found = await session.get_variables(names, defaults=dict.fromkeys(names), include_metadata=True)
        existing = {name: info for name, info in found.items() if info["found"]}
        if not create:
            candidates = [s for s in candidates if s.variable in existing]
            missing = [s.variable for s in slots(module, prefix, ALWAYS) if s.variable not in existing]
            if missing:
                raise VariableNotFoundError(
                    f"no synced variables {missing} to restore from; sync_dspy_parameters(module, "
                    f"variable_prefix={prefix!r}) creates them",
                    variable=",".join(missing),
                )
        for slot in candidates:
            if slot.variable in existing:
                check_carrier(slot, existing[slot.variable])
        new = [s for s in candidates if s.variable not in existing]
        if not new:
            sync = ParameterSync(session, candidates)
            await sync.start(existing)
            return sync
        try:
            await session.register_variables(
                [
                    {
                        "name": s.variable,
                        "type": s.parameter.type,
                        "initial_value": s.current(),
                        "constraints": s.parameter.constraints,
                        "metadata": {"dspy_parameter": s.key, "dspy_module": type(module).__name__},
                    }
                    for s in new
                ]
            )
        except VariableExistsError:
            log.info("a synced variable appeared while registering; binding to it")
    raise RuntimeError(f"could not bind {[s.variable for s in candidates]}: they kept changing while syncing")
