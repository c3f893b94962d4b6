"""The OpenID Connect client steps of sign-in: PKCE, token endpoint, userinfo, ID token checks.

Sans-IO where it can be; the two network calls go through the injected
``httpx.AsyncClient`` under one overall deadline and a body-size cap, and every
transport or parsing failure becomes an :class:`~asgi_sso.errors.AuthError`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import msgspec

from asgi_sso._log import Throttle, held_back
from asgi_sso.errors import AuthError, InvalidClaim, ServiceUnavailable, UnknownIssuer
from asgi_sso.login.client_auth import ClientAuth
from asgi_sso.login.dpop import DPoPKey, clean_nonce

if TYPE_CHECKING:
    from asgi_sso.keys.discovery import ProviderMetadata

__all__ = [
    "PROTOCOL_CLAIMS",
    "ClientAuth",
    "FlowState",
    "ProviderError",
    "SignInError",
    "TokenRefused",
    "TokenSet",
    "authorize_params",
    "check_id_token",
    "clean_text",
    "client_auth_for",
    "fetch_userinfo",
    "merge_claims",
    "new_flow",
    "par_endpoint",
    "push_authorization_request",
    "token_lifetime",
    "token_request",
    "with_query",
]

PROTOCOL_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "at_hash", "c_hash",
     "auth_time", "sid", "jti", "acr", "amr"}
)  # fmt: skip
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
_DPOP_SCHEME = re.compile(r"(?:^|[\s,])dpop(?:\s|$)", re.IGNORECASE)
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
_MAX_TOKEN_LIFETIME = 366 * 86400.0
_REQUEST_URI = re.compile(r"[\x21-\x7e]{1,2048}")  # printable ASCII, no space

_log = logging.getLogger(__name__)
# A provider that is down fails every sign-in: say so once a minute per endpoint.
_trouble = Throttle()


def _report(endpoint: str, problem: str) -> None:
    count = _trouble.allow(endpoint)
    if count is not None:
        _log.warning("the identity provider at %s %s%s", endpoint, problem, held_back(count))


class SignInError(AuthError):
    """The sign-in callback is wrong: missing, expired or replayed state, an IdP ``error``."""

    status = 400
    error = "invalid_request"
    default_description = "the sign-in request is invalid; please sign in again"
    reason = "signin"


class ProviderError(AuthError):
    """The identity provider answered something unusable (status 502)."""

    status = 502
    error = None
    default_description = "the identity provider sent an invalid response"
    reason = "provider_error"


class TokenRefused(SignInError):
    """The token endpoint refused a grant (RFC 6749 §5.2).

    Attributes:
        code: the OAuth ``error`` code when it is well formed, else ``"error"``.
    """

    def __init__(self, code: str) -> None:
        super().__init__(f"the identity provider refused the request ({code})")
        self.code = code


class FlowState(msgspec.Struct, frozen=True, kw_only=True):
    """One pending sign-in (kept encrypted in the state cookie).

    ``connection``, ``iss`` and ``client_id`` name the provider it was started
    with (``connection`` is ``None`` for the default provider); the callback
    finishes it only with that provider, unchanged, and refuses it when the
    connection was disabled since ``started_at`` (its ``not_before``). A flow
    without ``iss`` predates connections and belongs to the default provider.
    """

    state: str
    nonce: str
    verifier: str
    return_to: str
    redirect_uri: str
    expires_at: float
    connection: str | None = None
    iss: str = ""
    client_id: str = ""
    started_at: float = 0.0

    def __repr__(self) -> str:
        # state, nonce and PKCE verifier never reach a log line (STYLE.md rule 10).
        return f"FlowState(return_to={self.return_to!r}, expires_at={self.expires_at!r})"

    __str__ = __repr__


class TokenSet(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of a token response we use (RFC 6749 §5.1, OIDC Core §3.1.3.3)."""

    id_token: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_in: float | None = None
    token_type: str | None = None

    @property
    def dpop_bound(self) -> bool:
        """Whether the access token is bound to the request's DPoP key (RFC 9449 §5)."""
        return isinstance(self.token_type, str) and self.token_type.lower() == "dpop"

    def __repr__(self) -> str:
        # Tokens never reach a log line (STYLE.md rule 10): only which ones are present.
        present = [n for n in ("id_token", "access_token", "refresh_token") if getattr(self, n)]
        return f"TokenSet(present={present!r}, expires_in={self.expires_in!r})"

    __str__ = __repr__


