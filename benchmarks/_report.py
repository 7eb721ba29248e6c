"""Rows, targets, the printed table and the JSON record of one run."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from ._measure import Stats
from ._processes import PROJECT_ROOT


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on a ratio: "<=" for slowdown vs a baseline, ">=" for a speedup."""

    op: Literal["<=", ">="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}x"


@dataclass(frozen=True, slots=True)
class Row:
    """One measured case; `ratio` is bridge/baseline, or baseline/bridge for a speedup target."""

    name: str
    n: int
    median_us: float
    p90_us: float
    baseline: str | None = None
    ratio: float | None = None
    target: Target | None = None
    note: str = ""
    #: With --runs N: the lowest and highest ratio of the N runs (`ratio` is their median).
    ratio_range: tuple[float, float] | None = None

    @classmethod
    def of(cls, name: str, stats: Stats, note: str = "") -> Row:
        return cls(name, stats.n, stats.median_us, stats.p90_us, note=note)

    @classmethod
    def versus(cls, name: str, stats: Stats, baseline: str, base: Stats, target: Target | None = None) -> Row:
        """`stats` against `base`; a ">=" target reads the ratio as a speedup. No target: context only."""
        if target is not None and target.op == ">=":
            ratio = base.median_us / stats.median_us
        else:
            ratio = stats.median_us / base.median_us
        return cls(name, stats.n, stats.median_us, stats.p90_us, baseline, ratio, target)

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.target.met(self.ratio)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = str(self.target) if self.target else None
        if self.ratio is None:
            data["ratio_kind"] = None
        else:
            data["ratio_kind"] = "speedup" if self.target is not None and self.target.op == ">=" else "slowdown"
        data["passed"] = self.passed
        return data


def combine(runs: list[list[Row]]) -> list[Row]:
    """Rows of repeated runs as one: medians of the runs' medians and ratios, with the ratio range."""
    combined = []
    for same in zip(*runs, strict=True):
        first = same[0]
        ratios = [r.ratio for r in same if r.ratio is not None]
        combined.append(
            Row(
                first.name,
                sum(r.n for r in same),
                statistics.median(r.median_us for r in same),
                statistics.median(r.p90_us for r in same),
                first.baseline,
                statistics.median(ratios) if ratios else None,
                first.target,
                first.note,
                (min(ratios), max(ratios)) if ratios else None,
            )
        )
    return combined


def environment(extra: dict[str, Any]) -> dict[str, Any]:
    """What the figures depend on, recorded with them."""
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "numpy": metadata.version("numpy"),
        "redis_py": metadata.version("redis"),
        **_source(),
        **extra,
    }


def _git(*args: str) -> str | None:
    """A read-only git query about the measured tree (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            cwd=PROJECT_ROOT,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # never touch the index others may be using
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _source() -> dict[str, Any]:
    """The commit measured, and any uncommitted edits to bridge/ that the figures include."""
    modified = _git("diff", "--name-only", "HEAD", "--", "bridge")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "bridge_modified": None if modified is None else modified.splitlines(),
    }


def table(rows: list[Row]) -> str:
    """A fixed-width table for the terminal (and to paste into BENCHMARKS.md)."""
    header = ("case", "n", "median us", "p90 us", "vs baseline", "ratio", "target", "result")
    lines = [header]
    for row in rows:
        result = "" if row.passed is None else ("PASS" if row.passed else "FAIL")
        lines.append(
            (
                row.name,
                str(row.n),
                f"{row.median_us:,.1f}",
                f"{row.p90_us:,.1f}",
                row.baseline or row.note,
                _ratio(row),
                str(row.target or ""),
                result,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = {1, 2, 3, 5}

    def fmt(line: tuple[str, ...]) -> str:
        cells = zip(line, widths, strict=True)
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(cells))

    out = [fmt(line) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(s.rstrip() for s in out)


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return ""
    if row.ratio_range is None:
        return f"{row.ratio:.2f}x"
    low, high = row.ratio_range
    return f"{row.ratio:.2f}x ({low:.2f}-{high:.2f})"


def write_json(path: Path, env: dict[str, Any], rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "rows": [r.to_json() for r in rows]}, indent=2) + "\n")
