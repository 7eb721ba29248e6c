"""`python -m benchmarks.interchange [--quick] [--runs N] [--out PATH]`: export_variables / import_variables.

The server runs in a child process (`benchmarks._servers`); this process is the client. Two measurements:

- throughput: a session of 10,000 variables (floats, ints, strings, dicts), each written four
  times after its registration, exported with its history and imported into a fresh session,
  as json and as parquet: variables per second each way, next to the file format's own encode
  and decode of the same document (timed in the same rounds) for scale;
- embeddings: 1,000 768-d float32 embeddings exported and imported through parquet, against a
  raw pyarrow write + read of the same embeddings (a name column and a fixed-size-list column,
  pyarrow's defaults: the target, <= 2x) and, for context, against pyarrow writing and reading
  the very table our file holds, with our writer options (`_parquet.WRITE_OPTIONS`: zstd text
  columns, a snappy array column, page checksums).

Rounds alternate the cases in a seeded order; figures are medians over the rounds (and with
--runs N, over the runs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bridge.client import SessionContext, connect
from bridge.interchange import decode, encode
from bridge.interchange._parquet import WRITE_OPTIONS

from ._measure import Stats
from ._processes import server_process
from ._report import Row, Target, combine, environment, table, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "interchange.json"
EMBEDDING_TARGET = Target("<=", 2.0)
RAW_DEFAULTS = "raw pyarrow write+read (name + fixed-size-list, defaults)"
RAW_SAME = "raw pyarrow write+read (our file's table and options)"


@dataclass(frozen=True, slots=True)
class Plan:
    variables: int
    writes: int  # per variable, after its registration: its history
    throughput_rounds: int
    embeddings: int
    dimensions: int
    embedding_rounds: int


FULL = Plan(variables=10_000, writes=4, throughput_rounds=5, embeddings=1_000, dimensions=768, embedding_rounds=15)
#: A smoke test of a few seconds (the test suite runs it); its figures mean little.
QUICK = Plan(variables=500, writes=2, throughput_rounds=2, embeddings=100, dimensions=768, embedding_rounds=3)


def _value(i: int, write: int) -> tuple[str, Any]:
    kind = i % 4
    if kind == 0:
        return "float", i * 0.5 + write
    if kind == 1:
        return "integer", i + write
    if kind == 2:
        return "string", f"value {i} written {write} times"
    return "dict", {"index": i, "write": write, "scores": [i * 0.25, float(write)], "tag": f"t{i % 7}"}


async def _populate(session: SessionContext, plan: Plan) -> None:
    names = [f"var_{i:05d}" for i in range(plan.variables)]
    for start in range(0, len(names), 1000):
        batch = names[start : start + 1000]
        specs = []
        for name in batch:
            type_, value = _value(int(name[4:]), 0)
            specs.append({"name": name, "type": type_, "initial_value": value})
        await session.register_variables(specs)
    for write in range(1, plan.writes + 1):
        for start in range(0, len(names), 1000):
            batch = names[start : start + 1000]
            await session.update_variables({n: _value(int(n[4:]), write)[1] for n in batch})


async def _timed(op: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await op()
    return time.perf_counter() - start, result


async def throughput(channel: Any, plan: Plan, seed: int) -> tuple[list[Row], dict[str, Any]]:
    """Export and import of the whole session with history, json and parquet, rounds in a seeded order."""
    source = await SessionContext("interchange_bench", channel).initialize()
    await _populate(source, plan)
    seconds: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    rng = random.Random(seed)
    for round_ in range(plan.throughput_rounds):
        for format in rng.sample(["json", "parquet"], 2):
            gc.collect()
            took, data = await _timed(lambda f=format: source.export_variables(format=f, include_history=True))
            seconds.setdefault(f"export {format}", []).append(took)
            target = await SessionContext(f"interchange_target_{round_}_{format}", channel).initialize()
            took, summary = await _timed(lambda d=data, f=format, t=target: t.import_variables(d, format=f))
            assert summary["imported"] == plan.variables and summary["errors"] == 0, summary
            seconds.setdefault(f"import {format}", []).append(took)
            await target.cleanup()
            document = decode(data, format)
            start = time.perf_counter()
            encode(document, format)
            seconds.setdefault(f"{format} encode only", []).append(time.perf_counter() - start)
            start = time.perf_counter()
            decode(data, format)
            seconds.setdefault(f"{format} decode only", []).append(time.perf_counter() - start)
            sizes[format] = len(data)
    await source.cleanup()
    rows = []
    rates: dict[str, Any] = {"variables": plan.variables, "versions_per_variable": plan.writes + 1, "bytes": sizes}
    for format in ("json", "parquet"):
        for step, alone in (("export", "encode"), ("import", "decode")):
            name, alone_name = f"{step} {format}", f"{format} {alone} only"
            stats, alone_stats = _stats(seconds[name]), _stats(seconds[alone_name])
            count = f"({plan.variables:,} variables)"
            rows.append(Row.of(f"{alone_name} {count}", alone_stats, note="the format alone"))
            rows.append(Row.versus(f"{name} with history {count}", stats, alone_name, alone_stats))
            rates[f"{name} variables/s"] = plan.variables / statistics.median(seconds[name])
    return rows, rates


def _stats(seconds: list[float]) -> Stats:
    ns = [int(s * 1e9) for s in seconds]
    return Stats.of(ns if len(ns) > 1 else ns * 2)


def _raw_defaults(names: list[str], embeddings: np.ndarray) -> None:
    """What a user of pyarrow would do with the same embeddings: build the table, write it, read it back."""
    column = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), embeddings.shape[1])
    sink = io.BytesIO()
    pq.write_table(pa.table({"name": names, "embedding": column}), sink)
    pq.read_table(io.BytesIO(sink.getvalue()))


def _raw_same(table_: pa.Table) -> None:
    """pyarrow writing and reading the table our file holds, with our writer options."""
    sink = io.BytesIO()
    pq.write_table(table_, sink, **WRITE_OPTIONS)
    pq.read_table(io.BytesIO(sink.getvalue()), page_checksum_verification=True)


async def embeddings(channel: Any, plan: Plan, seed: int) -> tuple[list[Row], dict[str, Any]]:
    """Export + import of the embeddings through parquet, alternating with the raw pyarrow baselines."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((plan.embeddings, plan.dimensions)).astype(np.float32)
    names = [f"embedding_{i:04d}" for i in range(plan.embeddings)]
    source = await SessionContext("embedding_bench", channel).initialize()
    specs = [{"name": n, "type": "embedding", "initial_value": v} for n, v in zip(names, vectors, strict=True)]
    await source.register_variables(specs)
    file = await source.export_variables(format="parquet")
    ours = pq.read_table(io.BytesIO(file))
    seconds: dict[str, list[float]] = {"bridge": [], "export": [], "import": [], "defaults": [], "same": []}
    order = random.Random(seed)
    for round_ in range(plan.embedding_rounds):
        target = await SessionContext(f"embedding_target_{round_}", channel).initialize()
        for case in order.sample(["bridge", "defaults", "same"], 3):
            gc.collect()
            if case == "bridge":
                exported, data = await _timed(lambda: source.export_variables(format="parquet"))
                imported, summary = await _timed(lambda d=data, t=target: t.import_variables(d, format="parquet"))
                assert summary["imported"] == plan.embeddings, summary
                seconds["export"].append(exported)
                seconds["import"].append(imported)
                seconds["bridge"].append(exported + imported)
            else:
                start = time.perf_counter()
                _raw_defaults(names, vectors) if case == "defaults" else _raw_same(ours)
                seconds[case].append(time.perf_counter() - start)
        await target.cleanup()
    await source.cleanup()
    label = f"{plan.embeddings:,} x {plan.dimensions}-d float32"
    stats = {case: _stats(s) for case, s in seconds.items()}
    rows = [
        Row.of(f"{RAW_DEFAULTS}, {label}", stats["defaults"], note="baseline"),
        Row.of(f"{RAW_SAME}, {label}", stats["same"], note="baseline"),
        Row.versus(f"export_variables parquet, {label}", stats["export"], RAW_DEFAULTS, stats["defaults"]),
        Row.versus(f"import_variables parquet, {label}", stats["import"], RAW_DEFAULTS, stats["defaults"]),
        Row.versus(
            f"export + import parquet, {label}", stats["bridge"], RAW_DEFAULTS, stats["defaults"], EMBEDDING_TARGET
        ),
        Row.versus("  the same, against our file's own table", stats["bridge"], RAW_SAME, stats["same"]),
    ]
    return rows, {"embeddings": plan.embeddings, "dimensions": plan.dimensions, "file_bytes": len(file)}


