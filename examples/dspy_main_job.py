"""The main job: a DSPy question-answering program whose parameters live in session variables.

Run it with `python3 dev.py demo` (which sets everything up), or in the venv:
`python examples/dspy_main_job.py [--address HOST:PORT] [--out PATH] [--trials N] [--iterations N]`.

1. a `dspex serve` on the embedded store (or `--address` of a running one);
2. a ChainOfThought QA program over the bundled toy dataset, its LM parameters synced to
   variables (`qa_temperature`, `qa_max_tokens`) with `sync_dspy_parameters`;
3. the program compiled by BootstrapFewShot under an Optuna-driven VariableAwareOptimizer
   (TPE over the teacher's temperature and the number of demos), a progress bar per trial;
4. the spec's "Complete Optimization Workflow": a seeded Bayesian optimization of
   `base_temperature`, the compiled program's sampling temperature (times `style_modifier`,
   the derived `effective_temperature`), reaching the program through its synced variable;
5. the results, the best parameters, the history, and an export of the temperature
   variables with their optimization history (`--out`, default dspy_results.json).

Offline by default (the toy model); `DSPEX_LM=provider/model` (with `DSPEX_LM_API_BASE`
and `DSPEX_LM_API_KEY` for an OpenAI-compatible server) runs the same job on a real LM.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import dspy
import grpc
from dspy.teleprompt import BootstrapFewShot
from tqdm.auto import tqdm

from bridge.server import serve_process
from dspex_bridge import SessionContext
from dspex_dspy import DSPyOptimizationBridge, describe_lm, exact_match, lm_from_env, toy_dataset


def evaluate(program: dspy.Module, devset: list[dspy.Example]) -> float:
    """Accuracy (0..1) of the program on the devset, with the toy task's metric."""
    return dspy.Evaluate(devset=devset, metric=exact_match, num_threads=1)(program).score / 100


