"""Optimizer calls on the run loop's path: inline while they are quick, in a worker thread otherwise.

A thread hop costs about a fifth of a round trip here, which is most of a quick sampler's
time (TPE, random, grid). But a GP fit or a slow custom optimizer must not stall the event
loop (heartbeats, watchers, a notebook), so only optimizers that declare themselves quick
start inline, and a call that takes longer than INLINE_SECONDS sends the next ones to a
thread (a sampler whose cost grows with its history, as TPE's does). Objectives always run
in a thread: one uncached LM call can take longer than a lease.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

#: Sync calls quicker than this run on the event loop.
INLINE_SECONDS = 0.005


class Offloader:
    """Runs one kind of call (say, the optimizer's) where its last duration says it belongs."""

    def __init__(self, inline: bool = False) -> None:
        self.inline = inline

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        seconds = 0.0

        def timed() -> Any:
            nonlocal seconds
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                seconds = time.perf_counter() - start  # where it ran, so a thread hop is not counted

        try:
            return timed() if self.inline else await asyncio.to_thread(timed)
        finally:
            self.inline = self.inline and seconds < INLINE_SECONDS
