"""A DPoP replay memory every worker shares, in Redis (RFC 9449 §11.1).

With the per-worker :class:`~asgi_sso.verify.dpop.ReplayCache`, a captured proof
could be replayed once per worker within its window. Here a proof is remembered
with one atomic ``SET key 1 NX PX ttl`` under ``{prefix}dpop:{digest(jkt, jti)}``
until its window has passed: the first worker to see it wins, every other
(and every later request) finds it taken. A Redis that cannot be reached answers
503 (:class:`~asgi_sso.errors.StoreUnavailable`), never lets a proof pass.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from asgi_sso._redis import COMMAND_TIMEOUT, DEFAULT_PREFIX, PrefixedClient, digest, unavailable
from asgi_sso.config import Clock, SystemClock

__all__ = ["RedisProofMemory"]

_WHAT = "DPoP proof memory"


class RedisProofMemory(PrefixedClient):
    """A :class:`~asgi_sso.verify.dpop.ProofMemory` in Redis, shared by every worker.

    Args:
        redis: a ``redis://`` / ``rediss://`` URL (this object owns the client and
            closes it in :meth:`aclose`) or an existing :class:`redis.asyncio.Redis`.
        prefix: prepended to every key.
        timeout: seconds one Redis call may take before the request gets a 503.
        clock: wall time, for each key's time to live.

    Raises:
        ConfigurationError: a malformed URL or prefix, or a non-positive timeout.
    """

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = COMMAND_TIMEOUT,
        clock: Clock = SystemClock(),  # noqa: B008 - stateless
    ) -> None:
        super().__init__(redis, prefix=prefix, timeout=timeout, what=_WHAT)
        self._clock = clock

    def key(self, key: str) -> str:
        """The Redis key remembering the proof ``key`` (its key thumbprint and ``jti``)."""
        return f"{self._prefix}dpop:{digest(key)}"

    async def remember(self, key: str, until: float) -> bool:
        """Remember ``key`` until ``until`` (wall-clock seconds); ``False`` when taken.

        Raises:
            StoreUnavailable: Redis cannot be reached or is too slow.
        """
        # At least a millisecond: a proof at the very edge of its window is still one use.
        ttl_ms = max(1, math.ceil((until - self._clock.time()) * 1000))
        with unavailable(_WHAT):
            created = await self._redis.set(self.key(key), b"1", nx=True, px=ttl_ms)
        return bool(created)