async def main_job(address: str, out: Path, trials: int, iterations: int, seed: int) -> dict[str, Any]:
    lm = lm_from_env()
    print(f"model: {describe_lm(lm)}")
    dspy.disable_logging()  # DSPy's per-evaluation log lines; the trials print their own
    data = toy_dataset()
    trainset, valset = data[:12], data[12:]
    channel = grpc.aio.insecure_channel(address)
    session = SessionContext("dspy_main_job", channel)
    await session.initialize()
    bridge = DSPyOptimizationBridge(session)

    with dspy.context(lm=lm):
        # The program's LM parameters live in variables from here on.
        program = dspy.ChainOfThought("question -> answer")
        mappings = await bridge.sync_dspy_parameters(program, variable_prefix="qa_")
        print(f"synced parameters: {mappings}")

        # The teleprompter's parameters, and the spec's workflow variables with their dependencies.
        await session.register_variable("teacher_temperature", "float", 0.7, constraints={"min": 0.0, "max": 1.5})
        await session.register_variable("max_demos", "integer", 1, constraints={"min": 1, "max": 8})
        temp_id = await session.register_variable(
            "base_temperature", "float", 0.7, constraints={"min": 0.0, "max": 2.0}
        )
        style_id = await session.register_variable("style_modifier", "float", 1.0, constraints={"min": 0.5, "max": 1.5})
        await session.register_variable("effective_temperature", "float", 0.7, dependencies=[temp_id, style_id])

        # Compile under an Optuna-driven VariableAwareOptimizer: every trial streams into the variables.
        optimizer = await bridge.create_variable_aware_optimizer(
            BootstrapFewShot,
            variable_mappings={"teacher_temperature": "teacher_temperature", "max_bootstrapped_demos": "max_demos"},
            metric=exact_match,
            max_labeled_demos=0,
        )

        def on_trial(iteration: int, value: dict[str, Any], metrics: dict[str, Any]) -> None:
            tqdm.write(
                f"Trial {iteration}: teacher_temperature={value['teacher_temperature']:.3f}, "
                f"max_demos={value['max_demos']}, score={metrics.get('score', float('nan')):.1f}"
            )

        compiled = await optimizer.compile(
            program, trainset=trainset, valset=valset, n_trials=trials, sampler="tpe", seed=seed, progress=True,
            callback=on_trial,
        )  # fmt: skip
        print(f"compiled: best trial {optimizer.best_values} scored {optimizer.best.score:.1f}% on the valset")

        # The compiled program follows the same variables (the existing ones win).
        await bridge.sync_dspy_parameters(compiled, variable_prefix="qa_")
        sync = bridge.parameter_sync(compiled)

        # The spec's workflow: the objective sets the program's temperature through its variable, then scores.
        async def objective(base_temperature: float) -> dict[str, float]:
            style = await session.get_variable("style_modifier")
            effective = min(base_temperature * style, 2.0)
            await session.update_variables({"effective_temperature": effective, "qa_temperature": effective})
            await sync.wait_applied("qa_temperature", value=effective)
            return {"accuracy": await asyncio.to_thread(evaluate, compiled, valset), "temperature": effective}

        await session.register_objective("base_temperature", objective, metric="accuracy")
        bar = tqdm(total=iterations, desc="bayesian: base_temperature", unit="it")

        def on_progress(iteration: int, value: float, metrics: dict[str, float]) -> None:
            bar.update()
            bar.set_postfix(temp=f"{value:.3f}", accuracy=f"{metrics.get('accuracy', 0):.3f}")
            tqdm.write(f"Iteration {iteration}: temp={value:.3f}, accuracy={metrics.get('accuracy', 0):.3f}")

        await session.start_optimization(
            "base_temperature",
            "bayesian",
            optimizer_config={"acquisition_function": "ei", "xi": 0.01},
            max_iterations=iterations,
            callback=on_progress,
            seed=seed,  # the spec's call plus a budget and a seed, so the demo repeats exactly
        )

        # Monitor optimization
        while True:
            status = await session.get_optimization_status("base_temperature")
            if not status["is_optimizing"]:
                break
            await asyncio.sleep(0.5)
        bar.close()

    print(f"Optimization complete! Best value: {status['best_value']}")
    style = await session.get_variable("style_modifier")
    best = {
        "teacher_temperature": optimizer.best_values["teacher_temperature"],
        "max_bootstrapped_demos": optimizer.best_values["max_bootstrapped_demos"],
        "base_temperature": status["best_value"],
        "effective_temperature": min(status["best_value"] * style, 2.0),
    }
    await session.update_variables(
        {"effective_temperature": best["effective_temperature"], "qa_temperature": best["effective_temperature"]},
        metadata={"from": "best"},
    )
    print("Results:")
    print(f"  compile: {len(optimizer.trials)} trials, best score {optimizer.best.score:.1f} (demos kept: "
          f"{optimizer.best.metrics['demos']})")  # fmt: skip
    print(f"  workflow: state {status['state']} after {status['iteration']} iterations, best accuracy "
          f"{status['best_metrics']['accuracy']:.3f}")  # fmt: skip
    print("History (teacher_temperature, the compile's trials):")
    for entry in await session.get_optimization_history("teacher_temperature"):
        candidate = entry["candidate"]
        print(f"  trial {entry['iteration']:>2}: teacher_temperature={candidate['teacher_temperature']:.3f} "
              f"max_demos={candidate['max_demos']} score={entry['score']:.1f}")  # fmt: skip

    export_data = await session.export_variables(include_history=True, filter_pattern=r".*temperature.*")
    out.write_bytes(export_data)
    print(f"  wrote {out} ({len(export_data):,} bytes)")
    print(f"Best parameters: {best}")
    print(f"Best score: compile {optimizer.best.score:.1f}, workflow accuracy {status['best_metrics']['accuracy']:.3f}")

    await bridge.close()
    await session.cleanup()
    await channel.close()
    return {"best": best, "status": status, "compile_score": optimizer.best.score}


async def main(args: argparse.Namespace) -> None:
    run = (args.out, args.trials, args.iterations, args.seed)
    if args.address:
        await main_job(args.address, *run)
        return
    with serve_process() as served:
        print(f"server: dspex serve on {served.address} (embedded in-memory store)")
        await main_job(served.address, *run)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="use a running server instead of starting one")
    parser.add_argument("--out", type=Path, default=Path("dspy_results.json"), help="where to write the export")
    parser.add_argument("--trials", type=int, default=12, help="trials of the compile's search")
    parser.add_argument("--iterations", type=int, default=20, help="iterations of the workflow's optimization")
    parser.add_argument("--seed", type=int, default=0)
    asyncio.run(main(parser.parse_args()))
