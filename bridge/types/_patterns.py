"""String patterns run on the server's event loop, so they use RE2: matching takes linear
time whatever the pattern, where a backtracking regex (`(a+)+b`) could stall every session.

re2 is imported on the first pattern, not with `bridge`: most clients never check one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..limits import DEFAULT_LIMITS


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """A compiled RE2 pattern; ValueError for invalid ones or features RE2 lacks (backreferences, lookaround)."""
    import re2

    if len(pattern) > DEFAULT_LIMITS.max_pattern_length:
        raise ValueError(f"pattern is {len(pattern)} characters; the limit is {DEFAULT_LIMITS.max_pattern_length}")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"{pattern!r} is not a valid RE2 pattern ({detail}); backreferences and lookaround are not supported"
        ) from None
