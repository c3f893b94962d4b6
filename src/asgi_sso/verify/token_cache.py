"""Remember verified tokens (and, briefly, refused ones) so a repeat costs a hash and a dict lookup.

An entry lives until the token's ``exp`` plus the issuer's leeway or the cache
TTL, whichever comes first; a hit re-checks that deadline with one float compare.
A secondary index by subject lets deprovisioning evict a user's tokens at once.
Entries are small slotted objects; the cache holds no locks (one event loop).

Entries are keyed by a 15-byte keyed digest of the token, not by the token: a
cache of 100,000 tokens would otherwise keep 100,000 bearer tokens (often 1-2 KB
each) alive. The digest is SHA-256 over a random 64-byte per-cache key followed by
the token, truncated to 120 bits (a 15-byte ``bytes`` fits CPython's 48-byte
allocation class; 16 would take 64). Without the key nobody can compute digests, and
a hit for a token other than the cached one needs a second preimage of an unknown
keyed function (about 2**120 work); a collision between two tokens nobody chose is
as unlikely. So a digest match stands for the exact token. The key is never
exposed, and digests never leave the process.

Hashing a token costs about a microsecond, a quarter of a warm request in-process,
so :meth:`VerifiedTokenCache.get` and :meth:`VerifiedTokenCache.lookup` first
look in a small map of recently hit tokens keyed by the token text itself (exact
string equality, at most ``recent`` tokens kept, cleared whenever it fills and on
every eviction by subject). Its entries are the main cache's entries, with the same deadline check;
one pushed out of the main map by the size bound may still be served from there
until its deadline, which only ever concerns a valid token, and never after an
eviction by subject.

:meth:`VerifiedTokenCache.lookup`, the lookup of a verification about to happen,
also admits tokens: it reports a token's first sighting as a miss without hashing
it, and the verifier stores a token only from its second sighting on (see
:mod:`asgi_sso.verify.sightings`). One-off tokens thus cost no digest, no insert and no
memory, and cannot push out the tokens that come back.

A remembered refusal is a small record (the error's class, its description and a
deadline), never the exception itself: a raised exception keeps its traceback, and
the traceback's frames keep the request (its scope, headers and token) alive. A
hit builds a fresh error from the record.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from typing import Generic, TypeVar

from asgi_sso.errors import AuthError, ConfigurationError
from asgi_sso.verify.sightings import Sightings

__all__ = ["CacheEntry", "VerifiedTokenCache"]

_DIGEST_SIZE = 15
# Descriptions are ours and short; the cap keeps a record small whatever a
# future description interpolates.
_MAX_DESCRIPTION = 256


class CacheEntry:
    """Base of the values a :class:`VerifiedTokenCache` holds (one object per entry).

    Subclasses set :attr:`subject`; :meth:`VerifiedTokenCache.put` sets the others.
    The value is its own cache entry, so an entry costs no wrapper object.

    Attributes:
        subject: the token's ``sub`` (for :meth:`VerifiedTokenCache.evict_subject`).
        cache_until: when the entry stops being served (wall-clock seconds).
        cache_owner: ``(issuer, connection)``, one tuple shared by all entries of that pair.
    """

    __slots__ = ("cache_owner", "cache_until", "subject")

    subject: str
    cache_until: float
    cache_owner: tuple[str, str]


T = TypeVar("T", bound=CacheEntry)


class VerifiedTokenCache(Generic[T]):
    """A bounded LRU of verified tokens keyed by a keyed digest of the token.

    Methods taking a ``token`` hash it first; the ``*_by_key`` variants take the
    digest from :meth:`key`, so one verification hashes its token once.

    Args:
        max_size: most entries kept (0 turns the cache off).
        ttl: longest life of an entry, in seconds.
        failure_ttl: how long a refusal is remembered, in seconds (0: never).
        failure_size: most refusals remembered.
        recent: most tokens in the map of recent hits (see the module docstring).
    """

    __slots__ = (
        "_by_subject",
        "_entries",
        "_failures",
        "_hasher",
        "_owners",
        "_recent",
        "_sightings",
        "failure_size",
        "failure_ttl",
        "max_size",
        "recent",
        "ttl",
    )

    def __init__(
        self,
        max_size: int,
        ttl: float,
        *,
        failure_ttl: float = 0.0,
        failure_size: int = 1024,
        recent: int = 256,
    ) -> None:
        if min(max_size, ttl, failure_ttl, failure_size, recent) < 0:
            raise ConfigurationError("cache sizes and lifetimes must not be negative")
        self.max_size = max_size
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.failure_size = failure_size
        self.recent = recent
        self._entries: OrderedDict[bytes, T] = OrderedDict()
        self._by_subject: dict[str, bytes | set[bytes]] = {}
        self._failures: dict[bytes, tuple[type[AuthError], str, float]] = {}
        self._recent: dict[str, T] = {}
        self._owners: dict[tuple[str, str], tuple[str, str]] = {}
        # One full SHA-256 block of key: each digest starts from a copy of this state.
        self._hasher = hashlib.sha256(secrets.token_bytes(64))
        self._sightings = Sightings()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def filter_bytes(self) -> int:
        """Memory held by the admission filter: fixed, whatever the number of entries."""
        return self._sightings.nbytes

    def key(self, token: str) -> bytes:
        """The cache key of ``token``: a keyed 128-bit digest (see the module docstring)."""
        hasher = self._hasher.copy()
        hasher.update(token.encode("utf-8", "surrogatepass"))
        return hasher.digest()[:_DIGEST_SIZE]

    def get(self, token: str, now: float) -> T | None:
        """Return the cached value for ``token`` if it is still valid at wall time ``now``."""
        recent = self._recent.get(token)
        if recent is not None and now < recent.cache_until:
            return recent
        return self._find(token, self.key(token), now)

    def lookup(self, token: str, now: float) -> tuple[T | None, bytes]:
        """:meth:`get` for a token about to be verified on a miss; records the sighting.

        Returns the value and the token's digest. The digest is empty after a
        recent-token hit, and after a miss on the token's first sighting: that
        token is not hashed, and should not be stored (an entry it may still have
        from a sighting long ago is not served, only verified again). Otherwise a
        miss hands the digest on to :meth:`put_by_key` and :meth:`failure_by_key`,
        so a cold verification hashes the token once.
        """
        recent = self._recent.get(token)
        if recent is not None and now < recent.cache_until:
            return recent, b""
        if not self.max_size or not self._sightings.sight(token):
            return None, b""
        key = self.key(token)
        return self._find(token, key, now), key

    def _find(self, token: str, key: bytes, now: float) -> T | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now < entry.cache_until:
            self._entries.move_to_end(key)
            if len(self._recent) >= self.recent:
                self._recent.clear()
            self._recent[token] = entry
            return entry
        self._remove(key)
        return None

    def put(
        self,
        token: str,
        value: T,
        *,
        until: float,
        now: float,
        issuer: str,
        connection: str,
    ) -> None:
        """Cache ``value`` until ``min(until, now + ttl)`` (wall-clock seconds).

        The token counts as sighted, so :meth:`lookup` finds it too.

        Args:
            token: the token string (only its digest is kept).
            value: what :meth:`get` returns (its ``subject`` indexes it).
            until: when the token stops being acceptable (``exp`` plus leeway).
            now: the current wall-clock time.
            issuer: the token's concrete ``iss``.
            connection: the token's connection id.
        """
        self._sightings.sight(token)
        self.put_by_key(
            self.key(token),
            value,
            until=until,
            now=now,
            issuer=issuer,
            connection=connection,
        )

    def put_by_key(
        self,
        key: bytes,
        value: T,
        *,
        until: float,
        now: float,
        issuer: str,
        connection: str,
    ) -> None:
        """:meth:`put` for a digest from :meth:`key`."""
        if not self.max_size:
            return
        until = min(until, now + self.ttl)
        if until <= now:
            return
        entries = self._entries
        if key in entries:
            self._remove(key)
            self._recent.clear()
        while len(entries) >= self.max_size:
            self._remove(next(iter(entries)))
        owner = self._owners.get((issuer, connection))
        if owner is None:
            if len(self._owners) >= self.max_size:  # never more than one per entry
                self._owners.clear()
            owner = self._owners[(issuer, connection)] = (issuer, connection)
        value.cache_until = until
        value.cache_owner = owner
        entries[key] = value
        subject = value.subject
        held = self._by_subject.get(subject)
        if held is None:
            self._by_subject[subject] = key
        elif isinstance(held, bytes):
            self._by_subject[subject] = {held, key}
        else:
            held.add(key)

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        held = self._by_subject.get(entry.subject)
        if isinstance(held, set):
            held.discard(key)
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
            self._recent.clear()
            return 0
        keys = [held] if isinstance(held, bytes) else list(held)
        dropped = 0
        for key in keys:
            entry = self._entries[key]
            if (issuer is None or entry.cache_owner[0] == issuer) and (
                connection is None or entry.cache_owner[1] == connection
            ):
                self._remove(key)
                dropped += 1
        # Always: a recent hit may outlive its main entry (pushed out by the size bound).
        self._recent.clear()
        return dropped

    def clear(self) -> None:
        """Forget everything (sightings included)."""
        self._sightings.clear()
        self._entries.clear()
        self._recent.clear()
        self._owners.clear()
        self._by_subject.clear()
        self._failures.clear()

    def discard(self, token: str) -> None:
        """Forget the cached verification of ``token``, if any."""
        self._recent.pop(token, None)
        key = self.key(token)
        if key in self._entries:
            self._remove(key)

    def forget_failures(self) -> None:
        """Forget every remembered refusal (the trusted issuers changed)."""
        self._failures.clear()

    @property
    def has_failures(self) -> bool:
        """Whether any refusal is remembered (lets a caller skip the clock and the lookup)."""
        return bool(self._failures)

    def failure(self, token: str, now: float) -> AuthError | None:
        """Return the remembered refusal of ``token`` at monotonic time ``now``, if any."""
        return self.failure_by_key(self.key(token), now)

    def failure_by_key(self, key: bytes, now: float) -> AuthError | None:
        """:meth:`failure` for a digest from :meth:`key`: a new error of the remembered
        class and description (status and challenge follow from the class)."""
        remembered = self._failures.get(key)
        if remembered is None:
            return None
        kind, description, until = remembered
        if now < until:
            return kind(description)
        del self._failures[key]
        return None

    def remember_failure(self, token: str, error: AuthError, now: float) -> None:
        """Remember that ``token`` was refused with ``error`` (monotonic time ``now``)."""
        self.remember_failure_by_key(self.key(token), error, now)

    def remember_failure_by_key(self, key: bytes, error: AuthError, now: float) -> None:
        """:meth:`remember_failure` for a digest from :meth:`key`.

        Keeps the class and description of ``error``, not ``error`` (see the module
        docstring).
        """
        if not self.failure_ttl or not self.max_size:
            return
        if len(self._failures) >= self.failure_size:
            del self._failures[next(iter(self._failures))]
        description = error.description[:_MAX_DESCRIPTION]
        self._failures[key] = (type(error), description, now + self.failure_ttl)
