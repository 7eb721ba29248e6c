"""`python -m benchmarks.watch [--quick] [--runs N] [--pin] [--out PATH]`: watch delivery against raw gRPC.

The servers run in a child process (`benchmarks._servers`: the bridge, the raw echo, and a raw
grpc.aio fan-out); this process holds the writers and watchers, each watcher a client of its own
(spread over several channels), as separate programs would be. Three measurements:

- latency: one `set_variable` until a watcher of that variable has the update, interleaved with
  a raw 32 B unary echo (the baseline), a `set_variable` of an unwatched variable, and the same
  round in raw grpc.aio (a unary publish, then its message on a subscriber's stream);
- fan-out: one writer, 100 watchers of one variable, every write delivered to each, against the
  raw fan-out doing the same with the same number of streams;
- memory: the server process's resident memory per idle open watch.

Not judged here: `set_variable` against the echo, with the event log on the write path. That is
`python -m benchmarks --pin`, run A/B against the code before it (see BENCHMARKS.md, "Watch").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from bridge.client import SessionContext, Watch, connect
from bridge.limits import channel_options

from .__main__ import _pin
from ._fanout import PUBLISH, SUBSCRIBE
from ._measure import Plan, Stats, interleave
from ._processes import ServerPorts, server_process
from ._report import Row, Target, environment, table
from ._servers import ECHO_METHOD

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "watch.json"
ECHO = "raw echo 32 B"
#: The same round as a watch's, in raw gRPC: a unary publish, and its message on another stream.
RAW_DELIVERY = "raw grpc.aio: unary publish, then its stream message"
PAYLOAD = bytes(range(32))
FANOUT_WATCHERS = 100
CHANNELS = 10
LATENCY_TARGET = Target("<=", 1.5)
FANOUT_TARGET = Target(">=", 10_000)


@dataclass(frozen=True, slots=True)
class Plans:
    latency: Plan
    #: Fan-out rounds (`rounds`), each of `per_round` writes delivered to every watcher.
    fanout: Plan
    idle_watchers: int


#: Sized so a run takes about a minute on a 2-core machine.
FULL = Plans(
    latency=Plan(warmup=300, rounds=200, per_round=40),
    fanout=Plan(warmup=1, rounds=10, per_round=200),
    idle_watchers=500,
)
#: A smoke test of a few seconds (the test suite runs it); its figures mean little.
QUICK = Plans(
    latency=Plan(warmup=20, rounds=10, per_round=10),
    fanout=Plan(warmup=0, rounds=2, per_round=20),
    idle_watchers=50,
)


@dataclass(frozen=True, slots=True)
class Throughput:
    """Deliveries per second over the rounds: median, against the raw fan-out in the same run."""

    name: str
    deliveries: int
    per_second: float
    baseline_per_second: float
    target: Target

    @property
    def passed(self) -> bool:
        return self.target.met(self.per_second)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        target = f"{self.target.op} {self.target.value:g}/s"
        data.update(target=target, ratio=self.per_second / self.baseline_per_second, passed=self.passed)
        return data


async def clients(
    address: str, count: int, session: SessionContext
) -> tuple[list[grpc.aio.Channel], list[SessionContext]]:
    """`count` clients of `session`, on CHANNELS channels: other programs joining with its token."""
    channels = [connect(address) for _ in range(min(count, CHANNELS))]
    joined = [
        await SessionContext(session.session_id, channels[i % len(channels)], token=session.token).initialize()
        for i in range(count)
    ]
    return channels, joined


async def latency(ports: ServerPorts, writer: SessionContext, plan: Plan) -> list[Row]:
    """set -> the watcher has the update, against the echo: what a watcher waits after a write begins.

    One timed call writes, waits for the reply, then for the watcher's update: an upper bound of the
    delivery time (the update arrives just after the reply; starting the write in the background and
    waiting for the watcher only measured the same).
    """
    echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports.echo}", options=channel_options())
    raw_channels = [grpc.aio.insecure_channel(f"127.0.0.1:{ports.fanout}") for _ in range(2)]
    channels, [watcher] = await clients(f"127.0.0.1:{ports.bridge}", 1, writer)
    try:
        echo = echo_channel.unary_unary(ECHO_METHOD)
        publish = raw_channels[0].unary_unary(PUBLISH)
        subscription = raw_channels[1].unary_stream(SUBSCRIBE)(b"")
        await subscription.read()  # subscribed
        watch = watcher.watch_variable("watched", include_initial=False)
        await watch.started()
        values = itertools.cycle((0.25, 0.75))

        async def delivered() -> None:
            await writer.set_variable("watched", next(values))
            await anext(watch)

        async def raw_publish() -> None:
            await publish(PAYLOAD * 3)
            await subscription.read()

        stats = await interleave(
            {
                ECHO: lambda: echo(PAYLOAD),
                "set_variable": lambda: writer.set_variable("unwatched", next(values)),
                "delivered": delivered,
                RAW_DELIVERY: raw_publish,
            },
            plan,
        )
        watch.close()
        subscription.cancel()
    finally:
        await echo_channel.close()
        for channel in (*channels, *raw_channels):
            await channel.close()
    base = stats[ECHO]
    return [
        Row.of(ECHO, base, note="baseline"),
        Row.versus("set_variable (unwatched float)", stats["set_variable"], ECHO, base),
        Row.versus("set -> watcher has the update", stats["delivered"], ECHO, base, LATENCY_TARGET),
        Row.versus(RAW_DELIVERY, stats[RAW_DELIVERY], ECHO, base),
    ]


async def _bridge_round(writer: SessionContext, watches: list[Watch], writes: int, start: int) -> float:
    async def follow(watch: Watch) -> None:
        for _ in range(writes):
            await anext(watch)

    began = time.perf_counter()
    following = asyncio.gather(*(follow(w) for w in watches))
    for value in range(start, start + writes):
        await writer.set_variable("fan", value)
    await following
    return time.perf_counter() - began


async def _raw_round(publish: Any, streams: list[grpc.aio.UnaryStreamCall], writes: int) -> float:
    async def follow(stream: grpc.aio.UnaryStreamCall) -> None:
        for _ in range(writes):
            await stream.read()

    began = time.perf_counter()
    following = asyncio.gather(*(follow(s) for s in streams))
    for _ in range(writes):
        await publish(PAYLOAD * 3)  # about a change message's size
    await following
    return time.perf_counter() - began


async def fanout(ports: ServerPorts, writer: SessionContext, plan: Plan) -> tuple[list[Row], Throughput]:
    """One writer, FANOUT_WATCHERS watchers: bridge rounds and raw rounds, alternating."""
    channels, watchers = await clients(f"127.0.0.1:{ports.bridge}", FANOUT_WATCHERS, writer)
    raw_channels = [grpc.aio.insecure_channel(f"127.0.0.1:{ports.fanout}") for _ in range(CHANNELS)]
    try:
        watches = [w.watch_variable("fan", include_initial=False) for w in watchers]
        for watch in watches:
            await watch.started()
        publish = raw_channels[0].unary_unary(PUBLISH)
        streams = [raw_channels[i % CHANNELS].unary_stream(SUBSCRIBE)(b"") for i in range(FANOUT_WATCHERS)]
        for stream in streams:
            await stream.read()  # subscribed
        writes, bridge_s, raw_s = plan.per_round, [], []
        for i in range(plan.warmup + plan.rounds):
            gc.collect()
            b = await _bridge_round(writer, watches, writes, i * writes)
            r = await _raw_round(publish, streams, writes)
            if i >= plan.warmup:
                bridge_s.append(b)
                raw_s.append(r)
        for watch in watches:
            watch.close()
        for stream in streams:
            stream.cancel()
    finally:
        for channel in (*channels, *raw_channels):
            await channel.close()
    deliveries = writes * FANOUT_WATCHERS

    def per_delivery(seconds: list[float]) -> Stats:
        ns = [int(s / deliveries * 1e9) for s in seconds]
        return Stats.of(ns if len(ns) > 1 else ns * 2)

    raw_name = f"raw grpc.aio fan-out to {FANOUT_WATCHERS} streams (per delivery)"
    bridge, raw = per_delivery(bridge_s), per_delivery(raw_s)
    rows = [
        Row.of(raw_name, raw, note="baseline"),
        Row.versus(f"watch fan-out to {FANOUT_WATCHERS} watchers (per delivery)", bridge, raw_name, raw),
    ]
    rate = Throughput(
        f"watch fan-out, 1 writer -> {FANOUT_WATCHERS} watchers",
        deliveries * len(bridge_s),
        deliveries / statistics.median(bridge_s),
        deliveries / statistics.median(raw_s),
        FANOUT_TARGET,
    )
    return rows, rate


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def idle_memory(ports: ServerPorts, writer: SessionContext, count: int) -> dict[str, Any]:
    """The server's resident memory per idle open watch, and per idle raw grpc.aio stream for scale.

    Each is the growth from opening a second `count` of them once the first `count` are open, so
    that it is theirs and not the allocator's first pools."""
    address = f"127.0.0.1:{ports.bridge}"
    channels, watchers = await clients(address, count, writer)
    raw_channels = [grpc.aio.insecure_channel(f"127.0.0.1:{ports.fanout}") for _ in range(CHANNELS)]
    try:
        watches: list[Watch] = []
        bridge_rss = [_rss_bytes(ports.pid)]
        for _ in range(2):
            batch = [w.watch_variable("idle") for w in watchers]
            for watch in batch:
                await watch.started()
            watches += batch
            bridge_rss.append(_rss_bytes(ports.pid))
        streams: list[grpc.aio.UnaryStreamCall] = []
        raw_rss = [_rss_bytes(ports.pid)]
        for _ in range(2):
            batch_streams = [raw_channels[i % CHANNELS].unary_stream(SUBSCRIBE)(b"") for i in range(count)]
            for stream in batch_streams:
                await stream.read()
            streams += batch_streams
            raw_rss.append(_rss_bytes(ports.pid))
        for watch in watches:
            watch.close()
        for stream in streams:
            stream.cancel()
    finally:
        for channel in (*channels, *raw_channels):
            await channel.close()
    return {
        "watchers": count,
        "bytes_per_watcher": (bridge_rss[2] - bridge_rss[1]) / count,
        "bytes_per_raw_stream": (raw_rss[2] - raw_rss[1]) / count,
        "bridge_rss_bytes": bridge_rss,
        "raw_rss_bytes": raw_rss,
    }


