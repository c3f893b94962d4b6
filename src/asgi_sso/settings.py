"""The middleware's grouped settings, and the shared backends read from the environment.

:class:`PathRules` says what each path requires, :class:`CredentialSources` where a
credential may come from, :class:`Backends` what several workers share. Each is a
frozen Struct validated when built; :class:`~asgi_sso.middleware.SSOMiddleware`
refuses at start-up a combination in which one of them would be ignored.

``ASGI_SSO_REDIS_URL`` turns on Redis for server-side sessions, one-time sign-in
state, the revocation broadcast and a shared JWKS/discovery cache;
``ASGI_SSO_DATABASE_URL`` puts users in SQLite or PostgreSQL. Without them
everything stays in this process (cookie sessions, in-memory users, the local
revocation bus, per-process key caches): the zero-configuration path for one
worker.

    env = from_env()
    app = SSOMiddleware(inner, issuers, login=login,
                        identity=env.identity(), backends=env.backends())
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from asgi_sso._asgi import OriginGuard, PathMatcher, ScopeRules, check_root_path
from asgi_sso.config import CertificateHeader, Clock, Secret, SystemClock, check_fields
from asgi_sso.connections.store import ConnectionStore, StaticConnections
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.resolver import IdentityConfig
from asgi_sso.identity.revocation import RevocationBus
from asgi_sso.identity.stores._urls import async_database_url
from asgi_sso.identity.stores.memory import MemoryUserStore
from asgi_sso.keys.documents import SharedDocuments
from asgi_sso.sessions.base import SessionStore

if TYPE_CHECKING:
    from asgi_sso.identity.stores.base import UserStore
    from asgi_sso.identity.tiers import TierMapper

__all__ = [
    "DATABASE_URL_ENV",
    "REDIS_PREFIX_ENV",
    "REDIS_URL_ENV",
    "Backends",
    "CredentialSources",
    "Environment",
    "PathRules",
    "from_env",
]

REDIS_URL_ENV = "ASGI_SSO_REDIS_URL"
REDIS_PREFIX_ENV = "ASGI_SSO_REDIS_PREFIX"
DATABASE_URL_ENV = "ASGI_SSO_DATABASE_URL"

# RFC 6265 §4.1.1: a cookie name is an RFC 2616 token.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class PathRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What each path of the app requires.

    Attributes:
        public: paths that never require credentials, exact (``"/health"``) or
            anchored prefixes (``"/static/*"``). As with Starlette's
            ``AuthenticationMiddleware``, a valid bearer token, JWT cookie or session
            still puts its principal in the scope (a landing page can say "Signed in
            as …"); none, or one that fails for any reason (invalid, expired, revoked,
            an unsafe cookie request from another origin, an IdP or store outage),
            leaves the request anonymous. A public path never answers 401, 403 or 503
            and never redirects; it reads a browser session without refreshing or
            sliding it. Scope rules do not apply there (``scope["auth"].scopes`` does).
        scope_rules: scopes required by path pattern (the longest pattern wins),
            refused with 403 ``insufficient_scope``.
        optional: let requests without credentials through as anonymous, except on
            paths with a scope rule, which stay protected (401, or a redirect to sign
            in for a browser's page navigation). A presented but invalid credential is
            still refused.
        root_path: the ``root_path`` the wrapped framework applies itself, replacing
            the server's (``FastAPI(root_path="/api")``; read from a FastAPI app when
            not given; ``""``: the framework applies the server's). Public paths and
            scope rules match the path the framework routes below it; a request whose
            route path cannot be told unambiguously is refused with a 400.
        realm: the ``realm`` of the ``WWW-Authenticate`` challenge (RFC 6750 §3).

    Raises:
        ConfigurationError: a pattern or the root path is malformed, or a scope rule
            lies wholly within the public paths (which never check scopes).
    """

    public: Sequence[str] = ()
    scope_rules: Mapping[str, Sequence[str]] = {}
    optional: bool = False
    root_path: str | None = None
    realm: str = "api"

    def __post_init__(self) -> None:
        check_fields(self)
        public = PathMatcher(self.public)
        ScopeRules(self.scope_rules)
        if self.root_path is not None:
            check_root_path(self.root_path)
        for pattern in self.scope_rules:
            if _covers(public, self.public, pattern):
                raise ConfigurationError(
                    f"PathRules.scope_rules pattern {pattern!r} lies within PathRules.public, "
                    "whose paths never check scopes: remove the rule, or narrow public"
                )