def token_lifetime(tokens: TokenSet) -> float | None:
    """The access token's ``expires_in`` when it is a usable number of seconds, else ``None``.

    Some providers send it as a JSON string (``"3600"``); a non-finite, negative or
    absurd value is ignored rather than trusted.
    """
    value = tokens.expires_in
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return min(value, _MAX_TOKEN_LIFETIME)


def clean_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with control, format and unassigned ones blanked.

    IdP-supplied ``error_description`` values may hold CR/LF (Entra ID adds trace ids on
    new lines), bidi overrides or lone surrogates; none of that reaches a page or a log.
    """
    cleaned = "".join(
        " " if unicodedata.category(char) in _UNPRINTABLE else char for char in text[:limit]
    )
    return " ".join(cleaned.split())


def new_flow(
    *,
    return_to: str,
    redirect_uri: str,
    expires_at: float,
    connection: str | None = None,
    iss: str = "",
    client_id: str = "",
    started_at: float = 0.0,
) -> FlowState:
    """Fresh ``state``, ``nonce`` and PKCE verifier (RFC 7636 §4.1: 43-128 characters)."""
    return FlowState(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(48),
        return_to=return_to,
        redirect_uri=redirect_uri,
        expires_at=expires_at,
        connection=connection,
        iss=iss,
        client_id=client_id,
        started_at=started_at,
    )


def with_query(endpoint: str, params: Mapping[str, str]) -> str:
    """``endpoint`` with ``params`` added to its query."""
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


def authorize_params(
    *,
    client_id: str,
    scopes: tuple[str, ...],
    flow: FlowState,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The authorization request parameters (OIDC Core §3.1.2.1), PKCE S256 included."""
    challenge = base64.urlsafe_b64encode(hashlib.sha256(flow.verifier.encode()).digest())
    return {
        **extra,
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": flow.redirect_uri,
        "scope": " ".join(scopes),
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }


async def _fetch(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    max_bytes: int,
) -> tuple[int, str, Any]:
    """Send ``request`` under one overall deadline; return status, media type and JSON (or None)."""
    response, document = await _exchange(client, request, deadline=deadline, max_bytes=max_bytes)
    return response.status_code, _media_type(response), document


def _media_type(response: httpx.Response) -> str:
    content_type: str = response.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower()


async def _exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    max_bytes: int,
) -> tuple[httpx.Response, Any]:
    """Send ``request`` under ``deadline``; return the (read) response and its JSON (or None)."""
    try:
        async with asyncio.timeout(deadline):
            response = await client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise ProviderError("the identity provider's response is too large")
            finally:
                await response.aclose()
    except AuthError:
        raise
    except (TimeoutError, httpx.HTTPError, OSError) as exc:
        _report(str(request.url.copy_with(query=None)), f"cannot be reached ({type(exc).__name__})")
        raise ServiceUnavailable("the identity provider cannot be reached") from exc
    try:
        document = msgspec.json.decode(bytes(body))
    except Exception:  # not JSON: the caller decides from the status what that means
        document = None
    return response, document


