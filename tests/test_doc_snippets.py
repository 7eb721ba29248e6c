"""Code blocks in the README and docs/ that claim to run do run, as written.

Each ```python block is preceded by a marker line: `<!-- runnable -->` (a complete script:
run in a fresh interpreter, in an empty directory, and it must exit 0) or `<!-- fragment -->`
(a piece shown for illustration, e.g. with notebook-style top-level `await`: it must at
least compile). A block with neither is an error, so no block's claim is left implicit.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:^<!-- (?P<mark>runnable|fragment) -->\n)?^```python\n(?P<code>.*?)^```", re.M | re.S)


def _blocks() -> list[tuple[str, str | None, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            found.append((f"{doc.relative_to(ROOT)}:{line}", match.group("mark"), match.group("code")))
    return found


BLOCKS = _blocks()
RUNNABLE = [(where, code) for where, mark, code in BLOCKS if mark == "runnable"]


def test_every_python_block_says_whether_it_runs() -> None:
    unmarked = [where for where, mark, _ in BLOCKS if mark is None]
    assert not unmarked, f"mark these blocks <!-- runnable --> or <!-- fragment -->: {unmarked}"
    assert RUNNABLE, "the README's example should be runnable"


FRAGMENTS = [(where, code) for where, mark, code in BLOCKS if mark == "fragment"]


@pytest.mark.parametrize("where,code", FRAGMENTS, ids=[w for w, _ in FRAGMENTS])
def test_fragments_compile(where: str, code: str) -> None:
    compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("where,code", RUNNABLE, ids=[w for w, _ in RUNNABLE])
def test_runnable_blocks_run(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
