"""Where sessions, variables and event logs live. One interface; every backend passes one conformance suite."""

from __future__ import annotations

from ..errors import ValidationError
from ..limits import DEFAULT_LIMITS, Limits
from ._interface import Listener, Store, Transaction
from ._memory import MemoryStore
from ._records import (
    FINISH_STATES,
    RUN_STATES,
    RUNNING,
    AccessRuleRecord,
    Change,
    EventLog,
    LogEntry,
    OptimizationRecord,
    SessionRecord,
    SessionSnapshot,
    StoredValue,
    TrialRecord,
    VariableRecord,
    VariableStatsRecord,
)

#: Backends by the name `dspex serve --store NAME` takes.
BACKENDS: dict[str, type[Store]] = {"memory": MemoryStore}


def open_store(name: str = "memory", limits: Limits = DEFAULT_LIMITS) -> Store:
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise ValidationError(f"unknown store {name!r}; available: {', '.join(BACKENDS)}", rule="store") from None
    return backend(limits)


__all__ = [
    "BACKENDS",
    "FINISH_STATES",
    "RUNNING",
    "RUN_STATES",
    "AccessRuleRecord",
    "Change",
    "EventLog",
    "Listener",
    "LogEntry",
    "MemoryStore",
    "OptimizationRecord",
    "SessionRecord",
    "SessionSnapshot",
    "Store",
    "StoredValue",
    "Transaction",
    "TrialRecord",
    "VariableRecord",
    "VariableStatsRecord",
    "open_store",
]
