"""`python -m benchmarks.optimization [--quick] [--runs N] [--out PATH]`: a tpe run through the bridge vs bare Optuna.

Per run: 200 iterations of `tpe` (seed 0) on a trivial objective, once through
`start_optimization` against a `dspex` server in a child process, once as a bare in-process
Optuna ask/tell loop with the same sampler and seed, alternating, plus a raw 32 B gRPC echo
to price one round trip. The two candidate sequences must be identical. Then, in-process,
the server memory each history entry costs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import grpc
import optuna

from bridge import BridgeServer, SessionContext, connect
from bridge.limits import channel_options

from ._processes import server_process
from ._report import environment
from ._servers import ECHO_METHOD

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "optimization.json"
ITERATIONS = 200
SEED = 0
TARGET_OVERHEAD_MS = 2.0


def objective(x: float) -> float:
    return -((x - 0.3) ** 2)


async def async_objective(x: float) -> float:
    """The same objective as a coroutine: the run loop awaits it inline, with no worker-thread hop."""
    return objective(x)


def bare_optuna(iterations: int) -> tuple[float, list[float]]:
    """Seconds for the loop, and its candidates: what the bridge run is compared with."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=SEED), direction="maximize")
    distribution = {"x": optuna.distributions.FloatDistribution(0.0, 2.0)}
    seen = []
    for _ in range(iterations):
        trial = study.ask(distribution)
        x = trial.params["x"]
        seen.append(x)
        study.tell(trial, objective(x))
    return time.perf_counter() - start, seen


async def through_bridge(
    session: SessionContext, iterations: int, run: int, fn: Any = objective
) -> tuple[float, list[float]]:
    name = f"x{run}_{getattr(fn, '__name__', 'fn')}"
    await session.register_variable(name, "float", 1.0, constraints={"min": 0.0, "max": 2.0})
    seen: list[float] = []
    start = time.perf_counter()
    await session.start_optimization(
        name,
        "tpe",
        max_iterations=iterations,
        convergence_threshold=0,
        objective=fn,
        callback=lambda i, value, metrics: seen.append(value),
        seed=SEED,
    )
    status = await session.wait_optimization(name)
    elapsed = time.perf_counter() - start
    assert status["state"] == "completed" and status["iteration"] == iterations, status
    return elapsed, seen


async def echo_round_trip_us(echo: grpc.aio.UnaryUnaryMultiCallable, calls: int) -> float:
    payload = bytes(32)
    for _ in range(50):
        await echo(payload)
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        await echo(payload)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e3


async def timing(runs: int, iterations: int) -> dict[str, Any]:
    bridge_s, async_s, bare_s, echo_us, same = [], [], [], [], []
    with server_process() as ports:
        bridge_channel = connect(f"127.0.0.1:{ports.bridge}")
        echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{ports.echo}", options=channel_options())
        try:
            echo = echo_channel.unary_unary(ECHO_METHOD)
            session = await SessionContext("bench_optimization", bridge_channel).initialize()
            await through_bridge(session, 20, -1)  # warm-up: imports, first study, connection
            for run in range(runs):
                gc.collect()
                bare, bare_seen = bare_optuna(iterations)
                gc.collect()  # each side starts with no garbage left by the other
                bridged, bridge_seen = await through_bridge(session, iterations, run)
                gc.collect()
                awaited, async_seen = await through_bridge(session, iterations, run, async_objective)
                echo_us.append(await echo_round_trip_us(echo, 400))
                bare_s.append(bare)
                bridge_s.append(bridged)
                async_s.append(awaited)
                same.append(bare_seen == bridge_seen == async_seen)
        finally:
            await bridge_channel.close()
            await echo_channel.close()
    bare_ms = statistics.median(bare_s) / iterations * 1e3
    bridge_ms = statistics.median(bridge_s) / iterations * 1e3
    overhead = [(b - o) / iterations * 1e3 for b, o in zip(bridge_s, bare_s, strict=True)]
    async_overhead = [(b - o) / iterations * 1e3 for b, o in zip(async_s, bare_s, strict=True)]
    return {
        "iterations": iterations,
        "runs": runs,
        "same_candidate_sequence": all(same),
        "bare_optuna_ms_per_iteration": bare_ms,
        "bridge_ms_per_iteration": bridge_ms,
        "overhead_ms_per_iteration": statistics.median(overhead),
        "overhead_ms_range": [min(overhead), max(overhead)],
        "ratio_bridge_over_bare": bridge_ms / bare_ms,
        "async_objective_overhead_ms_per_iteration": statistics.median(async_overhead),
        "raw_echo_round_trip_us": statistics.median(echo_us),
        "overhead_in_round_trips": statistics.median(overhead) * 1e3 / statistics.median(echo_us),
        "target_overhead_ms": TARGET_OVERHEAD_MS,
        "passed": statistics.median(overhead) <= TARGET_OVERHEAD_MS and all(same),
    }


