"""The benchmark's quiet-spell gate: it waits for a quick probe, within its budget."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.quiet import PAUSE, TOLERANCE, TRIES, Gate, QuietSpells, probe_timer
from benchmarks.report import quiet_md

# One "look" of the gate takes TRIES probes; each look here reads one value TRIES times.
LOOKS = st.lists(st.floats(100.0, 1000.0), min_size=41, max_size=60)


class Probes:
    def __init__(self, looks: list[float]) -> None:
        self.values = [v for v in looks for _ in range(TRIES)]
        self.taken = 0
        self.sleeps: list[float] = []

    def probe(self) -> float:
        value = self.values[self.taken]
        self.taken += 1
        return value

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    @property
    def looks(self) -> int:
        return self.taken // TRIES


@given(
    looks=LOOKS,
    reference=st.floats(100.0, 1000.0) | st.just(math.inf),
    pauses=st.integers(0, 40),
)
def test_the_gate_starts_at_the_first_quiet_look_or_when_its_budget_is_spent(
    looks: list[float], reference: float, pauses: int
) -> None:
    fake = Probes(looks)
    gate = Gate(reference, pauses * PAUSE, fake.probe, fake.sleep)
    quiet = gate.wait()
    seen = looks[: fake.looks]
    assert fake.taken % TRIES == 0
    assert fake.looks >= 1
    # It sleeps between looks only, and never past its budget.
    assert fake.sleeps == [PAUSE] * (fake.looks - 1)
    assert gate.waited_s == pytest.approx(PAUSE * len(fake.sleeps))
    assert gate.waited_s <= pauses * PAUSE + 1e-9
    # A gate without a reference takes its first look as one.
    start = seen[0] if reference == math.inf else reference
    calm = [v <= min(start, *seen[: i + 1]) * (1 + TOLERANCE) for i, v in enumerate(seen)]
    assert not any(calm[:-1])  # every look before the last was slow; the last decides
    if quiet:
        assert calm[-1]
        assert (gate.quiet, gate.unquiet) == (1, 0)
    else:
        assert not calm[-1]
        assert len(fake.sleeps) == pauses  # the whole budget was waited
        assert (gate.quiet, gate.unquiet) == (0, 1)
    assert gate.best_us == min(seen)


def test_a_gate_without_a_reference_takes_its_first_look_as_quiet() -> None:
    fake = Probes([700.0, 900.0])
    gate = Gate(math.inf, 10.0, fake.probe, fake.sleep)
    assert gate.wait() is True
    assert fake.looks == 1
    assert gate.reference_us == 700.0


def test_a_slow_spell_is_waited_out() -> None:
    fake = Probes([1000.0, 1900.0, 1050.0, 990.0])
    gate = Gate(1000.0, 60.0, fake.probe, fake.sleep)
    assert gate.wait() is True
    assert fake.looks == 1  # 1000 is quiet against 1000
    fake = Probes([2000.0, 1900.0, 1050.0])
    gate = Gate(1000.0, 60.0, fake.probe, fake.sleep)
    assert gate.wait() is True
    assert fake.looks == 3
    assert gate.waited_s == 2 * PAUSE
    assert gate.stats() == {"quiet": 1, "unquiet": 0, "waited_s": 2 * PAUSE, "best_probe_us": 1050}


def test_the_parent_lowers_its_reference_and_spends_each_suites_budget() -> None:
    spells = QuietSpells(budget_s=10.0, calibration_s=0.0, _probe=lambda: 2000.0)
    assert spells.task("verify") == {"quiet_us": 2000.0, "quiet_budget_s": 10.0}
    spells.absorb("verify", {"quiet": 4, "unquiet": 1, "waited_s": 3.5, "best_probe_us": 1800.0})
    spells.absorb("verify", None)  # a failed worker reports nothing
    assert spells.task("verify") == {"quiet_us": 1800.0, "quiet_budget_s": 6.5}
    spells.absorb("verify", {"quiet": 0, "unquiet": 5, "waited_s": 9.0, "best_probe_us": 3000.0})
    assert spells.task("verify")["quiet_budget_s"] == 0.0
    assert spells.task("middleware") == {"quiet_us": 1800.0, "quiet_budget_s": 10.0}
    gate = spells.gate("e2e")
    assert (gate.reference_us, gate.budget_s) == (1800.0, 10.0)
    summary = spells.summary()
    assert summary["suites"]["verify"] == {"quiet": 4, "unquiet": 6, "waited_s": 12.5}
    lines = quiet_md(summary)
    assert "verify 4 of 10 (waited 12 s)" in lines[0]
    assert "**6 repeats started in a slow spell**" in lines[1]
    assert not any("slow spell" in line for line in quiet_md({**summary, "suites": {}}))


def test_the_real_probe_measures_cpu_time() -> None:
    probe = probe_timer()
    times = [probe() for _ in range(3)]
    assert all(t > 0 for t in times)
