"""The screenshot API's plans: what each tier may do, and a per-minute rate limiter."""

from __future__ import annotations

import math

import msgspec

from asgi_sso import Clock

__all__ = ["LIMITS", "TIERS", "TIER_SCOPES", "RateLimiter", "TierLimits"]

TIERS = ("enterprise", "pro", "free")
"""Highest first, as the tier mapper expects; ``require_tier`` follows the mapper's order."""

TIER_SCOPES = {
    "free": ("screenshots:create",),
    "pro": ("screenshots:create", "screenshots:batch"),
    "enterprise": ("screenshots:create", "screenshots:batch", "usage:export"),
}


class TierLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one tier may request.

    Attributes:
        max_width: widest viewport, pixels.
        max_height: tallest viewport, pixels.
        per_minute: screenshots per minute per caller.
        formats: output formats.
        max_batch: most screenshots in one batch request.
    """

    max_width: int
    max_height: int
    per_minute: int
    formats: tuple[str, ...]
    max_batch: int = 0


LIMITS = {
    "free": TierLimits(max_width=1280, max_height=800, per_minute=5, formats=("png",)),
    "pro": TierLimits(
        max_width=1920, max_height=1080, per_minute=60, formats=("png", "jpeg", "webp"),
        max_batch=10,
    ),
    "enterprise": TierLimits(
        max_width=3840, max_height=2160, per_minute=600,
        formats=("png", "jpeg", "webp", "pdf"), max_batch=100,
    ),
}  # fmt: skip


class RateLimiter:
    """Fixed one-minute windows per caller, in memory (one process), on an injected clock.

    Args:
        clock: where monotonic time comes from.
        window: the window length, seconds.
        max_callers: callers tracked at most; older windows are dropped first.
    """

    def __init__(self, clock: Clock, *, window: float = 60.0, max_callers: int = 100_000) -> None:
        self._clock = clock
        self._window = window
        self._max = max_callers
        self._counts: dict[str, tuple[int, int]] = {}  # caller -> (window index, count)

    def take(self, caller: str, limit: int, cost: int = 1) -> float | None:
        """Spend ``cost`` of ``caller``'s ``limit``; the seconds to wait when it is exhausted."""
        now = self._clock.monotonic()
        index = math.floor(now / self._window)
        seen_index, count = self._counts.get(caller, (index, 0))
        if seen_index != index:
            count = 0
        if count + cost > limit:
            return max(1.0, (index + 1) * self._window - now)
        if caller not in self._counts and len(self._counts) >= self._max:
            self._counts = {k: v for k, v in self._counts.items() if v[0] == index}
            if len(self._counts) >= self._max:
                return self._window
        self._counts[caller] = (index, count + cost)
        return None
