"""Logging helpers: the package's logger names and a throttle for repeated trouble.

Every module logs with the standard library under ``asgi_sso``
(``logging.getLogger(__name__)``: ``asgi_sso.keys.documents``,
``asgi_sso.middleware``…), so an application routes and filters these records as
it does its own. A record never holds a token, a cookie or a secret: messages
are built from issuer labels, IdP document URLs, counts and exception *type*
names (an exception's text may quote a URL with its password, or a body).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["ROOT_LOGGER", "Throttle", "clip", "held_back"]

ROOT_LOGGER: Final = "asgi_sso"
"""The logger every record of the package goes through."""

_CLIP: Final = 300


def clip(text: str, limit: int = _CLIP) -> str:
    """``text`` cut to ``limit`` characters (an IdP's answer may quote anything)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Throttle:
    """Lets one record per key through every ``interval`` seconds and counts the rest.

    For trouble that repeats on every request (a store that is down): the log says
    so once a minute, with how many times it happened meanwhile, not a thousand
    times a second.

    Args:
        interval: seconds between two records of one key.
        clock: monotonic seconds (tests pass a fake clock).
        max_keys: keys remembered at most (the oldest goes first).
    """

    __slots__ = ("_clock", "_interval", "_keys", "_max_keys")

    def __init__(
        self,
        interval: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 256,
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._max_keys = max_keys
        # key -> (when the last record went out, occurrences held back since)
        self._keys: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str) -> int | None:
        """Whether to log ``key`` now: ``None`` to stay quiet, else how many were held back."""
        now = self._clock()
        last = self._keys.get(key)
        if last is not None and now - last[0] < self._interval:
            self._keys[key] = (last[0], last[1] + 1)
            return None
        self._keys[key] = (now, 0)
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return 0 if last is None else last[1]

    def reset(self, key: str) -> bool:
        """Forget ``key`` (its trouble ended); whether it was being throttled."""
        return self._keys.pop(key, None) is not None


def held_back(count: int) -> str:
    """The suffix saying how many records a throttle held back (empty for none)."""
    return f" ({count} more since the last report)" if count else ""
