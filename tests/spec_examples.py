"""Pulls the usage examples out of the spec (docs/spec), so tests run them exactly as written."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parent.parent / "docs" / "spec" / "python-variables-api.md"


def example(function: str) -> str:
    """The `Examples:` block of the docstring of `async def <function>(` in the spec (a class's methods too)."""
    text = SPEC.read_text()
    start = re.search(rf"^\s*(async )?def {re.escape(function)}\(", text, re.M)
    if start is None:
        raise LookupError(f"{function} is not in the spec")
    body = text[start.end() :]
    examples = body.index("Examples:")
    end = body.index('"""', examples)
    return textwrap.dedent(body[examples + len("Examples:") : end]).strip("\n") + "\n"


def usage_example(title: str) -> str:
    """The python block under a `### <title>` heading of the spec's usage examples."""
    text = SPEC.read_text()
    section = text[text.index(f"### {title}\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    if match is None:
        raise LookupError(f"no python block under {title!r} in the spec")
    return match.group(1)


async def run_code(code: str, where: str = "<spec example>", **namespace: Any) -> dict[str, Any]:
    """Runs code as the body of an async function (so `await` works as written); returns its locals."""
    source = "async def __example():\n" + textwrap.indent(code, "    ") + "\n    return locals()\n"
    scope: dict[str, Any] = dict(namespace)
    exec(compile(source, where, "exec"), scope)
    return await scope["__example"]()


async def run_example(function: str, **namespace: Any) -> dict[str, Any]:
    """Runs an example as the body of an async function; returns its local variables."""
    return await run_code(example(function), f"<spec example: {function}>", **namespace)
