"""asgi_sso: enterprise single sign-on for any ASGI app.

Wrap an ASGI app in :class:`SSOMiddleware` with one or more trusted
:class:`Issuer` objects; every request then carries a verified
:class:`Principal` in ``scope["user"]`` and its scopes in ``scope["auth"]``.
"""

from __future__ import annotations

from asgi_sso._compiled import compiled_modules
from asgi_sso.config import Clock, Issuer, Limits, Secret, SystemClock
from asgi_sso.deprovision.backchannel import BackchannelConfig, BackchannelLogoutApp
from asgi_sso.deprovision.scim import ScimApp, ScimConfig
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
    ServiceUnavailable,
    SSOError,
    StoreUnavailable,
    UnknownIssuer,
    UnknownKey,
    UserDeactivated,
)
from asgi_sso.identity.resolver import IdentityConfig, IdentityResolver
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.identity.stores import MemoryUserStore, StoredUser, UserStore
from asgi_sso.identity.tiers import (
    ConnectionTiers,
    PriorityTierMapper,
    Tier,
    TierDecision,
    TierMapper,
)
from asgi_sso.keys.discovery import DiscoveryCache, ProviderMetadata
from asgi_sso.keys.jwks import JWKSCache
from asgi_sso.login.app import LoginConfig
from asgi_sso.middleware import SSOMiddleware
from asgi_sso.observe.audit import AuditLogger
from asgi_sso.observe.events import Event, EventSink
from asgi_sso.observe.metrics import PrometheusSink
from asgi_sso.principal import ANONYMOUS, AnonymousPrincipal, Credentials, Principal
from asgi_sso.sessions import (
    CookieSessionStore,
    MemorySessionStore,
    SessionInvalid,
    SessionRecord,
    SessionStore,
)
from asgi_sso.verify.verifier import TokenVerifier, VerifiedToken

__version__ = "0.1.0"

__all__ = [
    "ANONYMOUS",
    "AnonymousPrincipal",
    "AuditLogger",
    "AuthError",
    "BackchannelConfig",
    "BackchannelLogoutApp",
    "Clock",
    "ConfigurationError",
    "ConnectionTiers",
    "CookieSessionStore",
    "Credentials",
    "CredentialsMissing",
    "CrossOriginRequest",
    "DisallowedAlgorithm",
    "DiscoveryCache",
    "Event",
    "EventSink",
    "ExpiredToken",
    "IdentityConfig",
    "IdentityResolver",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "Issuer",
    "JWKSCache",
    "KeysUnavailable",
    "Limits",
    "LoginConfig",
    "MalformedToken",
    "MemorySessionStore",
    "MemoryUserStore",
    "NotYetValid",
    "Principal",
    "PriorityTierMapper",
    "PrometheusSink",
    "ProviderMetadata",
    "Revocation",
    "RevocationBus",
    "SSOError",
    "SSOMiddleware",
    "ScimApp",
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
    "VerifiedToken",
    "compiled_modules",
]
