"""FastAPI dependencies on the principal that ``SSOMiddleware`` put in ``scope["user"]``.

Nothing here reads or verifies a token: the middleware already did, and these
dependencies only look at ``request.scope["user"]``. The ``HTTPBearer`` scheme
they declare (with ``auto_error=False``) exists so ``/docs`` shows the security
requirement and offers an "Authorize" button.

Example::

    from asgi_sso.fastapi import CurrentUser, require_scopes

    @api.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"sub": user.identity}

    @api.post("/reports", dependencies=[Depends(require_scopes("reports:write"))])
    async def create_report() -> None: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, NoReturn
from weakref import WeakKeyDictionary

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from asgi_sso._guards import Rule, challenge, principal_in, tier_rule
from asgi_sso.errors import AuthError
from asgi_sso.principal import Principal

__all__ = [
    "CurrentUser",
    "OptionalUser",
    "bearer_scheme",
    "current_user",
    "optional_user",
    "require_scopes",
    "require_tier",
    "required_scopes",
]

DEFAULT_REALM = "api"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="SSO bearer token",
    description=(
        "An access token from a trusted identity provider, or a browser session "
        "signed in at /auth/login. Verified by SSOMiddleware before the route runs."
    ),
)
"""The documented security scheme (``/docs``); the middleware does the checking."""

_Documented = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
_AUTHENTICATED = Rule()

Dependency = Callable[..., Awaitable[Principal]]

# The scopes each require_scopes() dependency checks, for the docs (asgi_sso.fastapi.docs).
_REQUIRED: WeakKeyDictionary[Callable[..., Any], tuple[str, ...]] = WeakKeyDictionary()


def _refuse(error: AuthError, realm: str) -> NoReturn:
    raise HTTPException(
        status_code=error.status, detail=error.description, headers=challenge(error, realm)
    )


def _enforce(rule: Rule, request: Request, realm: str) -> Principal:
    try:
        return rule.check(principal_in(request.scope))
    except AuthError as exc:
        _refuse(exc, realm)


async def current_user(request: Request, _documented: _Documented = None) -> Principal:
    """The signed-in principal; 401 with an RFC 6750 challenge when there is none.

    Raises:
        HTTPException: 401 for an anonymous request (only possible on public paths
            or with ``PathRules(optional=True)``).
    """
    return _enforce(_AUTHENTICATED, request, DEFAULT_REALM)


async def optional_user(request: Request, _documented: _Documented = None) -> Principal | None:
    """The signed-in principal, or ``None`` for an anonymous request."""
    user = principal_in(request.scope)
    return user if isinstance(user, Principal) else None


def require_scopes(*scopes: str, realm: str = DEFAULT_REALM) -> Dependency:
    """A dependency that returns the principal when it holds every one of ``scopes``.

    Args:
        *scopes: the required scopes.
        realm: the ``realm`` of the challenge.

    Returns:
        An async dependency: 401 when anonymous, 403 ``insufficient_scope`` (with
        the required ``scope`` in the challenge) when a scope is missing.
    """
    rule = Rule(scopes=scopes)

    async def scoped(request: Request, _documented: _Documented = None) -> Principal:
        return _enforce(rule, request, realm)

    _REQUIRED[scoped] = tuple(scopes)
    return scoped


def required_scopes(dependency: Callable[..., Any]) -> tuple[str, ...]:
    """The scopes a :func:`require_scopes` dependency checks (``()`` for any other callable)."""
    try:
        return _REQUIRED.get(dependency, ())
    except TypeError:  # not weakly referenceable: not ours
        return ()


def require_tier(
    minimum: str, *, ranking: Sequence[str] | None = None, realm: str = DEFAULT_REALM
) -> Dependency:
    """A dependency that returns the principal when its tier is ``minimum`` or higher.

    Args:
        minimum: the lowest tier accepted.
        ranking: the accepted order, highest first, when it must differ from the
            tier mapper's. Without it (the usual case) the tier mapper's own order
            decides (``PriorityTierMapper(tiers=[...])``, carried on the principal as
            ``Principal.tier_ranks``): ``require_tier("pro")`` admits ``"enterprise"``
            too. A mapper without an order admits ``minimum`` only.
        realm: the ``realm`` of the challenge.

    Returns:
        An async dependency: 401 when anonymous, 403 ``insufficient_scope`` otherwise.

    Raises:
        ConfigurationError: ``minimum`` is not in ``ranking`` (at start-up), or not
            one of the tier mapper's tiers (on the first request that reaches it).
    """
    rule = tier_rule(minimum, ranking)

    async def tiered(request: Request, _documented: _Documented = None) -> Principal:
        return _enforce(rule, request, realm)

    return tiered


CurrentUser = Annotated[Principal, Depends(current_user)]
"""``user: CurrentUser`` in a route's signature requires a signed-in principal."""

OptionalUser = Annotated[Principal | None, Depends(optional_user)]
"""``user: OptionalUser`` is the principal or ``None``."""
