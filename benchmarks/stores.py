"""`python -m benchmarks.stores [--quick] [--runs N] [--out PATH]`: the same calls through each store.

One child process (`benchmarks._store_servers`) hosts a bridge per store (memory; SQLite with
synchronous=full, the default; SQLite with synchronous=normal) and the raw gRPC echo, in one
loop; this process is the client. All cases of a group are interleaved in shuffled rounds, so
each store sees the same drift of a shared machine:

- set: `set_variable` of a float (one committed write); get: `get_variable` of it, uncached;
- batch: an atomic `update_variables` of 10 floats (one write of ten variables), and
  `get_variables` of 100 names.

Each store's row is priced against the raw echo (context) and the memory store's same call;
the target is SQLite's set at most 2x the memory store's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, replace
from pathlib import Path

import grpc

from bridge.client import SessionContext, connect
from bridge.limits import channel_options

from ._cases import SMALL_PAYLOAD
from ._measure import Plan, Stats, interleave
from ._processes import child_servers
from ._report import Row, Target, combine, environment, table, write_json
from ._servers import ECHO_METHOD
from ._store_servers import STORES

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "stores.json"
QUICK_FACTOR = 0.1
ECHO = "raw echo 32 B"
SET_TARGET = Target("<=", 2.0)
BATCH = [f"b{i:02d}" for i in range(10)]
MANY = [f"m{i:03d}" for i in range(100)]

SMALL = Plan(warmup=200, rounds=150, per_round=20)
GROUPED = Plan(warmup=20, rounds=60, per_round=5)


@contextlib.contextmanager
def store_servers() -> Iterator[dict[str, int]]:
    """The child process's ports by store name (and "echo"); it stops when this exits."""
    with child_servers("benchmarks._store_servers") as (ports, _):
        yield ports


@contextlib.asynccontextmanager
async def sessions(ports: dict[str, int]) -> AsyncIterator[dict[str, SessionContext]]:
    """A session per store, cache off (these rows price calls), with the variables the cases use."""
    async with contextlib.AsyncExitStack() as stack:
        found = {}
        for store in STORES:
            channel = await stack.enter_async_context(connect(f"127.0.0.1:{ports[store]}"))
            session = await SessionContext("bench_stores", channel).initialize()
            session.set_cache_config(ttl=0)
            await session.register_variable("f", "float", 0.5)
            await session.register_variables(
                [{"name": n, "type": "float", "initial_value": 1.0} for n in (*BATCH, *MANY)]
            )
            found[store] = session
        yield found


def _rows(name: str, stats: dict[str, Stats], echo: Stats, target: Target | None = None) -> list[Row]:
    """Each store's `name` call against the echo, and each SQLite one against the memory store's."""
    rows = [Row.versus(f"{name}: {store}", stats[store], ECHO, echo) for store in STORES]
    memory = stats["memory"]
    rows += [
        Row.versus(f"{name}: {store} / memory", stats[store], f"{name}: memory", memory, target)
        for store in STORES
        if store != "memory"
    ]
    return rows


async def run(small: Plan, grouped: Plan) -> list[Row]:
    with store_servers() as ports:
        echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['echo']}", options=channel_options())
        echo = echo_channel.unary_unary(ECHO_METHOD)
        try:
            async with sessions(ports) as by_store:
                values = itertools.cycle((0.25, 0.75))  # every write changes the value
                ops = {ECHO: lambda: echo(SMALL_PAYLOAD)}
                for store, s in by_store.items():
                    ops[f"set {store}"] = lambda s=s: s.set_variable("f", next(values))
                    ops[f"get {store}"] = lambda s=s: s.get_variable("f", bypass_cache=True)
                gc.collect()
                calls = await interleave(ops, small)
                batch = {ECHO: lambda: echo(SMALL_PAYLOAD)}
                for store, s in by_store.items():
                    batch[f"batch {store}"] = lambda s=s: s.update_variables(dict.fromkeys(BATCH, next(values)))
                    batch[f"many {store}"] = lambda s=s: s.get_variables(MANY)
                gc.collect()
                grouped_calls = await interleave(batch, grouped)
        finally:
            await echo_channel.close()
    base = calls[ECHO]

    def by(prefix: str, found: dict[str, Stats]) -> dict[str, Stats]:
        return {store: found[f"{prefix} {store}"] for store in STORES}

    return [
        Row.of(ECHO, base, note="baseline"),
        *_rows("set_variable (float)", by("set", calls), base, SET_TARGET),
        *_rows("get_variable (float, uncached)", by("get", calls), base),
        *_rows("update_variables (10 floats, atomic)", by("batch", grouped_calls), base),
        *_rows("get_variables (100 names)", by("many", grouped_calls), base),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stores", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FACTOR:g}x the rounds: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--runs", type=int, default=1, help="repeat N times; rows give the median and the range")
    args = parser.parse_args(argv)
    small, grouped = (SMALL.scaled(QUICK_FACTOR), GROUPED.scaled(QUICK_FACTOR)) if args.quick else (SMALL, GROUPED)
    runs = max(1, args.runs)
    plans = {"small": asdict(small), "grouped": asdict(grouped)}
    env = environment({"quick": args.quick, "runs": runs, "plans": plans})
    results = [asyncio.run(run(replace(small, seed=seed), replace(grouped, seed=seed))) for seed in range(runs)]
    rows = combine(results) if runs > 1 else results[0]
    print(table(rows))
    write_json(args.out, env, rows)
    print(f"\nwrote {args.out}")
    failed = [row.name for row in rows if row.passed is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
