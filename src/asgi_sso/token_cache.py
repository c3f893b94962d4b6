"""Remember verified tokens (and, briefly, refused ones) so a repeat costs a dict lookup.

An entry lives until the token's ``exp`` plus the issuer's leeway or the cache
TTL, whichever comes first; a hit re-checks that deadline with one float compare.
A secondary index by subject lets deprovisioning evict a user's tokens at once.
Entries are small slotted objects; the cache holds no locks (one event loop).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from asgi_sso.errors import AuthError, ConfigurationError

__all__ = ["VerifiedTokenCache"]

T = TypeVar("T")

_FAILURE_CACHE_SIZE = 1024


class _Entry(Generic[T]):
    __slots__ = ("connection", "issuer", "subject", "until", "value")

    def __init__(self, value: T, until: float, subject: str, issuer: str, connection: str) -> None:
        self.value = value
        self.until = until
        self.subject = subject
        self.issuer = issuer
        self.connection = connection


class VerifiedTokenCache(Generic[T]):
    """A bounded LRU of verified tokens keyed by the token string.

    Args:
        max_size: most entries kept (0 turns the cache off).
        ttl: longest life of an entry, in seconds.
        failure_ttl: how long a refusal is remembered, in seconds (0: never).
    """

    __slots__ = ("_by_subject", "_entries", "_failures", "failure_ttl", "max_size", "ttl")

    def __init__(self, max_size: int, ttl: float, *, failure_ttl: float = 0.0) -> None:
        if max_size < 0 or ttl < 0 or failure_ttl < 0:
            raise ConfigurationError("cache sizes and lifetimes must not be negative")
        self.max_size = max_size
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self._by_subject: dict[str, str | set[str]] = {}
        self._failures: dict[str, tuple[AuthError, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> T | None:
        """Return the cached value for ``token`` if it is still valid at wall time ``now``."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if now < entry.until:
            self._entries.move_to_end(token)
            return entry.value
        self._remove(token)
        return None

    def put(
        self,
        token: str,
        value: T,
        *,
        until: float,
        now: float,
        subject: str,
        issuer: str,
        connection: str,
    ) -> None:
        """Cache ``value`` until ``min(until, now + ttl)`` (wall-clock seconds).

        Args:
            token: the token string.
            value: what :meth:`get` returns.
            until: when the token stops being acceptable (``exp`` plus leeway).
            now: the current wall-clock time.
            subject: the token's ``sub`` (for :meth:`evict_subject`).
            issuer: the token's concrete ``iss``.
            connection: the token's connection id.
        """
        if not self.max_size:
            return
        until = min(until, now + self.ttl)
        if until <= now:
            return
        if token in self._entries:
            self._remove(token)
        while len(self._entries) >= self.max_size:
            self._remove(next(iter(self._entries)))
        self._entries[token] = _Entry(value, until, subject, issuer, connection)
        held = self._by_subject.get(subject)
        if held is None:
            self._by_subject[subject] = token
        elif isinstance(held, str):
            self._by_subject[subject] = {held, token}
        else:
            held.add(token)

    def _remove(self, token: str) -> None:
        entry = self._entries.pop(token)
        held = self._by_subject.get(entry.subject)
        if isinstance(held, set):
            held.discard(token)
            if len(held) == 1:
                self._by_subject[entry.subject] = next(iter(held))
        elif held is not None:
            del self._by_subject[entry.subject]

    def evict_subject(
        self, *, subject: str, issuer: str | None = None, connection: str | None = None
    ) -> int:
        """Drop every cached token of ``subject`` (optionally of one issuer or connection).

        Returns:
            How many entries were dropped.
        """
        held = self._by_subject.get(subject)
        if held is None:
            return 0
        tokens = [held] if isinstance(held, str) else list(held)
        dropped = 0
        for token in tokens:
            entry = self._entries[token]
            if (issuer is None or entry.issuer == issuer) and (
                connection is None or entry.connection == connection
            ):
                self._remove(token)
                dropped += 1
        return dropped

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._by_subject.clear()
        self._failures.clear()

    def failure(self, token: str, now: float) -> AuthError | None:
        """Return the remembered refusal of ``token`` at monotonic time ``now``, if any."""
        remembered = self._failures.get(token)
        if remembered is None:
            return None
        if now < remembered[1]:
            return remembered[0]
        del self._failures[token]
        return None

    def remember_failure(self, token: str, error: AuthError, now: float) -> None:
        """Remember that ``token`` was refused with ``error`` (monotonic time ``now``)."""
        if not self.failure_ttl or not self.max_size:
            return
        if len(self._failures) >= _FAILURE_CACHE_SIZE:
            del self._failures[next(iter(self._failures))]
        self._failures[token] = (error, now + self.failure_ttl)
