"""The JWKS cache: an issuer's verification keys, fetched once and shared by every request.

Fresh key sets are served from memory; an unknown ``kid`` triggers at most one
refetch per cooldown per JWKS URI, single-flight (concurrent requests wait on the
same fetch), and a ``kid`` still unknown afterwards is refused at once for
``Limits.unknown_kid_ttl``. Those refusals are remembered in one map bounded by
``Limits.max_unknown_kids`` across every URI, and dropped with their URI's key set
(replaced by a fetch, or evicted). While the IdP fails, the last good keys keep serving
for ``Limits.jwks_stale_max_age`` (stale-if-error). Key rotation needs no restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from asgi_sso.config import Clock, Limits, SystemClock
from asgi_sso.errors import KeysUnavailable, UnknownKey
from asgi_sso.keys.documents import DocumentCache, SharedDocuments
from asgi_sso.keys.jwk import KeySet, VerificationKey, parse_jwks
from asgi_sso.observe.events import NULL_EMITTER, Emitter

__all__ = ["JWKSCache"]

# (JWKS URI, kid, alg) of a refused kid.
_NegativeKey = tuple[str, str | None, str]

_log = logging.getLogger(__name__)
_KIDS_SHOWN = 10


class JWKSCache:
    """Fetches and caches JWK sets per URI; safe to share across concurrent requests.

    Args:
        client: the shared ``httpx.AsyncClient`` (its lifetime is the caller's).
        limits: TTL bounds, cooldown, stale window, negative-cache TTL, deadline, size cap.
        clock: monotonic time for lifetimes (tests pass a fake clock).
        emitter: receives a ``jwks.fetch`` event per fetch (``ok``, ``stale`` or ``error``).
        shared: a store shared with other workers (e.g.
            :class:`~asgi_sso.keys.redis.RedisDocumentCache`), read before the
            IdP and written after each fetch; its bodies are checked like the IdP's.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        limits: Limits = Limits(),  # noqa: B008 - a frozen Struct is a safe default
        clock: Clock = SystemClock(),  # noqa: B008 - stateless
        emitter: Emitter = NULL_EMITTER,
        shared: SharedDocuments | None = None,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._documents: DocumentCache[KeySet] = DocumentCache(
            client,
            event_name="jwks.fetch",
            what="keys",
            limits=limits,
            clock=clock,
            emitter=emitter,
            shared=shared,
            on_evict=self._evicted,
        )
        # Insertion order is expiry order (one TTL for all), so the first entry goes first.
        self._unknown: dict[_NegativeKey, float] = {}
        self._skipped: dict[str, list[str]] = {}
        self._kids: dict[str, frozenset[str]] = {}

    def _parser(self, uri: str) -> Callable[[bytes], KeySet]:
        def parse(body: bytes) -> KeySet:
            keys, skipped = parse_jwks(body)
            self._forget(uri)  # a new set may hold kids refused before
            self._skipped[uri] = skipped
            self._note_rotation(uri, keys.kids)
            return keys

        return parse

    def _note_rotation(self, uri: str, kids: frozenset[str]) -> None:
        # A key set that brings kids the last one lacked: the IdP rotated its keys.
        before = self._kids.get(uri)
        self._kids[uri] = kids
        if before is not None and kids - before:
            _log.info(
                "the identity provider rotated its keys at %s: new %s, retired %s",
                uri,
                _kid_list(kids - before),
                _kid_list(before - kids),
            )

    def _evicted(self, uri: str) -> None:
        self._forget(uri)
        self._kids.pop(uri, None)

    def _forget(self, uri: str) -> None:
        """Drop what is remembered about ``uri``'s key set (replaced or evicted)."""
        self._skipped.pop(uri, None)
        doomed = [key for key in self._unknown if key[0] == uri]
        for key in doomed:
            del self._unknown[key]

    async def get(self, uri: str) -> KeySet:
        """Return the key set of ``uri``: fresh, refetched, or stale while the IdP fails.

        Raises:
            KeysUnavailable: no servable keys and the fetch failed or is cooling down.
        """
        return await self._documents.get(uri, self._parser(uri))

    async def find(self, uri: str, kid: str | None, alg: str) -> tuple[VerificationKey, ...]:
        """Return the keys that may verify a token with this ``kid`` and ``alg``.

        An unknown ``kid`` causes one refetch (joined by concurrent callers), no
        more often than ``Limits.jwks_cooldown``; a ``kid`` still unknown is then
        refused without I/O for ``Limits.unknown_kid_ttl``.

        Returns:
            A non-empty tuple of candidate keys.

        Raises:
            UnknownKey: no key fits.
            KeysUnavailable: the keys cannot be obtained.
        """
        keys = await self.get(uri)
        found = keys.candidates(kid, alg)
        if found:
            return found
        if kid is not None and keys.has_kid(kid):
            # The kid is known but cannot verify this alg: a refetch would not change that.
            raise UnknownKey(f"the key {kid[:64]!r} cannot verify {alg}")
        negative = (uri, kid, alg)
        if self._unknown.get(negative, 0.0) > self._clock.monotonic():
            raise UnknownKey()
        keys = await self._documents.refresh(uri, self._parser(uri))
        found = keys.candidates(kid, alg)
        if found:
            return found
        self._remember_unknown(negative)
        raise UnknownKey()

    def _remember_unknown(self, negative: _NegativeKey) -> None:
        unknown = self._unknown
        unknown.pop(negative, None)
        bound = self._limits.max_unknown_kids
        while unknown and len(unknown) >= bound:
            del unknown[next(iter(unknown))]
        if bound:
            unknown[negative] = self._clock.monotonic() + self._limits.unknown_kid_ttl

    def reserve(self, urls: int) -> None:
        """Keep room for at least ``urls`` key sets (see :meth:`DocumentCache.reserve`)."""
        self._documents.reserve(urls)

    def cached(self, uri: str) -> KeySet | None:
        """The key set of ``uri`` while fresh, else ``None`` (then call :meth:`find`); no I/O."""
        return self._documents.cached(uri)

    async def prefetch(self, uri: str) -> bool:
        """Fetch the keys of ``uri`` ahead of the first request (e.g. at lifespan startup).

        Returns:
            ``True`` when keys were obtained; failures are reported through events, never raised.
        """
        try:
            await self.get(uri)
        except KeysUnavailable:
            return False
        return True

    def fetch_count(self, uri: str) -> int:
        """How many fetches of ``uri`` were started (for tests and health checks)."""
        return self._documents.fetch_count(uri)

    def health(self) -> dict[str, Any]:
        """Per JWKS URI: age, stale, servable, fetches, last_error and skipped keys."""
        report = self._documents.health()
        for uri, entry in report.items():
            entry["skipped"] = list(self._skipped.get(uri, ()))
        return report


def _kid_list(kids: Iterable[str]) -> str:
    # Key ids are public, but an IdP may send long ones: a bounded, readable list.
    ordered = sorted(kids)
    shown = ", ".join(repr(kid[:64]) for kid in ordered[:_KIDS_SHOWN])
    more = len(ordered) - _KIDS_SHOWN
    return (shown or "none") + (f" and {more} more" if more > 0 else "")
