"""``FakeClock``: moves only when told; monotonic time never goes back."""

from __future__ import annotations

import pytest

from asgi_sso.config import Clock
from asgi_sso.testing import FakeClock


def test_starts_where_asked_and_satisfies_the_clock_protocol() -> None:
    clock: Clock = FakeClock(42.0, monotonic_start=7.0)  # mypy checks the protocol
    assert isinstance(clock, FakeClock)
    assert (clock.time(), clock.monotonic(), clock.now) == (42.0, 7.0, 42.0)


def test_defaults_keep_wall_and_monotonic_time_apart() -> None:
    clock = FakeClock()
    assert clock.time() == 1_700_000_000.0
    assert clock.monotonic() == 1_000.0


def test_time_stands_still_until_advanced() -> None:
    clock = FakeClock()
    before = (clock.time(), clock.monotonic())
    assert (clock.time(), clock.monotonic()) == before
    clock.advance(2.5)
    assert (clock.time(), clock.monotonic()) == (before[0] + 2.5, before[1] + 2.5)


def test_advance_refuses_to_go_back() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="zero or more"):
        clock.advance(-1)
    assert clock.time() == 1_700_000_000.0


def test_setting_now_forward_moves_monotonic_time_too() -> None:
    clock = FakeClock(100.0, monotonic_start=0.0)
    clock.now += 60
    assert (clock.time(), clock.monotonic()) == (160.0, 60.0)


def test_setting_now_back_leaves_monotonic_time_alone() -> None:
    clock = FakeClock(100.0, monotonic_start=5.0)
    clock.advance(10)
    clock.now = 50.0
    assert (clock.time(), clock.monotonic()) == (50.0, 15.0)


def test_repr_shows_both_readings() -> None:
    assert repr(FakeClock(1.0, monotonic_start=2.0)) == "FakeClock(now=1.0, monotonic=2.0)"