def _covers(public: PathMatcher, patterns: Sequence[str], pattern: str) -> bool:
    # Whether every path `pattern` matches is public.
    if not pattern.endswith("/*"):
        return public.matches(pattern)
    under = pattern[:-1]  # "/a/*" -> "/a/"
    return any(p.endswith("/*") and under.startswith(p[:-1]) for p in patterns)


class CredentialSources(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where a credential may come from besides ``Authorization: Bearer``, and which
    pages may send one in a cookie.

    Attributes:
        cookie_names: cookies that may carry an IdP-issued JWT.
        allow_query_token: accept ``?access_token=`` (RFC 6750 §2.3; off by default).
        allowed_origins: origins (``https://admin.example.com``) besides the app's own
            whose pages may send cookie-authenticated unsafe requests and WebSockets
            (and log out); the origin of ``LoginConfig.redirect_uri`` is always allowed.
        check_origin: refuse (403) a WebSocket handshake or an unsafe request (not
            GET/HEAD/OPTIONS/TRACE) authenticated by a cookie (the session cookie or a
            JWT in ``cookie_names``) unless ``Origin`` or ``Sec-Fetch-Site`` shows the
            app's own origin or an allowed one (RFC 6455 §10.2; cross-site request
            forgery). Bearer requests are never checked. Turn off only when something
            in front of the app already does this check.
        certificate_header: where a TLS-terminating proxy passes on the client
            certificate that certificate-bound tokens (RFC 8705) are checked against;
            ``None``: only the server's ASGI TLS extension provides one.

    Raises:
        ConfigurationError: a cookie name or an origin is malformed, or
            ``allowed_origins`` is given with the check turned off.
    """

    cookie_names: Sequence[str] = ()
    allow_query_token: bool = False
    allowed_origins: Sequence[str] = ()
    check_origin: bool = True
    certificate_header: CertificateHeader | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        for name in self.cookie_names:
            if not name or not set(name) <= _TOKEN_CHARS:
                raise ConfigurationError(f"cookie name {name!r} is not a cookie token")
        OriginGuard(self.allowed_origins)
        if self.allowed_origins and not self.check_origin:
            raise ConfigurationError(
                "CredentialSources.allowed_origins widens the origin check, which "
                "check_origin=False turns off: drop one of them"
            )


class Backends(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What several workers share (Redis, for instance); unset parts stay in this process.

    Attributes:
        sessions: the server-side session store of browser sign-in (``LoginConfig``);
            ``None`` keeps the session in its cookie.
        revocations: the revocation bus (default: in-process), so a deprovisioned user
            is cut off in every worker at once.
        documents: a JWKS/discovery cache shared by every worker (e.g.
            :class:`~asgi_sso.keys.redis.RedisDocumentCache`), so N workers do not
            each fetch on start-up.
    """

    sessions: SessionStore | None = None
    revocations: RevocationBus | None = None
    documents: SharedDocuments | None = None

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True, slots=True)
class Environment:
    """The backends and the user store :func:`from_env` chose.

    Attributes:
        user_store: SQL when configured, else in memory.
        shared: whether sessions, sign-in state and revocations are shared (Redis).
        sessions: the Redis session store when configured.
        revocations: the Redis revocation bus when configured.
        documents: the Redis JWKS/discovery cache when configured.
    """

    user_store: UserStore
    shared: bool
    sessions: SessionStore | None = None
    revocations: RevocationBus | None = None
    documents: SharedDocuments | None = None
    sql_connections: Callable[[Sequence[Secret]], ConnectionStore] | None = field(
        default=None, repr=False
    )

    def backends(self, *, sessions: bool = True) -> Backends:
        """The shared backends for ``SSOMiddleware(backends=...)``.

        Args:
            sessions: include the session store; ``False`` for an app without
                browser sign-in, which has no sessions to keep.
        """
        return Backends(
            sessions=self.sessions if sessions else None,
            revocations=self.revocations,
            documents=self.documents,
        )

    def connections(self, secrets: Sequence[Secret]) -> ConnectionStore:
        """The connection store for ``SSOMiddleware(connections=...)``: in the database
        when ``ASGI_SSO_DATABASE_URL`` is set (secrets sealed with ``secrets``, oldest
        first), else an empty in-process store.

        Raises:
            ConfigurationError: no secret is given for a database store.
        """
        if self.sql_connections is None:
            return StaticConnections()
        return self.sql_connections(secrets)

    def identity(self, tier_mapper: TierMapper | None = None) -> IdentityConfig:
        """The identity settings for ``SSOMiddleware(identity=...)`` with this user store."""
        return IdentityConfig(tier_mapper=tier_mapper, user_store=self.user_store)

    def __repr__(self) -> str:
        # The URLs (and their passwords) are not kept, so nothing secret can show here.
        return (
            f"Environment(user_store={type(self.user_store).__name__}, "
            f"sessions={type(self.sessions).__name__}, "
            f"revocations={type(self.revocations).__name__}, "
            f"documents={type(self.documents).__name__})"
        )


