"""Share fetched JWKS and discovery bodies between workers through Redis.

N workers that start together would each fetch every issuer's discovery
document and key set; with a :class:`RedisDocumentCache` the first one fetches
and the others read its body from Redis. Only the raw body and its wall-clock
expiry are stored (under ``{prefix}doc:{sha256(url)}`` with a Redis TTL), and a
reader parses and checks it exactly like a body from the IdP. Every call is
bounded by a short timeout; a failure is raised to
:class:`~asgi_sso.keys.documents.DocumentCache`, which then asks the IdP itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import math

import msgspec
from redis.asyncio import Redis

from asgi_sso._redis import DEFAULT_PREFIX, PrefixedClient
from asgi_sso.config import Clock, Limits, SystemClock

__all__ = ["RedisDocumentCache"]


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    expires_at: float
    body: bytes


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Entry)
_ENVELOPE_BYTES = 64
"""Room for the msgpack framing around the body when capping a read."""


class RedisDocumentCache(PrefixedClient):
    """A :class:`~asgi_sso.keys.documents.SharedDocuments` store in Redis.

    Args:
        redis: a ``redis://`` / ``rediss://`` URL (this object owns the client and
            closes it in :meth:`aclose`) or an existing :class:`redis.asyncio.Redis`.
        prefix: prepended to every key.
        timeout: seconds one Redis call may take.
        limits: ``max_document_bytes`` caps what a read accepts.
        clock: wall time, for the Redis TTL of a write.

    Raises:
        ConfigurationError: a malformed URL or prefix, or a non-positive timeout.
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.5,
        limits: Limits = Limits(),  # noqa: B008 - a frozen Struct is a safe default
        clock: Clock = SystemClock(),  # noqa: B008 - stateless
    ) -> None:
        super().__init__(redis, prefix=prefix, timeout=timeout, what="shared document cache")
        self._max_bytes = limits.max_document_bytes + _ENVELOPE_BYTES
        self._clock = clock

    def key(self, url: str) -> str:
        """The Redis key of ``url``'s body."""
        return f"{self._prefix}doc:{hashlib.sha256(url.encode()).hexdigest()}"

    async def get(self, url: str) -> tuple[bytes, float] | None:
        """The stored body of ``url`` and its wall-clock expiry; ``None`` if absent or unreadable.

        Raises:
            Exception: whatever redis-py raises when Redis is unreachable or slow.
        """
        key = self.key(url)
        async with asyncio.timeout(self._timeout):
            size = await self._redis.strlen(key)
            if not size or size > self._max_bytes:
                return None
            raw = await self._redis.get(key)
        if not isinstance(raw, bytes) or len(raw) > self._max_bytes:
            return None
        try:
            entry = _DECODER.decode(raw)
        except msgspec.DecodeError:
            return None
        return entry.body, entry.expires_at

    async def put(self, url: str, body: bytes, expires_at: float) -> None:
        """Store ``body`` until ``expires_at`` (wall-clock seconds); nothing if already expired.

        Raises:
            Exception: whatever redis-py raises when Redis is unreachable or slow.
        """
        ttl_ms = math.ceil((expires_at - self._clock.time()) * 1000)
        if ttl_ms <= 0:
            return
        value = _ENCODER.encode(_Entry(expires_at=expires_at, body=body))
        async with asyncio.timeout(self._timeout):
            await self._redis.set(self.key(url), value, px=ttl_ms)
