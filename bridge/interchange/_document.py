"""The export document: what one snapshot of a session holds, and the checks an import makes on it.

    {"format": "dspex-variables", "format_version": 1,
     "session_id": ..., "revision": ..., "exported_at": ISO 8601,
     "variables": [{"name", "type", "value", "constraints", "metadata", "access_rules",
                    "dependencies": [names], "version"?, "history"?, "optimization_history"?}],
     "dependency_graph"?: [{"from": name, "to": name, "type": "data"}]}

Variables are sorted by name; dependencies name variables (IDs differ between sessions).
"""

from __future__ import annotations

from typing import Any

from ..errors import ValidationError
from ._formats import ImportFormatError

FORMAT = "dspex-variables"
FORMAT_VERSION = 1
#: What differs between two exports of the same variables from different sessions.
VOLATILE_FIELDS = ("session_id", "revision", "exported_at")


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
        for key, kind in (("constraints", dict), ("metadata", dict), ("access_rules", list), ("dependencies", list)):
            if key in var and not isinstance(var[key], kind):
                raise ValidationError(f"{name}: {key} must be a {kind.__name__}", variable=name, rule="import")
    return document
