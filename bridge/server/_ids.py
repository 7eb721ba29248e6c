"""Random IDs for variables, runs and cache trackers: 96 bits, hex, from a pooled read of the OS's randomness.

`secrets.token_hex(12)` makes one system call per ID, which is most of what creating a
variable costs in an import or a batch registration of thousands; one read of 256 IDs'
worth serves the next 256. The pool is emptied in a forked child, so parent and child
never hand out the same IDs.
"""

from __future__ import annotations

import os
from collections import deque

_ID_BYTES = 12
_POOLED = 256
_pool: deque[str] = deque()
if hasattr(os, "register_at_fork"):  # POSIX; elsewhere no fork can copy the pool
    os.register_at_fork(after_in_child=_pool.clear)


def new_id(prefix: str) -> str:
    """`prefix` and 24 random hex digits."""
    try:
        return prefix + _pool.pop()
    except IndexError:  # empty: refill (two threads refilling at once only draw more randomness)
        digits = os.urandom(_ID_BYTES * _POOLED).hex()
        width = 2 * _ID_BYTES
        _pool.extend(digits[i : i + width] for i in range(width, len(digits), width))
        return prefix + digits[:width]
