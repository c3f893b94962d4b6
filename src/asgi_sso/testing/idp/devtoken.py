"""``POST /dev/token``: a registered user's access token for the command line (loopback only).

``asgi-sso token --user alice`` asks for one here, as if Alice had signed in through a
client: no browser, no password (the dev IdP's sign-in page asks for none either). It is
not an OAuth endpoint and not in the discovery document. It answers only requests from this
machine that no web page sent (no ``Origin`` header), so neither another host nor a page a
developer happens to visit can mint tokens with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asgi_sso.testing.idp.binding import token_binding
from asgi_sso.testing.idp.model import DevClient
from asgi_sso.testing.idp.requests import NO_STORE, expires_in_param, oauth_error, read_params
from asgi_sso.testing.idp.server import LOOPBACK

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["DEFAULT_SCOPE", "dev_token"]

DEFAULT_SCOPE = "openid profile email"  # what a browser sign-in asks for
_LISTED = 20  # known users named in an "unknown user" answer


def _refuse_outsiders(request: Request) -> Response | None:
    host = request.client.host if request.client is not None else None
    if host not in LOOPBACK:
        return oauth_error("access_denied", "the dev token endpoint answers this machine only", 403)
    if "origin" in request.headers:
        return oauth_error(
            "access_denied", "the dev token endpoint is for command-line tools, not web pages", 403
        )
    return None


def _client(idp: DevIdP, client_id: str) -> DevClient | Response | None:
    if not client_id:
        return next(iter(idp.clients.values()), None)
    client = idp.clients.get(client_id)
    if client is None:
        known = ", ".join(sorted(idp.clients)) or "none"
        return oauth_error("invalid_request", f"unknown client_id {client_id!r} (known: {known})")
    return client


async def dev_token(idp: DevIdP, request: Request) -> Response:
    """Mint an access token (``at+jwt``) for a registered user.

    Form parameters: ``user`` (a ``sub`` or e-mail, required), ``client_id`` (default the
    first registered client: its audience and ``client_id`` claim), ``audience``,
    ``scope`` (default ``openid profile email``) and ``expires_in`` (seconds, up to a day).
    A ``DPoP`` proof (for ``POST`` to this endpoint) binds the token to its key; a
    certificate-bound client's token is bound to the client certificate presented.
    """
    if request.method != "POST":
        return oauth_error("invalid_request", "POST a form to the dev token endpoint", 405)
    refused = _refuse_outsiders(request)
    if refused is not None:
        return refused
    params = await read_params(request)
    login = params.get("user", "").strip()
    user = idp.find_user(login) if login else None
    if user is None:
        known = ", ".join(sorted(idp.users)[:_LISTED]) or "none"
        what = f"unknown user {login[:100]!r}" if login else "name a user"
        return oauth_error("invalid_request", f"{what} (registered: {known})")
    client = _client(idp, params.get("client_id", ""))
    if isinstance(client, Response):
        return client
    bound = await token_binding(idp, request, "/dev/token", client)
    if isinstance(bound, Response):
        return bound
    audience = params.get("audience") or (client.token_audience if client else None)
    if not audience:
        return oauth_error("invalid_request", "no client is registered: give an audience")
    scope = params.get("scope", DEFAULT_SCOPE)
    expires_in = expires_in_param(params, idp.access_token_ttl)
    now = int(idp.clock.time())
    extra: dict[str, Any] = {"auth_time": now}
    cnf = bound.cnf()
    if cnf is not None:
        extra["cnf"] = cnf  # RFC 9449 §6.1, RFC 8705 §3
    claims = idp.access_token_claims(
        user.sub,
        client_id=client.client_id if client else "asgi-sso-cli",
        audience=audience,
        scope=scope,
        expires_in=expires_in,
        extra=extra,
    )
    body = {
        "access_token": idp.sign(claims, "at+jwt"),
        "token_type": bound.token_type,
        "expires_in": expires_in,
        "scope": scope,
    }
    return JSONResponse(body, headers=NO_STORE)