async def memory_per_entry(small: int, large: int) -> dict[str, Any]:
    """Server-side bytes per history entry: the slope between a short and a long run in one process.

    Both runs are longer than the variable's version history (1,000 kept), so the slope is
    what the optimization history alone adds per iteration.
    """
    async with BridgeServer() as server, connect(server.address) as channel:
        session = await SessionContext("bench_memory", channel).initialize()
        sizes = {}
        for n in (small, large):
            await session.register_variable(f"m{n}", "float", 1.0, constraints={"min": 0.0, "max": 2.0})
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            await session.start_optimization(
                f"m{n}",
                "random",
                max_iterations=n,
                convergence_threshold=0,
                objective=lambda x: {"score": objective(x), "accuracy": 0.5},
                metric="score",
                seed=SEED,
            )
            await session.wait_optimization(f"m{n}")
            gc.collect()
            sizes[n] = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
    per_entry = (sizes[large] - sizes[small]) / (large - small)
    return {"runs": [small, large], "bytes": sizes, "bytes_per_history_entry": per_entry}


def table(result: dict[str, Any]) -> str:
    t, m = result["timing"], result["memory"]
    rows = [
        ("bare Optuna ask/tell (tpe, seed 0)", f"{t['bare_optuna_ms_per_iteration']:.3f} ms/it", "baseline"),
        (
            "start_optimization(tpe) through the bridge",
            f"{t['bridge_ms_per_iteration']:.3f} ms/it",
            f"{t['ratio_bridge_over_bare']:.2f}x bare",
        ),
        (
            "overhead per iteration",
            f"{t['overhead_ms_per_iteration']:.3f} ms",
            f"{t['overhead_in_round_trips']:.1f} raw echo round trips; target <= {TARGET_OVERHEAD_MS} ms: "
            + ("PASS" if t["passed"] else "MISS"),
        ),
        (
            "overhead with an async objective",
            f"{t['async_objective_overhead_ms_per_iteration']:.3f} ms",
            "awaited inline: no worker-thread hop for the objective",
        ),
        ("raw gRPC echo 32 B", f"{t['raw_echo_round_trip_us']:.0f} µs", "one round trip"),
        ("same candidate sequence", str(t["same_candidate_sequence"]), f"{t['iterations']} iterations"),
        ("server memory per history entry", f"{m['bytes_per_history_entry']:.0f} B", f"slope over runs {m['runs']}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>14}  {note}" for name, value, note in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.optimization", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and one run: a smoke test")
    parser.add_argument("--runs", type=int, default=5, help="alternating bare/bridge runs; medians are reported")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    iterations = 40 if args.quick else ITERATIONS
    runs = 1 if args.quick else max(1, args.runs)
    env = environment({"quick": args.quick, "runs": runs, "iterations": iterations})
    result = {
        "timing": asyncio.run(timing(runs, iterations)),
        "memory": asyncio.run(memory_per_entry(1_500, 3_000) if not args.quick else memory_per_entry(1_100, 1_300)),
    }
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": env, **result}, indent=2, default=str))
    print(f"\nwrote {args.out}")
    if not result["timing"]["passed"]:
        print("target missed: overhead per iteration (or the candidate sequences differ)")


if __name__ == "__main__":
    main()