async def _fetch_proved(
    client: httpx.AsyncClient,
    build: Callable[[str | None], httpx.Request],
    *,
    proved: bool,
    deadline: float,
    max_bytes: int,
) -> tuple[int, str, Any]:
    """:func:`_fetch` of ``build(None)``, and once more with the server's nonce.

    Only a request carrying a DPoP proof (``proved``) is retried, when the server
    asks for a nonce (RFC 9449 §8, §9); never a third time, both under one ``deadline``.
    """
    if not proved:
        return await _fetch(client, build(None), deadline=deadline, max_bytes=max_bytes)
    loop = asyncio.get_running_loop()  # the clock asyncio.timeout keeps the deadline by
    started = loop.time()
    response, document = await _exchange(
        client, build(None), deadline=deadline, max_bytes=max_bytes
    )
    nonce = _nonce_asked(response, document)
    if nonce is not None:
        left = max(deadline - (loop.time() - started), 0.0)
        response, document = await _exchange(
            client, build(nonce), deadline=left, max_bytes=max_bytes
        )
        if _nonce_asked(response, document) is not None:
            raise ProviderError("the identity provider asked for a new DPoP nonce twice")
    return response.status_code, _media_type(response), document


def _nonce_asked(response: httpx.Response, document: Any) -> str | None:
    """The nonce a ``use_dpop_nonce`` answer hands out: a token endpoint's 400 with
    that ``error`` (RFC 9449 §8) or a resource's 401 DPoP challenge naming it (§9)."""
    if response.status_code == 400:
        asked = isinstance(document, dict) and document.get("error") == "use_dpop_nonce"
    elif response.status_code == 401:
        asked = any(
            _DPOP_SCHEME.search(value) is not None and "use_dpop_nonce" in value
            for value in response.headers.get_list("www-authenticate")
        )
    else:
        return None
    if not asked:
        return None
    nonce = clean_nonce(response.headers.get("dpop-nonce"))
    if nonce is None:
        raise ProviderError("the identity provider asked for a DPoP nonce without a usable one")
    return nonce


def _token_set(document: dict[str, Any], *, proved: bool) -> TokenSet:
    try:
        tokens = msgspec.convert(document, TokenSet, strict=False)
    except msgspec.ValidationError as exc:
        raise ProviderError("the token response has fields of the wrong type") from exc
    if tokens.dpop_bound and not proved:
        raise ProviderError("the token endpoint bound the tokens to a DPoP key never proved")
    return tokens


async def token_request(
    client: httpx.AsyncClient,
    endpoint: str,
    form: dict[str, str],
    auth: ClientAuth,
    *,
    deadline: float,
    max_bytes: int,
    dpop: DPoPKey | None = None,
) -> TokenSet:
    """POST to the token endpoint (code or refresh grant) and parse the answer.

    With ``dpop`` each request carries a proof of that key (RFC 9449 §5); the
    answer's ``token_type`` says whether the provider bound the tokens to it
    (``DPoP``) or ignored the proof (``Bearer``, which §5 allows).
    """

    def build(nonce: str | None) -> httpx.Request:
        # Credentials again for each attempt: a client assertion is single-use.
        body = dict(form)
        headers = {"accept": "application/json", **auth.apply(body, endpoint=endpoint)}
        if dpop is not None:
            headers["dpop"] = dpop.proof("POST", endpoint, nonce=nonce)
        return client.build_request("POST", endpoint, data=body, headers=headers)

    status, _, document = await _fetch_proved(
        client, build, proved=dpop is not None, deadline=deadline, max_bytes=max_bytes
    )
    if status == 200 and isinstance(document, dict):
        return _token_set(document, proved=dpop is not None)
    if status in (400, 401) and isinstance(document, dict):
        code = document.get("error")
        raise TokenRefused(
            code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "error"
        )
    if status == 429 or status >= 500:
        _report(endpoint, f"answered {status} to a token request")
        raise ServiceUnavailable("the identity provider's token endpoint is unavailable")
    _report(endpoint, f"answered {status} without a usable JSON body to a token request")
    raise ProviderError(f"the token endpoint answered {status} without a usable JSON body")


