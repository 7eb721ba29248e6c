"""`python -m benchmarks.stores [--quick] [--runs N] [--out PATH]`: the same calls through each store.

One child process (`benchmarks._store_servers`) hosts a bridge per store (memory; SQLite with
synchronous=full, the default; SQLite with synchronous=normal; Redis, on a redis-server this
benchmark starts) and the raw gRPC echo, in one loop; this process is the client, and also
times redis-py's own SET and GET against the same redis-server. All cases of a group are
interleaved in shuffled rounds, so each store sees the same drift of a shared machine:

- set: `set_variable` of a float (one committed write); get: `get_variable` of it, uncached;
- batch: an atomic `update_variables` of 10 floats (one write of ten variables), and
  `get_variables` of 100 names.

Each store's row is priced against the raw echo (context) and the memory store's same call.
Targets: SQLite's set at most 2x the memory store's; the Redis store's set at most the raw
echo + 2x a redis-py SET. Then the scaling rows: 32 clients (a session each) setting floats
as fast as they can through 1, then 2 `dspex` servers on one Redis (separate processes).
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
import redis.asyncio as aioredis

from bridge.client import SessionContext, connect
from bridge.limits import channel_options

from ._cases import SMALL_PAYLOAD
from ._measure import Plan, Stats, interleave
from ._processes import child_servers, redis_process, redis_version
from ._report import Row, Target, combine, environment, table, write_json
from ._servers import ECHO_METHOD
from ._store_servers import STORES

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "stores.json"
QUICK_FACTOR = 0.1
ECHO = "raw echo 32 B"
SET_TARGET = Target("<=", 2.0)
REDIS_SET, REDIS_GET = "redis-py SET", "redis-py GET"
REDIS_ECHO = "raw echo 32 B awaiting one redis-py GET in its handler"
#: The Redis store's set against its budget, the raw echo + 2 redis-py SETs: at most 1x that.
REDIS_BUDGET_TARGET = Target("<=", 1.0)
SCALE_CLIENTS = 32
SCALE_SECONDS = 4.0
BATCH = [f"b{i:02d}" for i in range(10)]
MANY = [f"m{i:03d}" for i in range(100)]

SMALL = Plan(warmup=200, rounds=150, per_round=20)
GROUPED = Plan(warmup=20, rounds=60, per_round=5)


@contextlib.contextmanager
def store_servers(redis_port: int, *args: str) -> Iterator[dict[str, int]]:
    """The child process's ports by store name (and "echo"); it stops when this exits."""
    with child_servers("benchmarks._store_servers", "--redis-port", str(redis_port), *args) as (ports, _):
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
    """Each store's `name` call against the echo, and each SQLite one (the target's) and Redis one against the
    memory store's."""
    rows = [Row.versus(f"{name}: {store}", stats[store], ECHO, echo) for store in STORES]
    memory = stats["memory"]
    rows += [
        Row.versus(
            f"{name}: {store} / memory", stats[store], f"{name}: memory", memory, target if "sqlite" in store else None
        )
        for store in STORES
        if store != "memory"
    ]
    return rows


def _redis_budget(redis_set: Stats, echo: Stats, redis_py_set: Stats) -> Row:
    """The Redis store's set against the raw echo + 2 redis-py SETs (the target's budget), as a ratio."""
    budget = echo.median_us + 2 * redis_py_set.median_us
    return Row(
        "set_variable (float): redis / (raw echo + 2x redis-py SET)",
        redis_set.n,
        redis_set.median_us,
        redis_set.p90_us,
        f"{ECHO} + 2x {REDIS_SET} = {budget:,.1f} us",
        redis_set.median_us / budget,
        REDIS_BUDGET_TARGET,
    )


