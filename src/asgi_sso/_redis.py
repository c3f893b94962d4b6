"""The one boundary to redis-py: building a fail-fast asyncio client and mapping its errors.

A Redis that is down must cost a request milliseconds, not the client's default
ten retries: clients built here retry once (a pooled connection can be stale
after a server restart) and time out quickly. Every redis-py failure becomes
:class:`~asgi_sso.errors.StoreUnavailable`; the URL never reaches a message
because it may carry a password.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Iterator

import msgspec
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asgi_sso._log import Throttle, held_back
from asgi_sso.errors import ConfigurationError, SSOError, StoreUnavailable

__all__ = [
    "DEFAULT_PREFIX",
    "PrefixedClient",
    "check_prefix",
    "client_from",
    "digest",
    "unavailable",
]

DEFAULT_PREFIX = "asgi_sso:"
CONNECT_TIMEOUT = 1.0
"""Seconds to open a connection before the request gets a 503."""
COMMAND_TIMEOUT = 2.0
"""Seconds one command may take before the request gets a 503."""

_log = logging.getLogger(__name__)
# A Redis that is down fails every request that needs it: say so once a minute.
_trouble = Throttle()


def client_from(redis: Redis | str, *, timeout: float = COMMAND_TIMEOUT) -> tuple[Redis, bool]:
    """Return a client for ``redis`` (a URL or a client) and whether the caller owns it.

    Raises:
        ConfigurationError: the URL is not a ``redis://``, ``rediss://`` or ``unix://`` URL.
    """
    if not isinstance(redis, str):
        return redis, False
    if not redis.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError("the Redis URL must start with redis://, rediss:// or unix://")
    try:
        client = Redis.from_url(
            redis,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, CONNECT_TIMEOUT),
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=30,
        )
    except Exception:  # the message may quote the URL and its password: drop it
        raise ConfigurationError("the Redis URL is invalid") from None
    return client, True


def check_prefix(prefix: str) -> str:
    """Validate a key prefix (printable ASCII, no spaces, at most 64 characters)."""
    if not prefix or len(prefix) > 64 or not prefix.isascii() or not prefix.isprintable():
        raise ConfigurationError("the Redis key prefix must be 1-64 printable ASCII characters")
    if " " in prefix:
        raise ConfigurationError("the Redis key prefix must not contain spaces")
    return prefix


def digest(*parts: str) -> str:
    """A short, unambiguous key fragment for untrusted or composite values."""
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:40]


@contextlib.contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Map any redis-py (or socket) failure inside the block to ``StoreUnavailable``."""
    try:
        yield
    except SSOError:
        raise
    except Exception as exc:
        count = _trouble.allow(what)
        if count is not None:
            # The type only: redis-py's messages may quote the host, and a URL its password.
            _log.warning(
                "the %s (Redis) is unavailable (%s); requests that need it get a 503%s",
                what,
                type(exc).__name__,
                held_back(count),
            )
        raise StoreUnavailable(f"the {what} (Redis) is unavailable") from exc


class PrefixedClient:
    """A Redis client and a key prefix: the common part of the small Redis stores.

    Args:
        redis: a URL (the object owns the client and closes it in :meth:`aclose`)
            or an existing :class:`redis.asyncio.Redis`.
        prefix: prepended to every key.
        timeout: seconds one Redis call may take.
        what: the store's name in messages.

    Raises:
        ConfigurationError: a malformed URL or prefix, or a non-positive timeout.
    """

    def __init__(self, redis: Redis | str, *, prefix: str, timeout: float, what: str) -> None:
        if not timeout > 0.0 or math.isinf(timeout):
            raise ConfigurationError(f"the {what} timeout must be positive")
        self._prefix = check_prefix(prefix)
        self._timeout = timeout
        self._redis, self._owns = client_from(redis, timeout=timeout)

    async def aclose(self) -> None:
        """Close the Redis client if this object created it."""
        if self._owns:
            await self._redis.aclose()

    def __repr__(self) -> str:
        # Never the URL: it may carry a password.
        return f"{type(self).__name__}(prefix={self._prefix!r})"
