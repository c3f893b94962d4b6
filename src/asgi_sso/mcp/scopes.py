"""Scope checks inside an MCP tool, from the principal the middleware already verified."""

from __future__ import annotations

from typing import Any

from asgi_sso.errors import InsufficientScope
from asgi_sso.principal import AnonymousPrincipal, Principal

__all__ = ["principal_of", "require_scopes", "require_tier"]


def principal_of(source: Any) -> Principal | AnonymousPrincipal:
    """The principal the middleware verified, from whatever a tool has at hand.

    Args:
        source: an ASGI scope (dict), a Starlette ``Request`` (``.scope``), the MCP
            SDK's ``Context`` (``.request_context.request``), or a principal.

    Raises:
        InsufficientScope: no principal is found (the middleware did not run):
            refusing is the safe answer.
    """
    if isinstance(source, Principal | AnonymousPrincipal):
        return source
    try:
        context = getattr(source, "request_context", None)
    except ValueError:  # the SDK's Context outside a request
        context = None
    if context is not None:
        source = getattr(context, "request", None)
    scope = source if isinstance(source, dict) else getattr(source, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if not isinstance(user, Principal | AnonymousPrincipal):
        raise InsufficientScope("no verified principal in this request (is SSOMiddleware on?)")
    return user


def require_scopes(source: Any, *scopes: str) -> Principal:
    """Refuse unless the request's principal holds every one of ``scopes``.

    For checks inside a tool (e.g. depending on its arguments); calls known by name
    are better listed in ``ProtectedResource.tool_scopes``, refused before the app
    with a ``403`` the client can step up from. Raised inside an MCP tool, the SDK
    turns this error into a tool error result.

    Returns:
        the principal, for the tool to use.

    Raises:
        InsufficientScope: a scope is missing (``.scopes`` names all required).
    """
    principal = principal_of(source)
    missing = [s for s in scopes if s not in principal.scopes]
    if missing or not isinstance(principal, Principal):
        raise InsufficientScope(
            f"this call requires the scope(s): {' '.join(missing or scopes)}", scopes=scopes
        )
    return principal


def require_tier(source: Any, minimum: str) -> Principal:
    """Refuse unless the request's principal has tier ``minimum`` or a higher one.

    Higher means the tier mapper's own order (``Principal.has_tier``), so
    ``require_tier(ctx, "pro")`` admits ``enterprise`` too. For a tool, resource or
    prompt open only to some of the company's plans.

    Returns:
        the principal, for the tool to use.

    Raises:
        InsufficientScope: no principal, or a lower tier (or none).
        ConfigurationError: ``minimum`` is not one of the tier mapper's tiers.
    """
    principal = principal_of(source)
    if not isinstance(principal, Principal) or not principal.has_tier(minimum):
        raise InsufficientScope(f"this call requires the {minimum!r} tier or a higher one")
    return principal
