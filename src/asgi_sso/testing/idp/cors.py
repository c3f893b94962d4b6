"""CORS for the dev IdP's token endpoint, so a page can redeem its code (Swagger UI, an SPA).

A browser app signing in with a public client (authorization code + PKCE) posts to the token
endpoint from its own origin; like the IdPs that support such clients (Entra ID's "SPA"
redirect URIs, Okta, Auth0), the dev IdP lets exactly the origins of registered redirect URIs
read the answer (Fetch Standard §3.2, CORS protocol).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from asgi_sso.testing.idp.requests import oauth_error

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["allow", "preflight"]

# What fetch() adds to a form post: Swagger UI sends X-Requested-With, confidential
# clients in a page send Authorization (Basic), DPoP clients their proof (RFC 9449).
_HEADERS = frozenset({"accept", "authorization", "content-type", "dpop", "x-requested-with"})


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}".lower()


def registered_origins(idp: DevIdP) -> frozenset[str]:
    """The origins of every registered redirect URI."""
    return frozenset(_origin(uri) for c in idp.clients.values() for uri in c.redirect_uris)


def _allowed(idp: DevIdP, request: Request) -> str | None:
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() in registered_origins(idp):
        return origin
    return None


def preflight(idp: DevIdP, request: Request) -> Response:
    """Answer an ``OPTIONS`` preflight: allowed for a registered redirect URI's origin."""
    origin = _allowed(idp, request)
    if origin is None:
        return oauth_error(
            "invalid_request", "this origin is not the origin of a registered redirect URI", 403
        )
    asked = request.headers.get("access-control-request-headers", "")
    headers = sorted({h.strip().lower() for h in asked.split(",")} & _HEADERS)
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": ", ".join(headers),
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


def allow(idp: DevIdP, request: Request, response: Response) -> Response:
    """Let the page read ``response`` when it came from a registered redirect URI's origin."""
    origin = _allowed(idp, request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = "DPoP-Nonce"  # RFC 9449 §8
    response.headers["Vary"] = "Origin"
    return response
