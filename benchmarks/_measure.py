"""Interleaved timing: cases compared with each other are measured in alternating rounds.

On a shared 2-core machine the speed of the moment drifts (other work, frequency, cache);
timing a bridge call and its baseline in alternating short rounds exposes both to the same
drift, and medians of per-call times ignore the occasional stall.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

Op = Callable[[], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure one group of cases: `rounds` x `per_round` timed calls per case,
    with the rounds' order shuffled by `seed`."""

    warmup: int
    rounds: int
    per_round: int
    seed: int = 0

    def scaled(self, factor: float) -> Plan:
        return replace(self, warmup=max(2, round(self.warmup * factor)), rounds=max(4, round(self.rounds * factor)))


@dataclass(frozen=True, slots=True)
class Stats:
    n: int
    median_us: float
    p90_us: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Stats:
        p90 = statistics.quantiles(samples_ns, n=10, method="inclusive")[-1]
        return cls(n=len(samples_ns), median_us=statistics.median(samples_ns) / 1e3, p90_us=p90 / 1e3)


async def interleave(ops: dict[str, Op], plan: Plan) -> dict[str, Stats]:
    """Warms up every op, then times each call, in rounds whose order is shuffled (seeded, so
    repeatable): an op's first calls in a round run colder, and a fixed rotation would always
    put the same op before it, which measurably biased the op that followed a heavier one."""
    for op in ops.values():
        for _ in range(plan.warmup):
            await op()
    names = list(ops)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    rng = random.Random(plan.seed)
    for _ in range(plan.rounds):
        for name in rng.sample(names, len(names)):
            op, out = ops[name], samples[name]
            for _ in range(plan.per_round):
                start = clock()
                await op()
                out.append(clock() - start)
    return {name: Stats.of(ns) for name, ns in samples.items()}
