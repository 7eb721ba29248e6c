"""Optimizers by name: this session's register_python_optimizer, and packages installed with an entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from optimization_support import Recorder, parabola, temperature

from bridge import SessionContext
from optimizers import BaseOptimizer


class Halving(BaseOptimizer):
    """A deterministic custom optimizer: from the top of the range, halve the distance to the bottom."""

    name = "halving"
    config_keys = {"factor": "how much of the distance to keep each step"}
    defaults = {"factor": 0.5}

    def setup(self) -> None:
        self.factor = self.config_number("factor", low=0, high=1, low_open=True)

    def ask(self, iteration: int) -> dict[str, Any]:
        dim = self.space.dimensions[0]
        return {dim.name: dim.low + (dim.high - dim.low) * self.factor ** (iteration - 1)}

    def tell(
        self, iteration: int, candidate: Mapping[str, Any], score: float | None, metrics: Mapping[str, Any]
    ) -> None:
        return None


async def test_a_registered_custom_optimizer_runs_by_name(session: SessionContext) -> None:
    await temperature(session)
    await session.register_python_optimizer("halving", Halving)
    seen = Recorder()
    await session.start_optimization(
        "temperature", "halving", optimizer_config={"factor": 0.5}, max_iterations=4, callback=seen, objective=parabola
    )
    status = await session.wait_optimization("temperature", timeout=30)
    assert [v for _, v, _ in seen.calls] == [2.0, 1.0, 0.5, 0.25]
    assert status["optimizer_type"] == "halving" and status["best_value"] == 0.25
    with pytest.raises(ValueError, match=r"unknown optimizer_config keys \['step'\] for 'halving'"):
        await session.start_optimization("temperature", "halving", optimizer_config={"step": 1}, objective=parabola)


async def test_a_custom_optimizer_is_this_session_s_only(session: SessionContext, new_session) -> None:
    await session.register_python_optimizer("halving", Halving)
    other = await new_session()
    await temperature(other)
    with pytest.raises(ValueError, match="unknown optimizer_type 'halving'"):
        await other.start_optimization("temperature", "halving", objective=parabola)


@pytest.mark.parametrize(
    "cls,match",
    [
        (object(), "must be a class"),
        (dict, r"does not implement: ask, tell, config_keys"),
        (BaseOptimizer, r"does not implement: ask, tell"),
    ],
    ids=["instance", "not-an-optimizer", "abstract"],
)
async def test_registering_something_that_is_not_an_optimizer_is_refused(
    session: SessionContext, cls: Any, match: str
) -> None:
    with pytest.raises(TypeError, match=match):
        await session.register_python_optimizer("broken", cls)


async def test_an_optimizer_that_proposes_outside_the_space_fails_the_run_without_writing(
    session: SessionContext,
) -> None:
    class Wild(Halving):
        def ask(self, iteration: int) -> dict[str, Any]:
            return {"temperature": 7.5}

    await temperature(session)
    await session.register_python_optimizer("wild", Wild)
    await session.start_optimization("temperature", "wild", objective=parabola, max_iterations=3)
    status = await session.wait_optimization("temperature", timeout=30)
    assert status["state"] == "failed" and "outside its search space [0.0, 2.0]" in status["error"]
    assert await session.get_variable("temperature") == 1.0


_PLUGIN = '''
from bridge.optimization import Dimension

class Middle:
    """Always proposes the middle of each numeric range: a third-party optimizer with no base class."""

    config_keys = {}

    def __init__(self, space, config=None, *, seed=None, direction="maximize", trials=()):
        self.space = space

    def ask(self, iteration):
        return {d.name: (d.low + d.high) / 2 for d in self.space}

    def tell(self, iteration, candidate, score, metrics):
        pass
'''

_USE_PLUGIN = textwrap.dedent(
    """
    import asyncio
    from bridge import BridgeServer, SessionContext, connect

    async def main():
        async with BridgeServer() as server, connect(server.address) as channel:
            session = await SessionContext("plugin", channel).initialize()
            await session.register_variable("t", "float", 0.0, constraints={"min": 0.0, "max": 2.0})
            await session.start_optimization("t", "middle", objective=lambda x: -x, max_iterations=2)
            status = await session.wait_optimization("t", timeout=30)
            print(status["optimizer_type"], status["state"], status["best_value"])

    asyncio.run(main())
    """
)


def test_an_optimizer_installed_with_an_entry_point_is_found_without_registration(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "middle_optimizer").mkdir(parents=True)
    (site / "middle_optimizer" / "__init__.py").write_text(_PLUGIN)
    dist = site / "middle_optimizer-1.0.dist-info"  # what `pip install` of such a package leaves behind
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: middle-optimizer\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dspex.optimizers]\nmiddle = middle_optimizer:Middle\n")
    (dist / "RECORD").write_text("")
    env_path = str(site)
    done = subprocess.run(
        [sys.executable, "-c", _USE_PLUGIN],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": env_path},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["middle", "completed", "1.0"]
