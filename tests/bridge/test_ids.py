"""The server's pooled random IDs: distinct, well-formed, and never shared with a forked child."""

from __future__ import annotations

import os

from bridge.limits import is_id
from bridge.server._ids import new_id


def test_ids_are_distinct_and_have_the_reserved_form() -> None:
    ids = [new_id("var_") for _ in range(5_000)]  # more than one pool's worth
    assert len(set(ids)) == len(ids)
    assert all(is_id(i) and len(i) == 4 + 24 for i in ids)
    assert all(int(i[4:], 16) >= 0 for i in ids)


def test_a_forked_child_draws_new_randomness() -> None:
    new_id("var_")  # the pool now holds IDs the child would otherwise inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next IDs and leave at once
        os.write(write, " ".join(new_id("var_") for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id("var_") for _ in range(100)}
    assert len(child) == 100
    assert not child & parent