async def run(plans: Plans, server_cpu: int | None) -> tuple[list[Row], Throughput, dict[str, Any]]:
    with server_process(server_cpu) as ports:
        channel = connect(f"127.0.0.1:{ports.bridge}")
        try:
            writer = await SessionContext("watch_bench", channel).initialize()
            for name in ("watched", "unwatched", "fan", "idle"):
                await writer.register_variable(name, "float", 0.0)
            memory = await idle_memory(ports, writer, plans.idle_watchers)
            gc.collect()
            rows = await latency(ports, writer, plans.latency)
            gc.collect()
            fan_rows, rate = await fanout(ports, writer, plans.fanout)
        finally:
            await channel.close()
    return rows + fan_rows, rate, memory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--runs", type=int, default=1, help="repeat N times; figures are the median run's")
    parser.add_argument("--pin", action="store_true", help="pin the client and the server process to a core each")
    args = parser.parse_args(argv)
    plans = QUICK if args.quick else FULL
    pinned = _pin() if args.pin else None
    runs = max(1, args.runs)
    env = environment({"quick": args.quick, "runs": runs, "plans": asdict(plans), "pinned": pinned})
    results = []
    for seed in range(runs):
        seeded = Plans(Plan(**{**asdict(plans.latency), "seed": seed}), plans.fanout, plans.idle_watchers)
        results.append(asyncio.run(run(seeded, pinned["server"] if pinned else None)))
    # The run whose latency ratio is the median stands for all of them (with the range of the others).
    ranked = sorted(results, key=lambda r: r[0][2].ratio or 0.0)
    rows, rate, memory = ranked[len(ranked) // 2]
    ratios = [r[0][2].ratio for r in results if r[0][2].ratio is not None]
    print(table(rows))
    print(
        f"\n{rate.name}: {rate.per_second:,.0f} deliveries/s (raw grpc.aio fan-out: {rate.baseline_per_second:,.0f}/s,"
        f" {rate.per_second / rate.baseline_per_second:.2f}x), target {rate.target.op} {rate.target.value:,.0f}/s: "
        + ("PASS" if rate.passed else "FAIL")
    )
    print(
        f"server memory per idle watcher: {memory['bytes_per_watcher'] / 1024:.1f} KiB"
        f" (a raw grpc.aio stream: {memory['bytes_per_raw_stream'] / 1024:.1f} KiB; {memory['watchers']} more opened)"
    )
    if runs > 1:
        print(f"delivery latency ratio over {runs} runs: {min(ratios):.2f}-{max(ratios):.2f}")
    record = {
        "environment": env,
        "rows": [r.to_json() for r in rows],
        "throughput": rate.to_json(),
        "memory": memory,
        "latency_ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    failed = [row.name for row in rows if row.passed is False] + ([] if rate.passed else [rate.name])
    if failed:
        print(f"targets missed: {', '.join(failed)}", file=sys.stderr)


if __name__ == "__main__":
    main()
