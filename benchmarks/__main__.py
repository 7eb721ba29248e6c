"""`python -m benchmarks [--quick] [--out PATH]`: bridge latency against in-run baselines.

The servers run in a child process (`benchmarks._servers`); this process is the client,
with grpc.aio in one asyncio loop. Every bridge case is judged against a baseline timed
in the same run, interleaved with it, so the ratios hold on whatever machine runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from dataclasses import asdict, dataclass
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


#: Sized so the default run takes well under two minutes (about 35 s on a 2-core machine).
FULL = Plans(
    small=Plan(warmup=300, rounds=200, per_round=40),
    tensor=Plan(warmup=6, rounds=60, per_round=4),
    batch=Plan(warmup=6, rounds=60, per_round=4),
)


async def run(plans: Plans) -> tuple[list[Row], dict[str, str]]:
    """Measures every group; returns the rows and notes for the environment record."""
    rows: list[Row] = []
    notes: dict[str, str] = {}
    with server_process() as ports:
        bridge_channel = connect(f"127.0.0.1:{ports.bridge}")
        echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports.echo}", options=channel_options())
        try:
            echo = echo_channel.unary_unary(ECHO_METHOD)
            session = await SessionContext("bench", bridge_channel).initialize()
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FACTOR:g}x the rounds: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument(
        "--runs", type=int, default=1, help="repeat everything N times; rows give the median run and the ratio range"
    )
    args = parser.parse_args(argv)
    plans = FULL.scaled(QUICK_FACTOR) if args.quick else FULL
    env = environment({"quick": args.quick, "runs": args.runs, "plans": asdict(plans)})  # before: what it imports
    results = [asyncio.run(run(plans)) for _ in range(max(1, args.runs))]
    rows = combine([rows for rows, _ in results]) if len(results) > 1 else results[0][0]
    env.update(results[-1][1])
    print(table(rows))
    write_json(args.out, env, rows)
    print(f"\nwrote {args.out}")
    failed = [row.name for row in rows if row.passed is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
