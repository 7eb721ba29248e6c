"""String patterns run on the server's event loop, so they use RE2: matching takes linear
time whatever the pattern, where a backtracking regex (`(a+)+b`) could stall every session."""

from __future__ import annotations

from functools import lru_cache

import re2

from ..limits import DEFAULT_LIMITS

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re2._Regexp:
    """A compiled RE2 pattern; ValueError for invalid ones or features RE2 lacks (backreferences, lookaround)."""
    if len(pattern) > DEFAULT_LIMITS.max_pattern_length:
        raise ValueError(f"pattern is {len(pattern)} characters; the limit is {DEFAULT_LIMITS.max_pattern_length}")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"{pattern!r} is not a valid RE2 pattern ({detail}); backreferences and lookaround are not supported"
        ) from None