def client_auth_for(auth: ClientAuth, metadata: ProviderMetadata) -> ClientAuth:
    """``auth`` signing its assertions with an algorithm the provider takes.

    The provider's ``token_endpoint_auth_signing_alg_values_supported`` (RFC 8414
    §2) picks it, as :meth:`ClientAuth.accepting` says; PAR takes the token
    endpoint's client authentication (RFC 9126 §2).

    Raises:
        ProviderError: the provider takes none of the algorithms the key signs, so
            every assertion would be refused.
    """
    accepted = metadata.token_endpoint_auth_signing_alg_values_supported
    chosen = auth.accepting(accepted)
    if chosen is None:
        assert auth.key is not None  # only a key can sign nothing acceptable
        algs = auth.key.algs
        taken = clean_text(", ".join(accepted), 200)
        _report(metadata.issuer, f"takes client assertions signed {taken}, not by this key")
        raise ProviderError(
            f"the identity provider takes no client assertion the key signs ({' or '.join(algs)})"
        )
    return chosen


def par_endpoint(metadata: ProviderMetadata, mode: str) -> str | None:
    """The PAR endpoint to push to under ``LoginConfig.par`` = ``mode``, else ``None``.

    Raises:
        ServiceUnavailable: PAR is wanted (``"always"``, or required by the provider)
            and the provider advertises no ``pushed_authorization_request_endpoint``.
    """
    required = metadata.require_pushed_authorization_requests
    if mode == "never" or (mode == "auto" and not required):
        return None
    endpoint = metadata.pushed_authorization_request_endpoint
    if endpoint is None:
        problem = (
            "requires pushed authorization requests but advertises no "
            "pushed_authorization_request_endpoint"
            if required
            else "advertises no pushed_authorization_request_endpoint, which "
            "LoginConfig.par='always' needs"
        )
        _report(metadata.issuer, problem + ": nobody can sign in there")
        raise ServiceUnavailable(
            "the identity provider offers no pushed authorization requests, which sign-in needs"
        )
    return endpoint


async def push_authorization_request(
    client: httpx.AsyncClient,
    endpoint: str,
    params: Mapping[str, str],
    auth: ClientAuth,
    *,
    deadline: float,
    max_bytes: int,
) -> str:
    """POST the authorization request to the PAR endpoint (RFC 9126 §2); return its request_uri.

    The client authenticates as at the token endpoint (the assertion's ``aud`` is the
    PAR endpoint, which RFC 9126 §2 obliges the provider to accept).

    Raises:
        ProviderError: the provider refused the request (its ``error`` code is named)
            or answered without a usable ``request_uri``.
        ServiceUnavailable: the endpoint cannot be reached, times out or answers 429/5xx.
    """
    form = dict(params)
    headers = {"accept": "application/json", **auth.apply(form, endpoint=endpoint)}
    request = client.build_request("POST", endpoint, data=form, headers=headers)
    status, _, document = await _fetch(client, request, deadline=deadline, max_bytes=max_bytes)
    if status in (200, 201) and isinstance(document, dict):
        uri = document.get("request_uri")
        if isinstance(uri, str) and _REQUEST_URI.fullmatch(uri):
            return uri
        _report(endpoint, "answered a pushed authorization request without a usable request_uri")
        raise ProviderError("the pushed authorization response has no usable request_uri")
    if status == 429 or status >= 500:
        _report(endpoint, f"answered {status} to a pushed authorization request")
        raise ServiceUnavailable("the identity provider's PAR endpoint is unavailable")
    code = document.get("error") if isinstance(document, dict) else None
    code = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else f"HTTP {status}"
    _report(endpoint, f"refused a pushed authorization request ({code})")
    raise ProviderError(f"the identity provider refused the pushed authorization request ({code})")


