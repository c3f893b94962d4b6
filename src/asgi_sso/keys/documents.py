"""Cache what IdP documents parse to: TTL, single-flight, cooldown, stale-if-error.

:class:`DocumentCache` keeps the parsed result per URL; the JWKS and discovery
caches are thin layers over it. Optionally a :class:`SharedDocuments` store
(Redis) lets N workers share one fetch: a refresh first looks there, parses what it
finds exactly like an IdP body (the store is trusted no more than the IdP), and
publishes what it fetched.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import httpx

from asgi_sso._log import Throttle, clip, held_back
from asgi_sso.config import Clock, Limits
from asgi_sso.errors import KeysUnavailable
from asgi_sso.keys.fetch import FetchError, fetch_document, reason_of
from asgi_sso.observe.events import Emitter, Event

__all__ = ["MAX_CACHED_URLS", "SHARED_TIMEOUT", "DocumentCache", "SharedDocuments"]

T = TypeVar("T")

MAX_CACHED_URLS = 1024
"""Documents kept per cache at least; past the capacity the oldest idle entry is dropped."""

SHARED_TIMEOUT = 0.5
"""Seconds one shared-store call may take before the IdP path is used instead."""

_log = logging.getLogger(__name__)
# Shared-store trouble may repeat on every refresh of every URL: once a minute is enough.
_shared_trouble = Throttle()


class SharedDocuments(Protocol):
    """A store of raw document bodies shared by every worker (e.g. Redis).

    Implementations may raise anything: :class:`DocumentCache` swallows every
    failure (with an event) and asks the IdP instead.
    """

    async def get(self, url: str) -> tuple[bytes, float] | None:
        """The body stored for ``url`` and its wall-clock expiry, or ``None``."""
        ...

    async def put(self, url: str, body: bytes, expires_at: float) -> None:
        """Store ``body`` for ``url`` until ``expires_at`` (wall-clock seconds)."""
        ...


class _Slot(Generic[T]):
    """The cache state of one URL; touched only from the event loop."""

    __slots__ = (
        "expires_at",
        "fetched_at",
        "fetches",
        "last_attempt",
        "last_error",
        "last_forced",
        "task",
        "value",
    )

    def __init__(self) -> None:
        self.value: T | None = None
        self.fetched_at = 0.0
        self.expires_at = 0.0
        self.last_attempt: float | None = None
        self.last_forced: float | None = None
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.fetches = 0


class DocumentCache(Generic[T]):
    """Parsed documents per URL: TTL, single-flight, cooldown and stale-if-error.

    Args:
        client: the shared HTTP client (never created here).
        event_name: the :class:`~asgi_sso.observe.events.Event` name of each fetch.
        what: names the document in a refusal's description ("keys", "metadata").
        limits: TTL bounds, cooldown, stale window, deadline and size cap.
        clock: monotonic time for lifetimes, wall time for the shared store's expiries.
        emitter: where fetch events go.
        shared: a store shared with other workers, consulted before the IdP on
            every refresh except a forced one (an unknown ``kid``).
        on_evict: called with a URL whose entry is dropped to make room, so a layer
            above drops what it keeps about that URL too.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        event_name: str,
        what: str,
        limits: Limits,
        clock: Clock,
        emitter: Emitter,
        shared: SharedDocuments | None = None,
        on_evict: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._shared = shared
        self._on_evict = on_evict
        self._event_name = event_name
        self._what = what
        self._limits = limits
        self._clock = clock
        self._emitter = emitter
        self._slots: dict[str, _Slot[T]] = {}
        self._capacity = 0

    def reserve(self, urls: int) -> None:
        """Keep room for at least ``urls`` documents (one per trusted key set or issuer).

        Past the capacity the oldest entry is dropped and fetched again when needed:
        with more issuers in use than room, every request would refetch.
        """
        self._capacity = max(0, urls)

    def _slot(self, url: str) -> _Slot[T]:
        slot = self._slots.get(url)
        if slot is None:
            if len(self._slots) >= max(MAX_CACHED_URLS, self._capacity):
                self._evict_one()
            slot = self._slots[url] = _Slot()
        return slot

    def _evict_one(self) -> None:
        for url, slot in self._slots.items():
            if slot.task is None:
                del self._slots[url]
                if self._on_evict is not None:
                    self._on_evict(url)
                return

    def cached(self, url: str) -> T | None:
        """The value for ``url`` while it is fresh, else ``None``; no I/O.

        A stale value is not returned: a caller that finds ``None`` goes through
        :meth:`get`, which refreshes (or serves stale-if-error).
        """
        slot = self._slots.get(url)
        if slot is None or self._clock.monotonic() >= slot.expires_at:
            return None
        return slot.value

    def fetch_count(self, url: str) -> int:
        """How many fetches of ``url`` were started."""
        slot = self._slots.get(url)
        return 0 if slot is None else slot.fetches

    async def get(self, url: str, parse: Callable[[bytes], T]) -> T:
        """Return a fresh value, refreshing it if expired; stale if the IdP fails.

        Args:
            url: the document URL.
            parse: turns the body into a value; raises ``ValueError`` (or
                :class:`FetchError`) on a bad document.

        Raises:
            KeysUnavailable: nothing fresh or servable and the fetch failed (or is
                cooling down after a failure).
        """
        slot = self._slot(url)
        now = self._clock.monotonic()
        if slot.value is not None and now < slot.expires_at:
            return slot.value
        await self._refresh(url, slot, parse)
        return self._usable(slot)

    async def refresh(self, url: str, parse: Callable[[bytes], T]) -> T:
        """Refetch now, unless a fetch is in flight (join it) or the cooldown forbids.

        Raises:
            KeysUnavailable: nothing servable is left after the attempt.
        """
        slot = self._slot(url)
        await self._refresh(url, slot, parse, forced=True)
        return self._usable(slot)

    def _cooling(self, slot: _Slot[T], now: float, *, forced: bool) -> bool:
        cooldown = self._limits.jwks_cooldown
        if forced:
            # Unknown kids: one forced refetch per cooldown, counted from the last
            # forced one, so a key published right after start-up is still found
            # at once; a failed attempt also cools down (no hammering a failing IdP).
            if slot.last_forced is not None and now - slot.last_forced < cooldown:
                return True
            return (
                slot.last_error is not None
                and slot.last_attempt is not None
                and now - slot.last_attempt < cooldown
            )
        return slot.last_attempt is not None and now - slot.last_attempt < cooldown

    async def _refresh(
        self, url: str, slot: _Slot[T], parse: Callable[[bytes], T], *, forced: bool = False
    ) -> None:
        if slot.task is None:
            now = self._clock.monotonic()
            if self._cooling(slot, now, forced=forced):
                return
            if forced:
                slot.last_forced = now
            slot.last_attempt = now
            slot.fetches += 1
            slot.task = asyncio.create_task(self._run(url, slot, parse, forced=forced))
        # Shielded: a cancelled waiter must not cancel the fetch the others wait on.
        await asyncio.shield(slot.task)

    async def _run(
        self, url: str, slot: _Slot[T], parse: Callable[[bytes], T], *, forced: bool
    ) -> None:
        started = self._clock.monotonic()
        try:
            if not forced and await self._from_shared(url, slot, parse, started):
                return
            document = await fetch_document(self._client, url, limits=self._limits)
            value = parse(document.body)
        except Exception as exc:  # FetchError, ValueError from parse, anything else
            reason = reason_of(exc, "while parsing")
            streak_starts = slot.last_error is None
            slot.last_error = reason
            now = self._clock.monotonic()
            stale = self._servable(slot, now)
            self._emit("stale" if stale else "error", reason, url, now - started)
            if streak_starts:  # once per failure streak, not per attempt or request
                _log.warning(
                    "cannot fetch the identity provider's %s from %s (%s); %s",
                    self._what,
                    url,
                    clip(reason),
                    "the last good ones serve meanwhile"
                    if stale
                    else "requests that need them get a 503 until it answers",
                )
        else:
            limits = self._limits
            max_age = limits.jwks_default_ttl if document.max_age is None else document.max_age
            ttl = min(max(max_age, limits.jwks_min_ttl), limits.jwks_max_ttl)
            self._fill(slot, value, ttl, "ok", url, started)
            await self._to_shared(url, document.body, ttl)
        finally:
            slot.task = None

    async def _from_shared(
        self, url: str, slot: _Slot[T], parse: Callable[[bytes], T], started: float
    ) -> bool:
        """Take a fresh, valid body from the shared store; ``False`` to ask the IdP."""
        if self._shared is None:
            return False
        try:
            async with asyncio.timeout(SHARED_TIMEOUT):
                found = await self._shared.get(url)
            if found is None:
                return False
            body, expires_at = found
            remaining = min(float(expires_at) - self._clock.time(), self._limits.jwks_max_ttl)
            if not remaining > 0.0:  # expired, or NaN
                return False
            if len(body) > self._limits.max_document_bytes:
                raise FetchError("shared body too large")
            value = parse(bytes(body))
        except Exception as exc:  # the store's failures and bad bodies: the IdP decides
            self._emit_shared_error(url, exc)
            return False
        self._fill(slot, value, remaining, "shared", url, started)
        return True

    def _fill(
        self, slot: _Slot[T], value: T, ttl: float, outcome: str, url: str, started: float
    ) -> None:
        """Serve ``value`` from ``slot`` for ``ttl`` seconds and report where it came from."""
        now = self._clock.monotonic()
        slot.value = value
        slot.fetched_at = now
        slot.expires_at = now + ttl
        if slot.last_error is not None:
            _log.info("the identity provider's %s at %s can be fetched again", self._what, url)
        slot.last_error = None
        self._emit(outcome, None, url, now - started)

    async def _to_shared(self, url: str, body: bytes, ttl: float) -> None:
        if self._shared is None or ttl <= 0.0:
            return
        try:
            async with asyncio.timeout(SHARED_TIMEOUT):
                await self._shared.put(url, body, self._clock.time() + ttl)
        except Exception as exc:  # a failing store never fails a good fetch
            self._emit_shared_error(url, exc)

    def _emit_shared_error(self, url: str, exc: Exception) -> None:
        count = _shared_trouble.allow(self._event_name)
        if count is not None:
            _log.warning(
                "the shared document cache failed (%s); fetching from the identity "
                "provider instead%s",
                clip(reason_of(exc, "in the shared store")),
                held_back(count),
            )
        if self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name="shared_documents",
                    outcome="error",
                    reason=reason_of(exc, "in the shared store"),
                    time=self._clock.time(),
                    detail={"uri": url},
                )
            )

    def _servable(self, slot: _Slot[T], now: float) -> bool:
        # Stale-if-error: keys past expiry serve for at most jwks_stale_max_age more.
        return slot.value is not None and now < slot.expires_at + self._limits.jwks_stale_max_age

    def _usable(self, slot: _Slot[T]) -> T:
        now = self._clock.monotonic()
        if slot.value is not None and self._servable(slot, now):
            return slot.value
        description = f"the identity provider's {self._what} are unavailable"
        if slot.last_error is not None:
            description += f" ({slot.last_error})"
        raise KeysUnavailable(description, retry_after=self._retry_after(slot, now))

    def _retry_after(self, slot: _Slot[T], now: float) -> int:
        if slot.last_attempt is None:
            return self._limits.retry_after
        remaining = self._limits.jwks_cooldown - (now - slot.last_attempt)
        return max(1, math.ceil(remaining))

    def _emit(self, outcome: str, reason: str | None, url: str, duration: float) -> None:
        if self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name=self._event_name,
                    outcome=outcome,
                    reason=reason,
                    time=self._clock.time(),
                    duration=duration,
                    detail={"uri": url},
                )
            )

    def health(self) -> dict[str, Any]:
        """Per URL: age of the last good value, whether stale, fetches and the last error."""
        now = self._clock.monotonic()
        report: dict[str, Any] = {}
        for url, slot in self._slots.items():
            report[url] = {
                "age": None if slot.value is None else now - slot.fetched_at,
                "stale": slot.value is not None and now >= slot.expires_at,
                "servable": self._servable(slot, now),
                "fetches": slot.fetches,
                "last_error": slot.last_error,
            }
        return report