async def run(plan: Plan, seed: int) -> tuple[list[Row], dict[str, Any]]:
    with server_process() as ports:
        channel = connect(f"127.0.0.1:{ports.bridge}")
        try:
            rows, rates = await throughput(channel, plan, seed)
            embedding_rows, sizes = await embeddings(channel, plan, seed)
        finally:
            await channel.close()
    return rows + embedding_rows, {"throughput": rates, "embeddings": sizes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.interchange", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: a smoke test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--runs", type=int, default=1, help="repeat N times; rows give the median run and the range")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    runs = max(1, args.runs)
    env = environment({"quick": args.quick, "runs": runs, "plan": asdict(plan)})
    results = [asyncio.run(run(plan, seed)) for seed in range(runs)]
    rows = combine([r for r, _ in results]) if runs > 1 else results[0][0]
    extra = results[len(results) // 2][1]
    extra["throughput"].update(
        {
            key: statistics.median(r[1]["throughput"][key] for r in results)
            for key in extra["throughput"]
            if key.endswith("variables/s")
        }
    )
    print(table(rows))
    print()
    for key, value in extra["throughput"].items():
        if key.endswith("variables/s"):
            print(f"{key.replace(' variables/s', '')} with history: {value:,.0f} variables/s")
    write_json(args.out, env, rows)
    _add_extra(args.out, extra)
    print(f"\nwrote {args.out}")
    failed = [row.name for row in rows if row.passed is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}")


def _add_extra(path: Path, extra: dict[str, Any]) -> None:
    report = json.loads(path.read_text())
    report.update(extra)
    path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