def database_url(url: str) -> str:
    """Map ``sqlite:///…`` / ``postgres://…`` to the async driver URL SQLAlchemy needs.

    Raises:
        ConfigurationError: the scheme is neither SQLite nor PostgreSQL.
    """
    return async_database_url(url, setting=DATABASE_URL_ENV)


def _sql_connections(url: str, clock: Clock | None, secrets: Sequence[Secret]) -> ConnectionStore:
    try:
        from asgi_sso.connections.sql import SQLConnections
    except ImportError as exc:
        raise ConfigurationError(f"{DATABASE_URL_ENV} needs: pip install 'asgi-sso[sql]'") from exc
    return SQLConnections(url, secrets=secrets, clock=clock)


def from_env(
    environ: Mapping[str, str] | None = None, *, clock: Clock | None = None
) -> Environment:
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
    sql_connections: Callable[[Sequence[Secret]], ConnectionStore] | None = None
    if db_url:
        url = database_url(db_url)
        try:
            from asgi_sso.identity.stores.sql import SQLUserStore
        except ImportError as exc:
            raise ConfigurationError(
                f"{DATABASE_URL_ENV} needs: pip install 'asgi-sso[sql]'"
            ) from exc
        user_store = SQLUserStore(url, clock=clock)
        sql_connections = functools.partial(_sql_connections, url, clock)
    else:
        user_store = MemoryUserStore(clock=clock)
    if not redis_url:
        return Environment(user_store=user_store, shared=False, sql_connections=sql_connections)
    try:
        from asgi_sso.identity.redis_bus import RedisRevocationBus
        from asgi_sso.keys.redis import RedisDocumentCache
        from asgi_sso.sessions.redis import RedisSessionStore
    except ImportError as exc:
        raise ConfigurationError(f"{REDIS_URL_ENV} needs: pip install 'asgi-sso[redis]'") from exc
    extra: dict[str, Any] = {"prefix": prefix} if prefix else {}
    return Environment(
        user_store=user_store,
        shared=True,
        sessions=RedisSessionStore(redis_url, clock=clock, **extra),
        revocations=RedisRevocationBus(redis_url, **extra),
        documents=RedisDocumentCache(redis_url, clock=clock or SystemClock(), **extra),
        sql_connections=sql_connections,
    )
