"""`python -m benchmarks [--quick] [--runs N] [--pin] [--out PATH]`: bridge latency against in-run baselines.

The servers run in a child process (`benchmarks._servers`); this process is the client,
with grpc.aio in one asyncio loop. Every bridge case is judged against a baseline timed
in the same run, interleaved with it, so the ratios hold on whatever machine runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import grpc

from bridge.client import SessionContext, connect
from bridge.limits import channel_options

from . import _cases
from ._measure import Plan
from ._processes import redis_process, redis_version, server_process
from ._report import Row, combine, environment, table, write_json
from ._servers import ECHO_METHOD

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
QUICK_FACTOR = 0.15


@dataclass(frozen=True, slots=True)
class Plans:
    """Per-group amounts: `small` for sub-millisecond calls (and redis), the others for calls of many ms."""

    small: Plan
    tensor: Plan
    batch: Plan

    def scaled(self, factor: float) -> Plans:
        return Plans(self.small.scaled(factor), self.tensor.scaled(factor), self.batch.scaled(factor))

    def seeded(self, seed: int) -> Plans:
        """The same amounts in other round orders: each of `--runs N` uses its own."""
        return Plans(replace(self.small, seed=seed), replace(self.tensor, seed=seed), replace(self.batch, seed=seed))


#: Sized so the default run takes well under two minutes (about 35 s on a 2-core machine).
FULL = Plans(
    small=Plan(warmup=300, rounds=200, per_round=40),
    tensor=Plan(warmup=6, rounds=60, per_round=4),
    batch=Plan(warmup=6, rounds=60, per_round=4),
)


async def run(plans: Plans, server_cpu: int | None = None) -> tuple[list[Row], dict[str, str]]:
    """Measures every group; returns the rows and notes for the environment record."""
    rows: list[Row] = []
    notes: dict[str, str] = {}
    with server_process(server_cpu) as ports:
        bridge_channel = connect(f"127.0.0.1:{ports.bridge}")
        echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports.echo}", options=channel_options())
        try:
            echo = echo_channel.unary_unary(ECHO_METHOD)
            session = await SessionContext("bench", bridge_channel).initialize()
            session.set_cache_config(ttl=0)  # these rows price the calls; the cache has its own benchmark
            await _cases.register_variables(session)
            groups = (
                lambda: _cases.small_calls(session, echo, plans.small),
                lambda: _cases.tensor_calls(session, echo, plans.tensor),
                lambda: _cases.batch_calls(session, plans.batch),
            )
            for group in groups:
                gc.collect()  # no collection left over from the previous group
                rows += await group()
        finally:
            await bridge_channel.close()
            await echo_channel.close()
    version = redis_version()
    if version is None:
        print("redis: not installed, skipped", file=sys.stderr)
        notes["redis_server"] = "not installed, skipped"
    else:
        notes["redis_server"] = version
        with redis_process() as port:
            gc.collect()
            rows += await _cases.redis_calls(port, plans.small)
    return rows, notes


def _pin() -> dict[str, int]:
    """Pins this process (the client) to its first usable core; returns it and the core for the server."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs two usable cores")
    os.sched_setaffinity(0, {cpus[0]})
    return {"client": cpus[0], "server": cpus[1]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FACTOR:g}x the rounds: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat everything N times; rows give the median run and the ratio range"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the client and the server process to one core each: steadier ratios for comparing two versions"
        " of the code, but higher ones (a faster baseline); targets are judged unpinned",
    )
    args = parser.parse_args(argv)
    plans = FULL.scaled(QUICK_FACTOR) if args.quick else FULL
    pinned = _pin() if args.pin else None
    runs = max(1, args.runs)
    extra = {"quick": args.quick, "runs": runs, "seeds": list(range(runs)), "plans": asdict(plans), "pinned": pinned}
    env = environment(extra)  # before: what it imports
    server_cpu = pinned["server"] if pinned else None
    results = [asyncio.run(run(plans.seeded(seed), server_cpu)) for seed in range(runs)]
    rows = combine([rows for rows, _ in results]) if len(results) > 1 else results[0][0]
    env.update(results[-1][1])
    print(table(rows))
    if pinned:
        print(
            f"\npinned: client on core {pinned['client']}, server on core {pinned['server']}."
            " Compare versions of the code with these ratios; judge targets on an unpinned run."
        )
    write_json(args.out, env, rows)
    print(f"\nwrote {args.out}")
    failed = [row.name for row in rows if row.passed is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
