"""Measuring: the budget, pyperf suites run from the parent, isolated memory cases, progress.

The timed in-process suites (``verify``, ``middleware``) are pyperf scripts: pyperf
spawns the worker processes, calibrates the loop count, and keeps every value with
its metadata in a JSON file that ``python -m pyperf compare_to`` reads. The parent
mints the tokens, checks each case once, runs the script and reads its JSON back.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyperf

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """How much work each suite does; ``--quick`` shrinks it."""

    tokens: int = 2000  # verify: tokens per fresh verifier (cold means never seen)
    mw_requests: int = 2000  # middleware: requests per fresh app (cold)
    pyperf: tuple[str, ...] = ()  # pyperf's own defaults: 20 worker processes x 3 values
    duration: float = 4.0  # e2e: seconds of wrk per case and connection count
    e2e_tokens: int = 60_000  # more than a 4 s run sends: unique means unique
    memory_tokens: int = 100_000
    reloads: int = 20  # connections: timed reloads of each snapshot size

    @classmethod
    def quick(cls) -> Budget:
        """A run of a few minutes: same shape, smaller numbers, fewer worker processes."""
        return cls(
            tokens=200,
            mw_requests=200,
            pyperf=("--processes", "3", "--values", "3"),
            duration=1.0,
            e2e_tokens=5000,
            memory_tokens=10_000,
            reloads=5,
        )


def suite_runner(module: str) -> tuple[pyperf.Runner, Any]:
    """A pyperf runner for the script ``python -m module`` and its parsed arguments.

    The script's own options (``--material-dir DIR``, ``--case NAME`` repeated) are
    passed on to every worker process, which runs the case pyperf gives it.
    """

    def forward(cmd: list[str], args: Any) -> None:
        cmd.extend(("--material-dir", args.material_dir))
        for case in args.case:
            cmd.extend(("--case", case))

    runner = pyperf.Runner(program_args=("-m", module), add_cmdline_args=forward)
    runner.argparser.add_argument("--material-dir", required=True)
    runner.argparser.add_argument("--case", action="append", required=True)
    return runner, runner.parse_args()


def run_pyperf(module: str, workdir: Path, cases: list[str], options: Iterable[str]) -> Path:
    """Run the pyperf script ``module`` over ``cases``; return its JSON file (maybe partial).

    pyperf's own report (mean +- std dev, warnings) goes to stderr as progress.
    """
    out = workdir / f"{module.rsplit('.', 1)[-1]}.pyperf.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", module, "--material-dir", str(workdir),
               *[arg for case in cases for arg in ("--case", case)], *options,
               "--inherit-environ", "PYTHONWARNINGS",
               "--output", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}  # peers' deprecation notices
    subprocess.run(command, cwd=ROOT, env=env, stdout=sys.stderr, check=False)
    return out


def _warnings(bench: pyperf.Benchmark) -> list[str]:
    """pyperf's instability warnings for ``bench`` (what ``pyperf check`` prints)."""
    try:
        from pyperf._cli import format_checks  # the checks behind `pyperf check`
    except ImportError:
        return []
    return [line[2:] for line in format_checks(bench) if line.startswith("* ")]


def read_pyperf(path: Path) -> dict[str, dict[str, Any]]:
    """Per benchmark name: mean, std dev and median (µs per loop), counts and warnings."""
    if not path.exists():
        return {}
    out: dict[str, dict[str, Any]] = {}
    for bench in pyperf.BenchmarkSuite.load(str(path)).get_benchmarks():
        values = bench.get_values()
        mean = bench.mean()
        out[bench.get_name()] = {
            "mean_us": mean * 1e6,
            "stdev_us": (bench.stdev() if len(values) > 1 else 0.0) * 1e6,
            "median_us": bench.median() * 1e6,
            "per_second": 1 / mean if mean else float("inf"),
            "values": len(values),
            "processes": sum(1 for run in bench.get_runs() if run.values),
            "warnings": _warnings(bench),
        }
    return out


def keep_pyperf(path: Path, out: Path, suite: str) -> str | None:
    """Copy a suite's pyperf JSON to ``out/pyperf/<suite>.json``; its path relative to ``out``."""
    if not path.exists():
        return None
    target = out / "pyperf" / f"{suite}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return str(target.relative_to(out))


def run_isolated(task: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run one memory case in a fresh interpreter (``python -m benchmarks._worker``).

    Returns:
        The worker's JSON result, or ``{"error": ...}`` when it failed.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks._worker"],
            input=json.dumps(task),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker failed: {tail[:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def ratio_of(base: dict[str, Any], other: dict[str, Any]) -> dict[str, float] | None:
    """``other``'s pyperf mean over ``base``'s, with its spread and the ratio of the medians.

    The spread combines both relative standard deviations; the ratio of the medians
    moves less when a neighbour loads the machine. ``None`` when either case failed.
    """
    if not base.get("mean_us") or not other.get("mean_us"):
        return None
    ratio = other["mean_us"] / base["mean_us"]
    spread = ratio * math.hypot(
        base["stdev_us"] / base["mean_us"], other["stdev_us"] / other["mean_us"]
    )
    out = {"ratio": ratio, "spread": spread}
    if base.get("median_us") and other.get("median_us"):
        out["median_ratio"] = other["median_us"] / base["median_us"]
    return out


def failure(exc: BaseException) -> dict[str, str]:
    """A case's result when it could not run."""
    return {"error": f"{type(exc).__name__}: {exc}"[:300]}


class Progress:
    """A one-line progress bar on stderr (no dependency), e.g. ``[####....] 3/8 label``."""

    def __init__(self, total: int, title: str, width: int = 24) -> None:
        self.total = max(total, 1)
        self.title = title
        self.width = width
        self.done = 0
        self.started = time.perf_counter()

    def step(self, label: str) -> None:
        """Show that the case ``label`` is starting."""
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.started
        line = f"\r{self.title:<10} [{bar}] {self.done}/{self.total} {elapsed:5.0f}s {label}"
        sys.stderr.write(f"{line[:110]:<110}")
        sys.stderr.flush()
        self.done += 1

    def close(self) -> None:
        """Finish the bar with a newline."""
        self.done = self.total
        self.step("done")
        sys.stderr.write("\n")
        sys.stderr.flush()

    def over(self, items: Iterable[T], label: Callable[[T], str]) -> Iterator[T]:
        """Iterate ``items``, stepping the bar before each."""
        for item in items:
            self.step(label(item))
            yield item
        self.close()
