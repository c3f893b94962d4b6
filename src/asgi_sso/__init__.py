"""asgi_sso: enterprise single sign-on for any ASGI app.

Wrap an ASGI app in :class:`SSOMiddleware` with one or more trusted
:class:`Issuer` objects; every request then carries a verified
:class:`Principal` in ``scope["user"]`` and its scopes in ``scope["auth"]``.

This namespace holds what an application author touches: the middleware and its
settings, the principal, the errors, the stores and sinks. Internals live in the
subpackages (``verify``, ``keys``, ``identity``, ``sessions``, ``login``,
``deprovision``, ``observe``), each with a small API of its own.
"""

from __future__ import annotations

from asgi_sso.config import (
    CertificateHeader,
    Clock,
    Introspection,
    Issuer,
    Limits,
    Secret,
    SystemClock,
)
from asgi_sso.deprovision import ScimConfig
from asgi_sso.errors import (
    AuthError,
    ConfigurationError,
    CredentialsMissing,
    CrossOriginRequest,
    DisallowedAlgorithm,
    ExpiredToken,
    InsufficientScope,
    InvalidAudience,
    InvalidClaim,
    InvalidRequest,
    InvalidSignature,
    InvalidToken,
    KeysUnavailable,
    MalformedToken,
    NotYetValid,
    PayloadTooLarge,
    ServiceUnavailable,
    SSOError,
    StoreUnavailable,
    UnknownIssuer,
    UnknownKey,
    UserDeactivated,
)
from asgi_sso.identity import (
    ConnectionTiers,
    IdentityConfig,
    PriorityTierMapper,
    Revocation,
    RevocationBus,
    Tier,
    TierDecision,
    TierMapper,
)
from asgi_sso.identity.stores import MemoryUserStore, StoredUser, UserStore
from asgi_sso.login import LoginConfig
from asgi_sso.mcp import ProtectedResource
from asgi_sso.middleware import SSOMiddleware
from asgi_sso.observe import AuditLogger, Event, EventSink, PrometheusSink
from asgi_sso.principal import ANONYMOUS, AnonymousPrincipal, Credentials, Principal
from asgi_sso.sessions import (
    CookieSessionStore,
    MemorySessionStore,
    SessionInvalid,
    SessionRecord,
    SessionStore,
)
from asgi_sso.settings import Backends, CredentialSources, PathRules
from asgi_sso.verify import TokenVerifier

__version__ = "0.1.0"

__all__ = [
    "ANONYMOUS",
    "AnonymousPrincipal",
    "AuditLogger",
    "AuthError",
    "Backends",
    "CertificateHeader",
    "Clock",
    "ConfigurationError",
    "ConnectionTiers",
    "CookieSessionStore",
    "CredentialSources",
    "Credentials",
    "CredentialsMissing",
    "CrossOriginRequest",
    "DisallowedAlgorithm",
    "Event",
    "EventSink",
    "ExpiredToken",
    "IdentityConfig",
    "InsufficientScope",
    "Introspection",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "Issuer",
    "KeysUnavailable",
    "Limits",
    "LoginConfig",
    "MalformedToken",
    "MemorySessionStore",
    "MemoryUserStore",
    "NotYetValid",
    "PathRules",
    "PayloadTooLarge",
    "Principal",
    "PriorityTierMapper",
    "PrometheusSink",
    "ProtectedResource",
    "Revocation",
    "RevocationBus",
    "SSOError",
    "SSOMiddleware",
    "ScimConfig",
    "Secret",
    "ServiceUnavailable",
    "SessionInvalid",
    "SessionRecord",
    "SessionStore",
    "StoreUnavailable",
    "StoredUser",
    "SystemClock",
    "Tier",
    "TierDecision",
    "TierMapper",
    "TokenVerifier",
    "UnknownIssuer",
    "UnknownKey",
    "UserDeactivated",
    "UserStore",
]