async def fetch_userinfo(
    client: httpx.AsyncClient,
    endpoint: str,
    access_token: str,
    *,
    deadline: float,
    max_bytes: int,
    dpop: DPoPKey | None = None,
) -> dict[str, Any]:
    """GET the UserInfo claims (OIDC Core §5.3); only plain JSON responses are accepted.

    ``dpop`` is the key a DPoP-bound ``access_token`` is bound to: the token goes
    as ``Authorization: DPoP`` with a proof of it (RFC 9449 §7.1).

    Raises:
        ProviderError: the answer is not a JSON object, including a signed or encrypted
            ``application/jwt`` response (OIDC Core §5.3.2), which is refused by name.
    """

    def build(nonce: str | None) -> httpx.Request:
        headers = {"authorization": f"Bearer {access_token}", "accept": "application/json"}
        if dpop is not None:
            headers["authorization"] = f"DPoP {access_token}"
            headers["dpop"] = dpop.proof("GET", endpoint, access_token=access_token, nonce=nonce)
        return client.build_request("GET", endpoint, headers=headers)

    status, media_type, document = await _fetch_proved(
        client, build, proved=dpop is not None, deadline=deadline, max_bytes=max_bytes
    )
    if status == 200 and media_type == "application/jwt":
        raise ProviderError(
            "the userinfo endpoint answered a signed or encrypted JWT, which is not supported; "
            "register the client for plain JSON userinfo or set use_userinfo=False"
        )
    if status == 200 and isinstance(document, dict):
        return document
    if status == 429 or status >= 500:
        _report(endpoint, f"answered {status} to a userinfo request")
        raise ServiceUnavailable("the identity provider's userinfo endpoint is unavailable")
    _report(endpoint, f"answered {status} without a JSON object to a userinfo request")
    raise ProviderError(f"the userinfo endpoint answered {status} without a JSON object")


def check_id_token(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    alg: str | None = None,
    access_token: str | None = None,
) -> None:
    """The checks OIDC Core §3.1.3.7 leaves to the client after signature, ``aud`` and ``exp``.

    ``nonce`` is ``None`` only for an ID token from a refresh (OIDC Core §12.2), which
    carries the original sign-in's nonce, if any, and is not compared here.
    """
    if claims.get("iss") != issuer:
        raise UnknownIssuer("the ID token was not issued by the sign-in provider")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidClaim("the ID token has no subject")
    got = claims.get("nonce")
    if nonce is not None and (
        not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode())
    ):
        raise InvalidClaim("the ID token nonce does not match this sign-in")
    aud = claims.get("aud")
    azp = claims.get("azp")
    if isinstance(aud, list) and len(aud) > 1 and azp is None:
        raise InvalidClaim("the ID token has several audiences but no azp")
    if azp is not None and azp != client_id:
        raise InvalidClaim("the ID token azp is not this client")
    at_hash = claims.get("at_hash")
    if at_hash is not None and access_token is not None and alg is not None:
        digest = _HASHES.get(alg[-3:], hashlib.sha512)(access_token.encode()).digest()
        half = base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
        if not isinstance(at_hash, str) or not hmac.compare_digest(half, at_hash):
            raise InvalidClaim("the ID token at_hash does not match the access token")


def merge_claims(
    id_claims: Mapping[str, Any], userinfo: Mapping[str, Any], *, user_claim: str = "sub"
) -> dict[str, Any]:
    """ID token claims plus userinfo claims; userinfo never overrides a protocol claim.

    Args:
        id_claims: the verified ID token's claims.
        userinfo: the UserInfo response.
        user_claim: the issuer's user claim: userinfo may repeat it, never change it.

    Raises:
        InvalidClaim: the userinfo ``sub`` differs from the ID token's (OIDC Core §5.3.2),
            or its user claim does.
    """
    if userinfo.get("sub") != id_claims.get("sub"):
        raise InvalidClaim("the userinfo subject does not match the ID token")
    if user_claim in userinfo and userinfo[user_claim] != id_claims.get(user_claim):
        raise InvalidClaim(f"the userinfo {user_claim!r} claim does not match the ID token")
    merged = dict(id_claims)
    for key, value in userinfo.items():
        if key not in PROTOCOL_CLAIMS:
            merged[key] = value
    return merged
