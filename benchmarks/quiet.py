"""Start every timed repeat in a quiet spell of the machine.

A shared VM changes speed within seconds (see benchmarks/README: in its slow spells
interpreted Python ran about 1.85x slower and the RSA code about 1.55x slower), so a
ratio of two cases timed in different spells measures the machine. Before each timed
repeat a :class:`Gate` times a short probe - about 2 ms of interpreted Python building
and sorting small dicts, which tells the spells apart best (within 2 % in a quiet
spell, 1.7-2.2x in a slow one, on the project's VMs) - and waits while the probe runs
more than :data:`TOLERANCE` slower than the quiet reference. The reference is the
quickest probe seen so far in the run (the parent calibrates it, workers report theirs).
A wait budget per suite keeps a run in a slow hour finite: once it is spent, repeats
start at once and are counted as *unquiet*, and the report says how many there were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 0.10
"""How much slower than the quiet reference a probe may run and still count as quiet."""
PAUSE = 0.25
"""Seconds between probes while the machine is in a slow spell."""
CALIBRATION = 2.0
"""Seconds the parent spends finding the quiet reference before a suite."""
TRIES = 2
"""Probes per look, back to back; the quickest counts (the first after a ``gc.collect()``
or a setup runs on disturbed caches, while a slow spell lasts seconds)."""


def _probe() -> float:
    started = time.process_time()
    for i in range(3000):
        sorted({"sub": i, "name": str(i), "scopes": [i, i + 1]})
    return (time.process_time() - started) * 1e6


def probe_timer() -> Callable[[], float]:
    """A probe: each call runs the fixed workload and returns its CPU microseconds."""
    for _ in range(2):  # a fresh process's first calls run slower
        _probe()
    return _probe


@dataclass
class Gate:
    """Waits, before a timed repeat, until a probe says the machine is quiet.

    Args:
        reference_us: the quiet probe time (``inf``: none known; the first probe sets it).
        budget_s: seconds this gate may spend waiting, in total.
        probe: returns the CPU microseconds of one probe.
        sleep: pauses between probes.
    """

    reference_us: float
    budget_s: float
    probe: Callable[[], float]
    sleep: Callable[[float], None] = time.sleep
    pause: float = PAUSE
    waited_s: float = 0.0
    quiet: int = 0
    unquiet: int = 0
    best_us: float = math.inf

    def wait(self) -> bool:
        """Return once a probe is quiet (``True``) or the budget is spent (``False``)."""
        while True:
            took = min(self.probe() for _ in range(TRIES))
            self.best_us = min(self.best_us, took)
            # The quickest probe seen lowers the reference (and is it, when none was given).
            self.reference_us = min(self.reference_us, took)
            if took <= self.reference_us * (1 + TOLERANCE):
                self.quiet += 1
                return True
            if self.waited_s + self.pause > self.budget_s:
                self.unquiet += 1
                return False
            self.sleep(self.pause)
            self.waited_s += self.pause

    def stats(self) -> dict[str, float]:
        """What the gate did, for the result JSON."""
        return {
            "quiet": self.quiet,
            "unquiet": self.unquiet,
            "waited_s": self.waited_s,
            "best_probe_us": self.best_us,
        }

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> Gate | None:
        """The gate a worker's task asks for (``None`` when it asks for none)."""
        if "quiet_us" not in task:
            return None
        return cls(task["quiet_us"], task["quiet_budget_s"], probe_timer())


@dataclass
class QuietSpells:
    """The parent's side: the run's quiet reference, and each suite's wait budget and tally.

    Args:
        budget_s: seconds each suite may spend waiting for quiet spells.
        calibration_s: seconds spent probing for the reference before a suite's first case.
    """

    budget_s: float
    calibration_s: float = CALIBRATION
    reference_us: float = math.inf
    tallies: dict[str, dict[str, float]] = field(default_factory=dict)
    _probe: Callable[[], float] | None = None

    def _timer(self) -> Callable[[], float]:
        if self._probe is None:
            self._probe = probe_timer()
        return self._probe

    def _tally(self, suite: str) -> dict[str, float]:
        if suite not in self.tallies:
            deadline = time.monotonic() + self.calibration_s
            timer = self._timer()
            self.reference_us = min(self.reference_us, timer())
            while time.monotonic() < deadline:
                self.reference_us = min(self.reference_us, timer())
                time.sleep(0.05)
            self.tallies[suite] = {"quiet": 0, "unquiet": 0, "waited_s": 0.0}
        return self.tallies[suite]

    def task(self, suite: str) -> dict[str, float]:
        """Fields for a worker task: the reference and the suite's budget left."""
        tally = self._tally(suite)
        return {
            "quiet_us": self.reference_us,
            "quiet_budget_s": max(0.0, self.budget_s - tally["waited_s"]),
        }

    def absorb(self, suite: str, stats: dict[str, float] | None) -> None:
        """Count a gate's repeats and waits; a quicker probe lowers the reference."""
        if not stats:
            return
        tally = self._tally(suite)
        for name in ("quiet", "unquiet", "waited_s"):
            tally[name] += stats[name]
        self.reference_us = min(self.reference_us, stats["best_probe_us"])

    def gate(self, suite: str) -> Gate:
        """A gate in this process (for suites timed by the parent, such as e2e)."""
        fields = self.task(suite)
        return Gate(fields["quiet_us"], fields["quiet_budget_s"], self._timer())

    def summary(self) -> dict[str, Any]:
        """The reference, the tolerance and each suite's tally, for the result JSON."""
        return {
            "reference_probe_us": self.reference_us,
            "tolerance": TOLERANCE,
            "budget_s": self.budget_s,
            "suites": self.tallies,
        }
