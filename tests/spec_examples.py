"""Pulls the usage examples out of the spec (docs/spec), so tests run them exactly as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parent.parent / "docs" / "spec" / "python-variables-api.md"


def example(function: str) -> str:
    """The `Examples:` block of the docstring of `async def <function>(` in the spec."""
    text = SPEC.read_text()
    start = re.search(rf"^(async )?def {re.escape(function)}\(", text, re.M)
    if start is None:
        raise LookupError(f"{function} is not in the spec")
    body = text[start.end() :]
    examples = body.index("Examples:")
    end = body.index('"""', examples)
    return textwrap.dedent(body[examples + len("Examples:") : end]).strip("\n") + "\n"


async def run_example(function: str, **namespace: Any) -> dict[str, Any]:
    """Runs an example as the body of an async function; returns its local variables."""
    code = example(function)
    source = "async def __example():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n"
    scope: dict[str, Any] = dict(namespace)
    exec(compile(source, f"<spec example: {function}>", "exec"), scope)
    return await scope["__example"]()
