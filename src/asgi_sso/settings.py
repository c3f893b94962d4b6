"""Shared-state backends from the environment: one URL for Redis, one for the user database.

``ASGI_SSO_REDIS_URL`` turns on Redis for server-side sessions, one-time sign-in
state, the revocation broadcast and a shared JWKS/discovery cache;
``ASGI_SSO_DATABASE_URL`` puts users in SQLite or PostgreSQL. Without them
everything stays in this process (cookie sessions, in-memory users, the local
revocation bus, per-process key caches): the zero-configuration path for one
worker.

    backends = from_env()
    app = SSOMiddleware(inner, issuers, login=login, **backends.middleware_kwargs())
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgi_sso.config import Clock, SystemClock
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.revocation import RevocationBus
from asgi_sso.identity.stores._urls import async_database_url
from asgi_sso.identity.stores.memory import MemoryUserStore

if TYPE_CHECKING:
    from asgi_sso.identity.stores.base import UserStore
    from asgi_sso.keys.documents import SharedDocuments
    from asgi_sso.sessions.base import SessionStore

__all__ = ["DATABASE_URL_ENV", "REDIS_PREFIX_ENV", "REDIS_URL_ENV", "Backends", "from_env"]

REDIS_URL_ENV = "ASGI_SSO_REDIS_URL"
REDIS_PREFIX_ENV = "ASGI_SSO_REDIS_PREFIX"
DATABASE_URL_ENV = "ASGI_SSO_DATABASE_URL"


@dataclass(frozen=True, slots=True)
class Backends:
    """The stores and the revocation bus chosen by :func:`from_env`.

    Attributes:
        session_store: Redis when configured; ``None`` keeps sessions in the cookie.
        revocations: the Redis bus when configured, else the in-process bus.
        user_store: SQL when configured, else in memory.
        shared: whether sessions, sign-in state and revocations are shared (Redis).
        shared_documents: the Redis JWKS/discovery cache when configured, else ``None``.
    """

    session_store: SessionStore | None
    revocations: RevocationBus
    user_store: UserStore
    shared: bool
    shared_documents: SharedDocuments | None = None

    def middleware_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~asgi_sso.middleware.SSOMiddleware`."""
        return {
            "session_store": self.session_store,
            "revocations": self.revocations,
            "user_store": self.user_store,
            "shared_documents": self.shared_documents,
        }

    def __repr__(self) -> str:
        # The URLs (and their passwords) are not kept, so nothing secret can show here.
        return (
            f"Backends(session_store={type(self.session_store).__name__}, "
            f"revocations={type(self.revocations).__name__}, "
            f"user_store={type(self.user_store).__name__}, "
            f"shared_documents={type(self.shared_documents).__name__})"
        )


def database_url(url: str) -> str:
    """Map ``sqlite:///…`` / ``postgres://…`` to the async driver URL SQLAlchemy needs.

    Raises:
        ConfigurationError: the scheme is neither SQLite nor PostgreSQL.
    """
    return async_database_url(url, setting=DATABASE_URL_ENV)


def from_env(environ: Mapping[str, str] | None = None, *, clock: Clock | None = None) -> Backends:
    """Build the session store, revocation bus and user store from environment variables.

    Args:
        environ: where to read the variables (default :data:`os.environ`).
        clock: passed to the stores (tests inject one).

    Raises:
        ConfigurationError: a URL is malformed, or its extra (``redis``, ``sql``)
            is not installed.
    """
    env = os.environ if environ is None else environ
    redis_url = env.get(REDIS_URL_ENV, "").strip()
    db_url = env.get(DATABASE_URL_ENV, "").strip()
    prefix = env.get(REDIS_PREFIX_ENV, "").strip() or None

    user_store: UserStore
    if db_url:
        url = database_url(db_url)
        try:
            from asgi_sso.identity.stores.sql import SQLUserStore
        except ImportError as exc:
            raise ConfigurationError(
                f"{DATABASE_URL_ENV} needs: pip install 'asgi-sso[sql]'"
            ) from exc
        user_store = SQLUserStore(url, clock=clock)
    else:
        user_store = MemoryUserStore(clock=clock)

    if not redis_url:
        return Backends(
            session_store=None, revocations=RevocationBus(), user_store=user_store, shared=False
        )
    try:
        from asgi_sso.identity.redis_bus import RedisRevocationBus
        from asgi_sso.keys.redis import RedisDocumentCache
        from asgi_sso.sessions.redis import RedisSessionStore
    except ImportError as exc:
        raise ConfigurationError(f"{REDIS_URL_ENV} needs: pip install 'asgi-sso[redis]'") from exc
    extra: dict[str, Any] = {"prefix": prefix} if prefix else {}
    return Backends(
        session_store=RedisSessionStore(redis_url, clock=clock, **extra),
        revocations=RedisRevocationBus(redis_url, **extra),
        user_store=user_store,
        shared=True,
        shared_documents=RedisDocumentCache(redis_url, clock=clock or SystemClock(), **extra),
    )