async def run(small: Plan, grouped: Plan, redis_port: int) -> list[Row]:
    client = aioredis.Redis(port=redis_port)
    with store_servers(redis_port) as ports:
        echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['echo']}", options=channel_options())
        echo = echo_channel.unary_unary(ECHO_METHOD)
        redis_echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports['redis echo']}", options=channel_options())
        redis_echo = redis_echo_channel.unary_unary(ECHO_METHOD)
        try:
            async with sessions(ports) as by_store:
                values = itertools.cycle((0.25, 0.75))  # every write changes the value
                ops = {
                    ECHO: lambda: echo(SMALL_PAYLOAD),
                    REDIS_SET: lambda: client.set("bench:raw", SMALL_PAYLOAD),
                    REDIS_GET: lambda: client.get("bench:raw"),
                    REDIS_ECHO: lambda: redis_echo(SMALL_PAYLOAD),
                }
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
            await redis_echo_channel.close()
            await client.aclose()
    base = calls[ECHO]

    def by(prefix: str, found: dict[str, Stats]) -> dict[str, Stats]:
        return {store: found[f"{prefix} {store}"] for store in STORES}

    sets = by("set", calls)
    return [
        Row.of(ECHO, base, note="baseline"),
        Row.of(REDIS_SET, calls[REDIS_SET], note="baseline"),
        Row.of(REDIS_GET, calls[REDIS_GET], note="baseline"),
        Row.versus(REDIS_ECHO, calls[REDIS_ECHO], ECHO, base),
        *_rows("set_variable (float)", sets, base, SET_TARGET),
        _redis_budget(sets["redis"], base, calls[REDIS_SET]),
        Row.versus("set_variable (float): redis / echo awaiting Redis", sets["redis"], REDIS_ECHO, calls[REDIS_ECHO]),
        *_rows("get_variable (float, uncached)", by("get", calls), base),
        *_rows("update_variables (10 floats, atomic)", by("batch", grouped_calls), base),
        *_rows("get_variables (100 names)", by("many", grouped_calls), base),
    ]


async def _throughput(ports: list[int], seconds: float) -> float:
    """set_variable calls per second of SCALE_CLIENTS clients, each its own session, spread over the servers."""
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for i in range(SCALE_CLIENTS):
            channel = await stack.enter_async_context(connect(f"127.0.0.1:{ports[i % len(ports)]}"))
            session = await SessionContext(f"scale_{len(ports)}_{i}", channel).initialize()
            session.set_cache_config(ttl=0)
            await session.register_variable("f", "float", 0.5)
            clients.append(session)
        done = 0
        stop = asyncio.Event()

        async def work(session: SessionContext) -> None:
            nonlocal done
            values = itertools.cycle((0.25, 0.75))
            while not stop.is_set():
                await session.set_variable("f", next(values))
                done += 1

        tasks = [asyncio.create_task(work(s)) for s in clients]
        await asyncio.sleep(seconds / 4)  # warm-up: connections, caches, the servers' first calls
        start, started_with = asyncio.get_running_loop().time(), done
        await asyncio.sleep(seconds)  # the measured window (a benchmark's clock, not a synchronisation)
        counted, elapsed = done - started_with, asyncio.get_running_loop().time() - start
        stop.set()
        await asyncio.gather(*tasks)
        return counted / elapsed


async def scaling(redis_port: int, seconds: float) -> list[Row]:
    """Throughput of 32 clients through 1 and through 2 Redis-backed servers (each its own process)."""
    found = {}
    for n in (1, 2):
        with contextlib.ExitStack() as stack:
            ports = [stack.enter_context(store_servers(redis_port, "--only", "redis"))["redis"] for _ in range(n)]
            found[n] = await _throughput(ports, seconds)
    one, two = found[1], found[2]

    def row(servers: int, per_second: float, ratio: float | None = None) -> Row:
        """µs per set of all clients together (1e6 / sets per second), so that runs combine by their median."""
        us = 1e6 / per_second
        name = f"throughput, {SCALE_CLIENTS} clients, {servers} server{'s' if servers > 1 else ''} on redis"
        return Row(name, int(per_second * seconds), us, us, "1 server" if ratio else None, ratio, note="us/set")

    return [row(1, one), row(2, two, two / one)]


async def run_all(small: Plan, grouped: Plan, seconds: float) -> list[Row]:
    with redis_process() as redis_port:
        rows = await run(small, grouped, redis_port)
        return rows + await scaling(redis_port, seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stores", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_FACTOR:g}x the rounds: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--runs", type=int, default=1, help="repeat N times; rows give the median and the range")
    args = parser.parse_args(argv)
    small, grouped = (SMALL.scaled(QUICK_FACTOR), GROUPED.scaled(QUICK_FACTOR)) if args.quick else (SMALL, GROUPED)
    runs = max(1, args.runs)
    plans = {"small": asdict(small), "grouped": asdict(grouped)}
    seconds = SCALE_SECONDS * (QUICK_FACTOR * 5 if args.quick else 1)
    env = environment({"quick": args.quick, "runs": runs, "plans": plans, "redis": redis_version()})
    results = [
        asyncio.run(run_all(replace(small, seed=seed), replace(grouped, seed=seed), seconds)) for seed in range(runs)
    ]
    rows = combine(results) if runs > 1 else results[0]
    print(table(rows))
    write_json(args.out, env, rows)
    print(f"\nwrote {args.out}")
    failed = [row.name for row in rows if row.passed is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
