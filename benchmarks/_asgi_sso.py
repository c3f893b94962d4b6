"""Every name the benchmarks take from asgi_sso, in one place.

Public names come from ``asgi_sso`` (and its ``connections`` package); the few
internals a benchmark reaches for (the verifier's cache lookup and size, replacing
verification in the diagnostic apps, the middleware's per-request authentication
step and its live connections) are wrapped here, so a move inside the package is
fixed in this module alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgi_sso import (
    AuditLogger,
    AuthError,
    Backends,
    Issuer,
    Limits,
    LoginConfig,
    MemorySessionStore,
    Secret,
    SSOMiddleware,
    TokenVerifier,
)
from asgi_sso.connections import Connection, LiveConnections, StaticConnections
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.testing.tokens import generate_key, public_jwk

__all__ = [
    "AuditLogger",
    "AuthError",
    "Backends",
    "Connection",
    "DPoPClient",
    "Issuer",
    "Limits",
    "LiveConnections",
    "LoginConfig",
    "MemorySessionStore",
    "SSOMiddleware",
    "Secret",
    "StaticConnections",
    "TokenVerifier",
    "authenticate",
    "cache_footprint",
    "cached_lookup",
    "generate_key",
    "live_connections",
    "middleware_verify",
    "public_jwk",
    "replace_verification",
]


def cached_lookup(verifier: Any) -> Callable[[str], object]:
    """The verifier's verified-token cache lookup (the middleware's first step)."""
    return verifier.cached  # type: ignore[no-any-return]


def cache_footprint(verifier: Any) -> tuple[int, int]:
    """(entries in the verified-token cache, bytes of its fixed admission filter)."""
    return len(verifier.cache), int(verifier.cache.filter_bytes)


def middleware_verify(app: Any) -> Callable[..., Awaitable[Any]]:
    """The verification step an ``SSOMiddleware`` awaits for a token it has not cached."""
    return app.verifier.verify  # type: ignore[no-any-return]


def replace_verification(app: Any, verify: Callable[..., Awaitable[Any]]) -> None:
    """Swap the middleware's verification step (diagnostic apps only)."""
    app.verifier.verify = verify


def authenticate(app: Any) -> Callable[[Any], Awaitable[Any]]:
    """The step an ``SSOMiddleware`` takes for a protected request's scope.

    Extract the credential, verify it (or answer from the verified-token cache), refuse
    it when its connection changed since, and build the principal: everything between
    the request and the app but routing and the response. Returns a coroutine function
    of the scope, giving ``(principal, headers)``; it raises ``AuthError`` on a refusal.
    """
    return app._authenticate  # type: ignore[no-any-return]


def live_connections(app: Any) -> LiveConnections:
    """The live view of an ``SSOMiddleware`` built with ``connections=...``."""
    live = app.connections
    if not isinstance(live, LiveConnections):
        raise TypeError("the middleware was built without connections")
    return live
