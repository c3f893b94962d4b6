"""Dynamic Client Registration (RFC 7591) for public clients, as MCP clients register.

Only what a native or CLI client needs: a public client (``token_endpoint_auth_method``
``none``, so PKCE is its only proof), the authorization code grant (with refresh), and
redirect URIs on the loopback interface over ``http`` (RFC 8252 §7.3) or anywhere over
``https``. Anything else is refused with the RFC 7591 §3.2.2 error that names it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asgi_sso.testing.idp.model import DevClient
from asgi_sso.testing.idp.requests import NO_STORE, BadRequest, oauth_error
from asgi_sso.testing.idp.server import LOOPBACK

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["MAX_CLIENTS", "register"]

MAX_CLIENTS = 1000  # registrations are open to anyone: a bound keeps memory bounded
_MAX_BODY = 16 * 1024
_MAX_URIS = 10
_MAX_TEXT = 2048
_GRANTS = frozenset({"authorization_code", "refresh_token"})
_METADATA = "invalid_client_metadata"
_REDIRECT = "invalid_redirect_uri"


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest("the body must be application/json", _METADATA)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise BadRequest("the request body is too large", _METADATA)
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest("the body is not JSON", _METADATA) from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", _METADATA)
    return data


def _redirect_uris(data: dict[str, Any]) -> tuple[str, ...]:
    uris = data.get("redirect_uris")
    if not isinstance(uris, list) or not 1 <= len(uris) <= _MAX_URIS:
        raise BadRequest(f"redirect_uris must be a list of 1 to {_MAX_URIS} URIs", _REDIRECT)
    for uri in uris:
        if not isinstance(uri, str) or not _redirect_ok(uri):
            raise BadRequest(
                "each redirect URI must be http on the loopback interface or https, "
                "without a fragment",
                _REDIRECT,
            )
    return tuple(uris)


def _redirect_ok(uri: str) -> bool:
    if len(uri) > _MAX_TEXT or "#" in uri or not uri.isascii() or not uri.isprintable():
        return False
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if " " in uri or not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)


def _grant_types(data: dict[str, Any]) -> tuple[str, ...]:
    grants = data.get("grant_types", ["authorization_code", "refresh_token"])
    ok = isinstance(grants, list) and all(isinstance(g, str) for g in grants)
    if not ok or "authorization_code" not in grants or not set(grants) <= _GRANTS:
        raise BadRequest("grant_types may be authorization_code and refresh_token", _METADATA)
    return tuple(dict.fromkeys(grants))


def _check_public(data: dict[str, Any]) -> None:
    if data.get("token_endpoint_auth_method", "none") != "none":
        raise BadRequest("only public clients register: token_endpoint_auth_method none", _METADATA)
    if data.get("response_types", ["code"]) != ["code"]:
        raise BadRequest("response_types must be [code]", _METADATA)
    name = data.get("client_name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise BadRequest("client_name must be a string of at most 200 characters", _METADATA)


async def register(idp: DevIdP, request: Request) -> Response:
    """The client registration endpoint (RFC 7591 §3): ``201`` and the client's information."""
    if request.method != "POST":
        return oauth_error("invalid_request", "the registration endpoint takes POST only", 405)
    try:
        data = await _body(request)
        redirect_uris = _redirect_uris(data)
        grant_types = _grant_types(data)
        _check_public(data)
    except BadRequest as exc:
        return oauth_error(exc.error, exc.description)
    if len(idp.clients) >= MAX_CLIENTS:
        return oauth_error(_METADATA, f"this dev IdP holds at most {MAX_CLIENTS} clients")
    client = DevClient(
        client_id="dyn-" + secrets.token_urlsafe(16),
        redirect_uris=redirect_uris,
        grant_types=grant_types,
    )
    idp.add_client(client)
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(idp.clock.time()),
        "redirect_uris": list(redirect_uris),
        "grant_types": list(grant_types),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    if data.get("client_name") is not None:
        body["client_name"] = data["client_name"]
    return JSONResponse(body, status_code=201, headers=NO_STORE)
