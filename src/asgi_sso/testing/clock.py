"""``FakeClock``: a :class:`~asgi_sso.config.Clock` that moves only when a test moves it."""

from __future__ import annotations

from typing import Final

__all__ = ["START", "FakeClock"]

START: Final = 1_700_000_000.0
"""The wall time a :class:`FakeClock` starts at unless told otherwise (November 2023)."""


class FakeClock:
    """Wall and monotonic time under the test's control, so tests never sleep.

    Pass it wherever asgi_sso takes a ``clock`` (the middleware, caches, stores,
    :class:`~asgi_sso.testing.DevIdP`), then :meth:`advance` it to let tokens
    expire, caches go stale or cooldowns pass.

    The two readings start apart, as they do on a real machine, so code that
    compares a wall time with a monotonic one shows up in tests. Setting
    :attr:`now` jumps the wall clock: a forward jump moves monotonic time by the
    same amount, a backward jump leaves it where it is (a monotonic clock never
    goes back, whatever the system clock does).

    Args:
        start: the initial wall time, seconds since the epoch (``time()``).
        monotonic_start: the initial ``monotonic()`` reading.

    Example:
        >>> clock = FakeClock(1_700_000_000.0)
        >>> clock.advance(30)
        >>> clock.time(), clock.monotonic()
        (1700000030.0, 1030.0)
    """

    def __init__(self, start: float = START, *, monotonic_start: float = 1_000.0) -> None:
        self._wall = float(start)
        self._mono = float(monotonic_start)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._wall!r}, monotonic={self._mono!r})"

    def time(self) -> float:
        """The wall time, seconds since the epoch (for token claims)."""
        return self._wall

    def monotonic(self) -> float:
        """The monotonic time, seconds (for caches, cooldowns and timeouts)."""
        return self._mono

    @property
    def now(self) -> float:
        """The wall time; assign to jump it (see the class notes on monotonic time)."""
        return self._wall

    @now.setter
    def now(self, value: float) -> None:
        self._mono += max(0.0, float(value) - self._wall)
        self._wall = float(value)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``.

        Raises:
            ValueError: ``seconds`` is negative (set :attr:`now` to step wall time back).
        """
        if seconds < 0:
            raise ValueError("a clock advances by zero or more seconds; set .now to go back")
        self._wall += seconds
        self._mono += seconds
