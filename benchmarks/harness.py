"""Measuring: timed repeats, one process per candidate, and a plain stderr progress bar."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.quiet import Gate

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """How much work each case does; ``--quick`` shrinks it ~10x."""

    tokens: int = 2000
    warm_ops: int = 200_000
    repeats: int = 5
    rounds: int = 5  # verify and middleware: every case once per round, in turn
    mw_requests: int = 2000
    mw_warm_requests: int = 20_000
    duration: float = 4.0
    connections: int = 16
    e2e_tokens: int = 60_000  # more than ~10k requests/s for 4 s: unique means unique
    e2e_repeats: int = 5  # e2e figures move most between rounds: five, shorter
    memory_tokens: int = 100_000
    quiet_wait: float = 600.0  # seconds a suite may wait for quiet spells (benchmarks.quiet)

    @classmethod
    def quick(cls) -> Budget:
        """A run in well under a minute: same shape, smaller numbers."""
        return cls(
            tokens=200,
            warm_ops=20_000,
            repeats=3,
            rounds=1,
            mw_requests=200,
            mw_warm_requests=2000,
            duration=1.0,
            e2e_tokens=1000,
            e2e_repeats=1,
            memory_tokens=10_000,
            quiet_wait=0.0,
        )


def summarize(samples: list[float], ops: int) -> dict[str, float]:
    """Median/min/max of per-operation microseconds and operations per second."""
    per_op = sorted(s / ops * 1e6 for s in samples)
    median = statistics.median(per_op)
    return {
        "median_us": median,
        "min_us": per_op[0],
        "max_us": per_op[-1],
        "per_second": 1e6 / median if median else float("inf"),
    }


def measure(
    setup: Callable[[], Callable[[], object]], ops: int, repeats: int, gate: Gate | None = None
) -> dict[str, Any]:
    """Time ``repeats`` runs of ``setup()()`` (setup untimed), in CPU and wall time.

    With a ``gate``, each run starts once the gate finds the machine quiet (or its wait
    budget is spent).

    Returns:
        ``{"ops", "repeats", "cpu": summary, "wall": summary}``, plus ``"quiet"`` (the
        gate's tally) with a gate; ``cpu`` counts :func:`time.process_time`, so other
        load on a shared machine skews it less.
    """
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeats):
        run = setup()
        gc.collect()
        if gate is not None:
            gate.wait()
        c0, w0 = time.process_time(), time.perf_counter()
        run()
        c1, w1 = time.process_time(), time.perf_counter()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
    result = {
        "ops": ops,
        "repeats": repeats,
        "cpu": summarize(cpu, ops),
        "wall": summarize(wall, ops),
    }
    if gate is not None:
        result["quiet"] = gate.stats()
    return result


def median_round(outcomes: list[dict[str, Any]], values: list[float], name: str) -> dict[str, Any]:
    """The outcome of the round whose value is the median of ``values`` (one per round).

    Adds ``name`` (that value), ``name_min``, ``name_max`` and ``rounds``. A failed or
    unsupported round decides the case (a flaky candidate is not averaged away).
    """
    failed = [o for o in outcomes if "error" in o or "unsupported" in o]
    if failed:
        return failed[0]
    order = sorted(range(len(values)), key=values.__getitem__)
    pick = order[(len(order) - 1) // 2]
    chosen = dict(outcomes[pick])
    chosen.update({
        name: values[pick],
        f"{name}_min": values[order[0]],
        f"{name}_max": values[order[-1]],
        "rounds": len(values),
    })  # fmt: skip
    return chosen


def run_isolated(task: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Run one case in a fresh interpreter (``python -m benchmarks._worker``).

    Returns:
        The worker's JSON result, or ``{"error": ...}`` when it failed.
    """
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONHASHSEED": "0"}
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
