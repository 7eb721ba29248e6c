"""Optimizers by name: registered in this process, or installed as `dspex.optimizers` entry points.

`bridge` never imports an optimizer package: the built-ins of `optimizers/` (and any
third-party package) declare entry points, which are loaded only when a run names them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..errors import ValidationError
from ..limits import check_name

ENTRY_POINT_GROUP = "dspex.optimizers"

_registered: dict[str, type] = {}


def check_optimizer_class(name: str, cls: Any) -> type:
    """The class, if it has the protocol's shape (ask, tell, config_keys); TypeError naming what is missing."""
    if not inspect.isclass(cls):
        raise TypeError(f"optimizer {name!r} must be a class implementing BaseOptimizer's protocol, got {cls!r}")
    missing = [attr for attr in ("ask", "tell") if not callable(getattr(cls, attr, None))]
    if not isinstance(getattr(cls, "config_keys", None), Mapping):
        missing.append("config_keys (a mapping of accepted optimizer_config keys)")
    if inspect.isabstract(cls):
        missing.extend(sorted(cls.__abstractmethods__))
    if missing:
        raise TypeError(f"optimizer {name!r} ({cls.__qualname__}) does not implement: {', '.join(missing)}")
    return cls


def register_optimizer(name: str, cls: type) -> None:
    """Makes `cls` available by `name` to every session of this process."""
    _registered[check_name(name, "optimizer name")] = check_optimizer_class(name, cls)


def _installed() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_optimizers(local: Mapping[str, type] | None = None) -> list[str]:
    """Every name a run may use: this session's, this process's, and the installed ones."""
    return sorted({*(local or {}), *_registered, *_installed()})


def resolve_optimizer(name: str, local: Mapping[str, type] | None = None) -> type:
    """The class for an optimizer_type; ValueError listing the known names when there is none."""
    if local and name in local:
        return local[name]
    if name in _registered:
        return _registered[name]
    installed = _installed().get(name)
    if installed is None:
        raise ValidationError(
            f"unknown optimizer_type {name!r}; known: {', '.join(known_optimizers(local))} "
            "(register your own with session.register_python_optimizer(name, cls))",
            rule="optimizer_type",
        )
    try:
        cls = installed.load()
    except Exception as exc:
        raise ValidationError(
            f"optimizer {name!r} is installed ({installed.value}) but failed to load: {type(exc).__name__}: {exc}",
            rule="optimizer_type",
        ) from exc
    return check_optimizer_class(name, cls)
