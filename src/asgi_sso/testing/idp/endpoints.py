"""The dev IdP's HTTP endpoints: discovery (OIDC and RFC 8414), JWKS, authorize, pushed
authorization requests (RFC 9126), token, userinfo, end_session, client registration
(:mod:`asgi_sso.testing.idp.registration`) and the command line's ``/dev/token``
(:mod:`asgi_sso.testing.idp.devtoken`).

A request naming a ``resource`` (RFC 8707) gets access tokens whose ``aud`` is that resource;
such a request is plain OAuth 2.0 and need not ask for ``openid``. A token request with a
``DPoP`` proof gets tokens bound to its key (RFC 9449, :mod:`asgi_sso.testing.idp.dpop`); a
certificate-bound client's, to its client certificate (RFC 8705, :mod:`asgi_sso.testing.idp.mtls`).

Every refusal follows its spec: RFC 6749 §4.1.2.1 / §5.2 for OAuth errors, an
error page (never a redirect) for a bad ``client_id`` or ``redirect_uri``
(OIDC Core §3.1.2.6), RFC 6750 §3 for the userinfo endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from asgi_sso.testing.idp import cors
from asgi_sso.testing.idp.assertions import assertion_client, fetch_client_keys
from asgi_sso.testing.idp.binding import Binding, token_binding
from asgi_sso.testing.idp.devtoken import dev_token
from asgi_sso.testing.idp.dpop import JKT, grant_key_problem, presented_key_problem
from asgi_sso.testing.idp.issue import token_response
from asgi_sso.testing.idp.logout import end_session
from asgi_sso.testing.idp.model import (
    DevClient,
    DevUser,
    Grant,
    PushedRequest,
    new_secret,
    verify_own,
)
from asgi_sso.testing.idp.mtls import grant_certificate_problem, resource_certificate_problem
from asgi_sso.testing.idp.pages import error_page, login_page
from asgi_sso.testing.idp.registration import register
from asgi_sso.testing.idp.requests import (
    NO_STORE,
    BadRequest,
    Params,
    bearer_error,
    expires_in_param,
    oauth_error,
    read_params,
    resource_param,
    with_query,
)
from asgi_sso.testing.tokens import b64url
from asgi_sso.verify.dpop import DPOP_ALGORITHMS

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["dispatch", "lifespan"]

_PKCE = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1 / §4.2
_CLAIMS = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "at_hash", "email",
    "email_verified", "name", "given_name", "family_name", "groups", "roles", "tid",
    "connection_id",
)  # fmt: skip


def _unavailable(idp: DevIdP) -> Response | None:
    if idp.outage_status is None:
        return None
    return JSONResponse(
        {"error": "temporarily_unavailable"},
        status_code=idp.outage_status,
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
    )


async def discovery(idp: DevIdP, request: Request) -> Response:
    """OIDC Discovery 1.0 §3 provider metadata, also served as RFC 8414 §3 metadata."""
    down = _unavailable(idp)
    if down is not None:
        return down
    doc = {
        "issuer": idp.issuer,
        "authorization_endpoint": idp.url("/authorize"),
        "token_endpoint": idp.url("/token"),
        "userinfo_endpoint": idp.url("/userinfo"),
        "jwks_uri": idp.jwks_uri,
        "registration_endpoint": idp.url("/register"),  # RFC 7591, public clients
        "end_session_endpoint": idp.url("/end_session"),
        "introspection_endpoint": idp.url("/introspect"),  # RFC 7662
        "pushed_authorization_request_endpoint": idp.url("/par"),  # RFC 9126 §5
        "require_pushed_authorization_requests": idp.require_par,
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(idp.keys.algorithms),  # RS256 always
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(idp.assertion_algorithms),
        "introspection_endpoint_auth_methods_supported": list(_CONFIDENTIAL_AUTH),
        "introspection_endpoint_auth_signing_alg_values_supported": list(idp.assertion_algorithms),
        "claims_supported": list(_CLAIMS),
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),  # RFC 9449 §5.1
        "tls_client_certificate_bound_access_tokens": True,  # RFC 8705 §3.3
        "authorization_response_iss_parameter_supported": True,  # RFC 9207
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }
    return JSONResponse(doc, headers={"Cache-Control": "public, max-age=300"})


async def jwks(idp: DevIdP, request: Request) -> Response:
    """The public JWK Set, cacheable for five minutes."""
    down = _unavailable(idp)
    if down is not None:
        return down
    await idp.wait_jwks_delay()
    return JSONResponse(idp.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


def _authorize_client(idp: DevIdP, params: Params) -> tuple[DevClient, str] | Response:
    client = idp.clients.get(params.get("client_id", ""))
    if client is None:
        return error_page("invalid_request", "unknown client_id")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:  # OIDC Core §3.1.2.1: exact match
        return error_page("invalid_request", "redirect_uri is not registered for this client")
    return client, redirect_uri


def _authorize_problem(params: Params) -> tuple[str, str] | None:
    try:
        resource = resource_param(params)
    except BadRequest as exc:
        return exc.error, exc.description
    if params.get("response_type") != "code":
        return "unsupported_response_type", "only response_type=code is supported"
    if params.get("code_challenge_method") != "S256":
        return "invalid_request", "PKCE with code_challenge_method=S256 is required"
    if not _PKCE.fullmatch(params.get("code_challenge", "")):
        return "invalid_request", "code_challenge is missing or malformed"
    if resource is None and "openid" not in params.get("scope", "").split():
        return "invalid_scope", "the scope must include openid (or name a resource, RFC 8707)"
    if "dpop_jkt" in params and not JKT.fullmatch(params["dpop_jkt"]):  # RFC 9449 §10
        return "invalid_request", "dpop_jkt must be a base64url SHA-256 JWK thumbprint"
    return None


def _chosen_user(idp: DevIdP, params: Params, posted: bool) -> DevUser | None:
    login = params.get("login", "").strip() if posted else ""
    if login:
        user = idp.find_user(login)
        if user is None:  # a typed-in identity becomes an ad hoc user
            user = DevUser(sub=login, email=login if "@" in login else None)
            idp.add_user(user)
        return user
    hint = params.get("login_hint", "")
    if hint and idp.find_user(hint) is not None:
        return idp.find_user(hint)
    if idp.auto_approve and idp.users:
        return next(iter(idp.users.values()))
    return None


async def authorize(idp: DevIdP, request: Request) -> Response:
    """The authorization endpoint (OIDC Core §3.1.2), taking pushed requests (RFC 9126 §4)."""
    raw = await read_params(request)
    pushed = _pushed_params(idp, raw)
    if isinstance(pushed, Response):
        return pushed
    params = pushed
    checked = _authorize_client(idp, params)
    if isinstance(checked, Response):
        return checked
    client, redirect_uri = checked
    reply = {"state": params["state"]} if "state" in params else {}
    reply["iss"] = idp.issuer  # RFC 9207 §2
    problem = _authorize_problem(params)
    user = None if problem else _chosen_user(idp, params, request.method == "POST")
    if problem is None and user is None and "none" in params.get("prompt", "").split():
        problem = ("login_required", "prompt=none but nobody is signed in")
    scope = "" if user is None else user.grantable(params.get("scope", ""))
    if problem is None and user is not None and params.get("scope", "").strip() and not scope:
        problem = ("access_denied", "the user may not be granted any of the requested scopes")
    if problem is not None:
        error = {"error": problem[0], "error_description": problem[1]}
        return RedirectResponse(with_query(redirect_uri, {**error, **reply}), status_code=302)
    if user is None:
        keep = {k: v for k, v in params.items() if k != "login"}
        if "request_uri" in raw:  # the sign-in form posts back a fresh pushed request
            keep = _push(idp, client.client_id, keep)
        return login_page(idp.url("/authorize"), keep, idp.users.values())
    now = int(idp.clock.time())
    sid = new_secret()
    idp.sessions[sid] = user.sub
    idp.session_clients.setdefault(sid, set()).add(client.client_id)
    code = new_secret()
    idp.codes[code] = Grant(
        client_id=client.client_id,
        sub=user.sub,
        scope=scope,
        sid=sid,
        auth_time=now,
        expires_at=now + idp.code_ttl,
        redirect_uri=redirect_uri,
        nonce=params.get("nonce"),
        code_challenge=params["code_challenge"],
        resource=params.get("resource"),
        dpop_jkt=params.get("dpop_jkt"),
    )
    return RedirectResponse(with_query(redirect_uri, {"code": code, **reply}), status_code=302)


async def authenticate(
    idp: DevIdP, request: Request, params: Params, endpoint: str
) -> DevClient | Response:
    """The client a request to ``endpoint`` (``"/token"``, ``"/par"``…) authenticates as.

    The keys of a client registered with ``jwks_uri`` are fetched first.
    """
    if "client_assertion" in params:
        await fetch_client_keys(idp, params)
    return _authenticate_client(idp, request, params, endpoint)


def _audiences(idp: DevIdP, endpoint: str) -> tuple[str, ...]:
    """The ``aud`` values a client assertion sent to ``endpoint`` may name."""
    if endpoint == "/par":  # RFC 9126 §2: the issuer, the token or the PAR endpoint
        return idp.issuer, idp.url("/token"), idp.url("/par")
    return idp.url(endpoint), idp.url("/token")


def _authenticate_client(
    idp: DevIdP, request: Request, params: Params, endpoint: str = "/token"
) -> DevClient | Response:
    header = request.headers.get("authorization", "")
    basic = header[:6].lower() == "basic "
    challenge = {"WWW-Authenticate": 'Basic realm="dev-idp"'} if basic else {}
    if "client_assertion" in params or "client_assertion_type" in params:
        if basic:
            return oauth_error("invalid_request", "use one client authentication method")
        return assertion_client(idp, params, _audiences(idp, endpoint))
    if basic:
        if "client_secret" in params:
            return oauth_error("invalid_request", "use one client authentication method")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            raw_id, raw_secret = decoded.split(":", 1)
        except Exception:  # malformed Basic credentials
            return oauth_error("invalid_client", "malformed Basic credentials", 401, challenge)
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)  # RFC 6749 §2.3.1
        if params.get("client_id", client_id) != client_id:
            return oauth_error("invalid_request", "client_id does not match the credentials")
    else:
        client_id = params.get("client_id", "")
        secret = params.get("client_secret", "")
    client = idp.clients.get(client_id)
    if client is None:
        return oauth_error("invalid_client", "unknown client", 401, challenge)
    if client.uses_keys:  # registered keys: private_key_jwt only
        return oauth_error("invalid_client", "this client must use private_key_jwt", 401)
    if client.client_secret is None:
        if secret:
            return oauth_error("invalid_client", "a public client has no secret", 401, challenge)
        return client
    if not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        return oauth_error("invalid_client", "client authentication failed", 401, challenge)
    return client


def _code_grant(idp: DevIdP, client: DevClient, params: Params, bound: Binding) -> Response:
    grant = idp.codes.pop(params.get("code", ""), None)  # one use only, even when it fails
    if grant is None or grant.client_id != client.client_id:
        return oauth_error("invalid_grant", "the code is invalid, used or for another client")
    if idp.clock.time() >= grant.expires_at:
        return oauth_error("invalid_grant", "the code has expired")
    if params.get("redirect_uri") != grant.redirect_uri:
        return oauth_error("invalid_grant", "redirect_uri does not match the authorization")
    verifier = params.get("code_verifier", "")
    if not _PKCE.fullmatch(verifier):
        return oauth_error("invalid_grant", "code_verifier is missing or malformed")
    challenge = b64url(hashlib.sha256(verifier.encode("ascii")).digest())  # RFC 7636 §4.6
    if not hmac.compare_digest(challenge, grant.code_challenge):
        return oauth_error("invalid_grant", "PKCE verification failed")
    problem = _same_resource(grant, params) or grant_key_problem(
        grant.dpop_jkt, bound.jkt, "the code (dpop_jkt)"
    )
    if problem is not None:
        return problem
    body = token_response(idp, grant, client, nonce=True, bound=bound)
    return JSONResponse(body, headers=NO_STORE)


def _same_resource(grant: Grant, params: Params) -> Response | None:
    """Refuse a token request naming another resource than the grant (RFC 8707 §2.2)."""
    asked = resource_param(params)
    if asked is not None and grant.resource is not None and asked != grant.resource:
        return oauth_error("invalid_target", "the resource differs from the authorized one")
    if asked is not None:
        grant.resource = asked
    return None


def _refresh_grant(idp: DevIdP, client: DevClient, params: Params, bound: Binding) -> Response:
    grant = idp.refresh_tokens.pop(params.get("refresh_token", ""), None)  # rotated
    if grant is None or grant.client_id != client.client_id:
        return oauth_error("invalid_grant", "the refresh token is invalid or was already used")
    if idp.clock.time() >= grant.expires_at:
        return oauth_error("invalid_grant", "the refresh token has expired")
    problem = (
        _same_resource(grant, params)
        or grant_key_problem(grant.dpop_jkt, bound.jkt, "the refresh token")
        or grant_certificate_problem(grant.x5t, bound.x5t, "the refresh token")
    )
    if problem is not None:
        return problem
    if "scope" in params:  # RFC 6749 §6: may narrow, never widen
        asked = params["scope"].split()
        if not set(asked) <= set(grant.scope.split()):
            return oauth_error("invalid_scope", "the scope exceeds the original grant")
        grant.scope = " ".join(asked)
    body = token_response(idp, grant, client, nonce=False, bound=bound)
    return JSONResponse(body, headers=NO_STORE)


def _client_credentials(idp: DevIdP, client: DevClient, params: Params, bound: Binding) -> Response:
    audience = params.get("audience") or resource_param(params) or client.token_audience
    scope = params.get("scope", " ".join(client.scopes))
    expires_in = expires_in_param(params, idp.access_token_ttl)
    cnf = bound.cnf()
    claims = idp.access_token_claims(
        client.client_id,
        client_id=client.client_id,
        audience=audience,
        scope=scope,
        expires_in=expires_in,
        extra=None if cnf is None else {"cnf": cnf},  # RFC 9449 §6.1, RFC 8705 §3
    )
    body: dict[str, Any] = {
        "access_token": idp.sign(claims, "at+jwt"),
        "token_type": bound.token_type,
        "expires_in": expires_in,
    }
    if scope:
        body["scope"] = scope
    return JSONResponse(body, headers=NO_STORE)


_GRANTS = {
    "authorization_code": _code_grant,
    "refresh_token": _refresh_grant,
    "client_credentials": _client_credentials,
}


async def token(idp: DevIdP, request: Request) -> Response:
    """The token endpoint (RFC 6749 §3.2, OIDC Core §3.1.3), readable by registered origins."""
    if request.method == "OPTIONS":
        return cors.preflight(idp, request)
    try:
        response = await _token(idp, request)
    except BadRequest as exc:
        response = oauth_error(exc.error, exc.description)
    return cors.allow(idp, request, response)


async def _token(idp: DevIdP, request: Request) -> Response:
    if request.method != "POST":
        return oauth_error("invalid_request", "the token endpoint takes POST only", 405)
    params = await read_params(request)
    client = await authenticate(idp, request, params, "/token")
    if isinstance(client, Response):
        return client
    grant_type = params.get("grant_type", "")
    handler = _GRANTS.get(grant_type)
    if handler is None:
        return oauth_error("unsupported_grant_type", "unknown or missing grant_type")
    if grant_type not in client.grant_types:
        return oauth_error("unauthorized_client", f"the client may not use {grant_type}")
    bound = await token_binding(idp, request, "/token", client)
    if isinstance(bound, Response):
        return bound
    response = handler(idp, client, params, bound)
    if idp.dpop_nonce is not None:  # RFC 9449 §8.2: the nonce for the next request
        response.headers["DPoP-Nonce"] = idp.dpop_nonce
    return response


async def userinfo(idp: DevIdP, request: Request) -> Response:
    """The UserInfo endpoint (OIDC Core §5.3), for this IdP's access tokens with ``openid``.

    A DPoP-bound token is taken only with the ``DPoP`` scheme and a proof of its key.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not token.strip():
        return JSONResponse(
            {"error": "invalid_request"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="dev-idp"'},
        )
    token = token.strip()
    verified = verify_own(token, idp.keys)
    if verified is None:
        return bearer_error("invalid_token", "the token was not issued by this IdP")
    header, claims = verified
    if header.get("typ") != "at+jwt" or claims.get("iss") != idp.issuer:
        return bearer_error("invalid_token", "not an access token of this IdP")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or idp.clock.time() >= exp:
        return bearer_error("invalid_token", "the token has expired")
    if "openid" not in str(claims.get("scope", "")).split():
        return bearer_error("insufficient_scope", "the token lacks the openid scope", 403)
    dpop = scheme.lower() == "dpop"
    refused = await presented_key_problem(
        idp, request, "/userinfo", dpop=dpop, token=token, claims=claims
    )
    refused = refused or resource_certificate_problem(idp, request, claims)
    if refused is not None:
        return refused
    sub = str(claims.get("sub", ""))
    user = idp.users.get(sub)
    scopes = str(claims.get("scope", "")).split()
    body = {"sub": sub, **(user.claims_for(scopes) if user is not None else {})}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def introspect(idp: DevIdP, request: Request) -> Response:
    """Token introspection (RFC 7662 §2) for registered confidential clients.

    Opaque tokens from :meth:`DevIdP.issue_opaque_token` and this IdP's own JWT
    access tokens are active until they expire (or are revoked); anything else is
    ``{"active": false}``.
    """
    received = await _authenticated_post(idp, request, "/introspect")
    if isinstance(received, Response):
        return received
    params, client = received
    if client.is_public:  # RFC 7662 §2.1
        return oauth_error("invalid_client", "a public client may not introspect", 401)
    claims = _active_claims(idp, params.get("token", ""))
    if claims is None:
        return JSONResponse({"active": False}, headers=NO_STORE)
    cnf = claims.get("cnf")
    dpop = isinstance(cnf, dict) and "jkt" in cnf  # RFC 9449 §6.2; RFC 8705 §3.2 is Bearer
    token_type = "DPoP" if dpop else "Bearer"
    return JSONResponse({"active": True, "token_type": token_type, **claims}, headers=NO_STORE)


async def _authenticated_post(
    idp: DevIdP, request: Request, endpoint: str
) -> tuple[Params, DevClient] | Response:
    """The form and client of a POST to ``endpoint``, or its refusal (outage, method, auth)."""
    down = _unavailable(idp)
    if down is not None:
        return down
    if request.method != "POST":
        return oauth_error("invalid_request", f"{endpoint} takes POST only", 405)
    params = await read_params(request)
    client = await authenticate(idp, request, params, endpoint)
    if isinstance(client, Response):
        return client
    return params, client


def _active_claims(idp: DevIdP, token: str) -> dict[str, Any] | None:
    claims = idp.opaque_tokens.get(token)
    if claims is None:
        verified = verify_own(token, idp.keys) if token.count(".") == 2 else None
        if verified is None or verified[0].get("typ") != "at+jwt":
            return None
        claims = verified[1]
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or idp.clock.time() >= exp:
        return None
    return dict(claims)


_CONFIDENTIAL_AUTH = ("client_secret_basic", "client_secret_post", "private_key_jwt")
_REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"  # RFC 9126 §2.2
_CLIENT_AUTH = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


async def par(idp: DevIdP, request: Request) -> Response:
    """The pushed authorization request endpoint (RFC 9126 §2).

    The client authenticates as at the token endpoint; the request is checked as
    ``/authorize`` would check it, kept for :attr:`DevIdP.par_ttl` seconds and
    answered with a single-use ``request_uri`` bound to the client.
    """
    received = await _authenticated_post(idp, request, "/par")
    if isinstance(received, Response):
        return received
    params, client = received
    if "request_uri" in params:  # RFC 9126 §2.1
        return oauth_error("invalid_request", "a pushed request must not hold a request_uri")
    fields = {k: v for k, v in params.items() if k not in _CLIENT_AUTH}
    fields["client_id"] = client.client_id
    if fields.get("redirect_uri", "") not in client.redirect_uris:
        return oauth_error("invalid_request", "redirect_uri is not registered for this client")
    problem = _authorize_problem(fields)
    if problem is not None:
        return oauth_error(*problem)
    body: dict[str, Any] = {**_push(idp, client.client_id, fields), "expires_in": idp.par_ttl}
    del body["client_id"]
    return JSONResponse(body, status_code=201, headers=NO_STORE)


def _push(idp: DevIdP, client_id: str, fields: Params) -> Params:
    """Keep ``fields`` under a new ``request_uri``; return what ``/authorize`` then takes."""
    now = idp.clock.time()
    for uri in [uri for uri, kept in idp.pushed.items() if kept.expires_at <= now]:
        del idp.pushed[uri]
    request_uri = _REQUEST_URI_PREFIX + new_secret()
    idp.pushed[request_uri] = PushedRequest(
        client_id=client_id, params=fields, expires_at=now + idp.par_ttl
    )
    return {"client_id": client_id, "request_uri": request_uri}


def _pushed_params(idp: DevIdP, params: Params) -> Params | Response:
    """The pushed request a ``request_uri`` names (used up), or ``params`` without one."""
    if "request_uri" not in params:
        if idp.require_par:
            return error_page(
                "invalid_request", "this provider takes authorization requests only by PAR"
            )
        return params
    pushed = idp.pushed.pop(params["request_uri"], None)  # one use only, even when it fails
    if pushed is None or idp.clock.time() >= pushed.expires_at:
        return error_page("invalid_request", "request_uri is unknown, used or expired")
    if params.get("client_id") != pushed.client_id:  # RFC 9126 §4
        return error_page("invalid_request", "request_uri was pushed by another client")
    return {**pushed.params, **({"login": params["login"]} if "login" in params else {})}


_AS_METADATA = "/.well-known/oauth-authorization-server"
Handler = Callable[["DevIdP", Request], Awaitable[Response]]
_ROUTES: dict[str, Handler] = {
    "/.well-known/openid-configuration": discovery,
    "/.well-known/oauth-authorization-server": discovery,
    "/register": register,
    "/jwks": jwks,
    "/authorize": authorize,
    "/par": par,
    "/token": token,
    "/userinfo": userinfo,
    "/end_session": end_session,
    "/introspect": introspect,
    "/dev/token": dev_token,
}


async def dispatch(idp: DevIdP, scope: Scope, receive: Receive, send: Send) -> None:
    """Route one HTTP request to its endpoint."""
    path: str = scope["path"]
    handler = None
    if idp.path_prefix and path == _AS_METADATA + idp.path_prefix:  # RFC 8414 §3.1
        path = idp.path_prefix + _AS_METADATA
    if path.startswith(idp.path_prefix):
        handler = _ROUTES.get(path[len(idp.path_prefix) :])
    if handler is None:
        response: Response = JSONResponse({"error": "not_found"}, status_code=404)
    else:
        idp.requests[path[len(idp.path_prefix) :]] += 1
        try:
            response = await handler(idp, Request(scope, receive))
        except BadRequest as exc:
            response = oauth_error(exc.error, exc.description)
    await response(scope, receive, send)


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge ASGI lifespan events; the IdP has nothing to start."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
