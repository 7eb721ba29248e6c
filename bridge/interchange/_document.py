"""The export document: what one snapshot of a session holds, and the checks an import makes on it.

    {"format": "dspex-variables", "format_version": 1,
     "session_id": ..., "revision": ..., "exported_at": ISO 8601,
     "variables": [{"name", "type", "value", "constraints", "metadata", "access_rules",
                    "dependencies"?: [name, or {"name", "type", "metadata"} for a typed edge], "version",
                    "history"?: [{"version", "value", "updated_at", "updated_by", "metadata"}]}],
     "optimization_runs"?: [{"optimization_id", "optimizer_type", "variables": [names], "state", ...,
                             "trials": [{"iteration", "candidate", "score", "metrics", ...}]}]}

Variables are sorted by name; dependencies name variables (IDs differ between sessions): a
plain name is a data edge without metadata, an object gives the edge's type (data,
constraint, optimization) and metadata. Together they are the dependency graph.
"dependencies" is there with include_dependencies, "history" and "optimization_runs" with
include_history. Runs are for the record: an import restores values, versions, history and
typed dependencies, not runs (a run belongs to the session that ran it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import ValidationError
from ._formats import ImportFormatError

FORMAT = "dspex-variables"
FORMAT_VERSION = 1
#: What differs between two exports of the same variables from different sessions.
VOLATILE_FIELDS = ("session_id", "revision", "exported_at")
#: How an import treats a variable the session already has (see docs/interchange.md).
MERGE_STRATEGIES = ("replace", "keep", "merge")
_VERSION_KEYS = frozenset({"version", "value", "updated_at", "updated_by", "metadata"})
#: A variable's optional fields and what each must be.
_FIELD_KINDS = (
    ("constraints", dict),
    ("metadata", dict),
    ("access_rules", list),
    ("dependencies", list),
    ("history", list),
)


def check_document(document: Any) -> dict[str, Any]:
    """The document, if it is one this version reads; ImportFormatError naming the problem otherwise."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ImportFormatError(f"not a dspex export (expected format {FORMAT!r})")
    version = document.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ImportFormatError(f"format_version must be a positive int, got {str(version)[:20]!r}")
    if version > FORMAT_VERSION:
        raise ImportFormatError(
            f"this export has format_version {version}, newer than the {FORMAT_VERSION} this dspex-dspy reads; "
            "upgrade dspex-dspy to import it"
        )
    variables = document.get("variables")
    if not isinstance(variables, list):
        raise ImportFormatError("an export's 'variables' must be a list")
    seen: set[str] = set()
    for i, var in enumerate(variables):
        if not isinstance(var, dict):
            raise ImportFormatError(f"variables[{i}] is not an object")
        name, type_ = var.get("name"), var.get("type")
        if not isinstance(name, str) or not isinstance(type_, str) or "value" not in var:
            raise ImportFormatError(f"variables[{i}] needs a name, a type and a value")
        if name in seen:
            raise ImportFormatError(f"variable {name[:60]!r} appears twice in the export")
        seen.add(name)
        for key, kind in _FIELD_KINDS:
            if key in var and not isinstance(var[key], kind):
                raise ValidationError(f"{name}: {key} must be a {kind.__name__}", variable=name, rule="import")
        if "version" in var and not _positive_int(var["version"]):
            raise ValidationError(f"{name}: version must be a positive int64", variable=name, rule="import")
        for dep in var.get("dependencies", ()):
            _check_dependency(name, dep)
        rules = var.get("access_rules")
        if rules and not all(isinstance(r, dict) for r in rules):
            raise ValidationError(f"{name}: access_rules must be objects", variable=name, rule="import")
        for j, old in enumerate(var.get("history", ())):
            _check_version(name, j, old)
    return document


def _check_dependency(name: str, dep: Any) -> None:
    if isinstance(dep, str):
        return
    typed = (
        isinstance(dep, dict)
        and set(dep) <= {"name", "type", "metadata"}
        and isinstance(dep.get("name"), str)
        and isinstance(dep.get("type", "data"), str)
        and isinstance(dep.get("metadata", {}), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in dep.get("metadata", {}).items())
    )
    if not typed:
        raise ValidationError(
            f"{name}: each dependency is a name, or {{'name', 'type', 'metadata'}} with string metadata",
            variable=name,
            rule="import",
        )


def _positive_int(value: Any) -> bool:
    """A version: what the wire's int64 carries, from 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _INT64_MAX


_INT64_MAX = 2**63 - 1


def _check_version(name: str, j: int, old: Any) -> None:
    what = f"{name}: history[{j}]"
    if not isinstance(old, dict) or set(old) != _VERSION_KEYS:
        raise ValidationError(f"{what} needs exactly the keys {sorted(_VERSION_KEYS)}", variable=name, rule="import")
    if not _positive_int(old["version"]) or not isinstance(old["updated_by"], str):
        raise ValidationError(f"{what}: version must be a positive int, updated_by a string", variable=name)
    if not isinstance(old["metadata"], dict):
        raise ValidationError(f"{what}: metadata must be an object", variable=name, rule="import")
    try:
        moment = datetime.fromisoformat(old["updated_at"]) if isinstance(old["updated_at"], str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValidationError(f"{what}: updated_at must be an ISO 8601 time with its zone", variable=name)
