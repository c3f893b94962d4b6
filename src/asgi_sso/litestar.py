"""Litestar guards and a dependency on the principal ``SSOMiddleware`` put in the scope.

Nothing here reads or verifies a token: the middleware already did. Guards only
look at ``connection.scope["user"]`` and refuse with Litestar's exceptions
carrying the RFC 6750 ``WWW-Authenticate`` challenge.

Example::

    from asgi_sso.litestar import current_user, require_scopes, require_tier

    @get("/reports", guards=[require_scopes("reports:read")],
         dependencies={"user": Provide(current_user, sync_to_thread=False)})
    async def reports(user: NamedDependency[Principal]) -> list[str]: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme

from asgi_sso._guards import Rule, challenge, principal_in, tier_rule
from asgi_sso.errors import AuthError
from asgi_sso.principal import Principal

__all__ = [
    "SECURITY_COMPONENTS",
    "SECURITY_REQUIREMENT",
    "current_user",
    "require_authenticated",
    "require_scopes",
    "require_tier",
]

DEFAULT_REALM = "api"
SCHEME_NAME = "BearerToken"

SECURITY_COMPONENTS = Components(
    security_schemes={
        SCHEME_NAME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description="An access token from a trusted identity provider (SSOMiddleware).",
        )
    }
)
"""OpenAPI components declaring the bearer scheme: ``OpenAPIConfig(components=...)``."""

SECURITY_REQUIREMENT: list[SecurityRequirement] = [{SCHEME_NAME: []}]
"""The matching requirement: ``Litestar(security=SECURITY_REQUIREMENT)``."""

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], Any], None]


def _refuse(error: AuthError, realm: str) -> NoReturn:
    kind: type[HTTPException] = (
        NotAuthorizedException if error.status == 401 else PermissionDeniedException
    )
    raise kind(detail=error.description, headers=challenge(error, realm))


def _guard(rule: Rule, realm: str) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: Any) -> None:
        try:
            rule.check(principal_in(connection.scope))
        except AuthError as exc:
            _refuse(exc, realm)

    return guard


def current_user(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The signed-in principal (use with ``Provide(current_user, sync_to_thread=False)``).

    Raises:
        NotAuthorizedException: 401 for an anonymous request.
    """
    try:
        return Rule().check(principal_in(request.scope))
    except AuthError as exc:
        _refuse(exc, DEFAULT_REALM)


def require_authenticated(realm: str = DEFAULT_REALM) -> Guard:
    """A guard refusing anonymous requests with 401."""
    return _guard(Rule(), realm)


def require_scopes(*scopes: str, realm: str = DEFAULT_REALM) -> Guard:
    """A guard requiring every one of ``scopes``: 401 anonymous, 403 ``insufficient_scope``.

    Args:
        *scopes: the required scopes.
        realm: the ``realm`` of the challenge.
    """
    return _guard(Rule(scopes=scopes), realm)


def require_tier(
    minimum: str, *, ranking: Sequence[str] | None = None, realm: str = DEFAULT_REALM
) -> Guard:
    """A guard requiring the tier ``minimum`` or higher: 401 anonymous, 403 otherwise.

    Args:
        minimum: the lowest tier accepted.
        ranking: the accepted order, highest first, when it must differ from the
            tier mapper's. Without it (the usual case) the tier mapper's own order
            decides (``PriorityTierMapper(tiers=[...])``, carried on the principal as
            ``Principal.tier_ranks``): ``require_tier("pro")`` admits ``"enterprise"``
            too. A mapper without an order admits ``minimum`` only.
        realm: the ``realm`` of the challenge.

    Raises:
        ConfigurationError: ``minimum`` is not in ``ranking`` (at start-up), or not
            one of the tier mapper's tiers (on the first request that reaches it).
    """
    return _guard(tier_rule(minimum, ranking), realm)
