"""The dev IdP's ``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9).

A client registered with a public JWK Set (``DevClient.jwks``, or fetched from
``DevClient.jwks_uri`` for each authentication) proves itself with a JWT signed
by its private key: ``iss`` and ``sub`` its client id, ``aud`` the endpoint it
calls (the token endpoint; at ``/par`` also the issuer, RFC 9126 §2; at
``/introspect`` that endpoint), an ``exp`` a few minutes away at most and a
``jti`` used once. A client registered with certificates (``DevClient.certificates``,
as Entra ID takes them) must name one in the header by ``x5t#S256`` (base64url
SHA-256 of its DER) or ``x5t`` (SHA-1), and the assertion verifies with that
certificate's key. Anything else is ``invalid_client`` (RFC 6749 §5.2).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.jwk import JWKRegistry
from starlette.responses import Response

from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.certificates import KeyCertificate
from asgi_sso.testing.idp.model import DevClient, check_jwks
from asgi_sso.testing.idp.requests import Params, oauth_error

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["ASSERTION_ALGORITHMS", "ASSERTION_TYPE", "assertion_client", "fetch_client_keys"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS: Final = ("RS256", "PS256", "ES256")
"""The algorithms a dev IdP can verify client assertions with (see ``DevIdP``)."""
_KEY_TYPES: Final = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
_MAX_LIFETIME: Final = 300
_MAX_ASSERTION: Final = 16 * 1024
_MAX_JWKS: Final = 64 * 1024
_FETCH_TIMEOUT: Final = 5.0


class _Refused(Exception):
    pass


def assertion_client(
    idp: DevIdP, params: Params, audiences: Sequence[str] = ()
) -> DevClient | Response:
    """The client a ``client_assertion`` proves, or the ``invalid_client`` refusal.

    ``audiences`` are the ``aud`` values accepted (the token endpoint when empty).
    """
    if "client_secret" in params:
        return oauth_error("invalid_request", "use one client authentication method")
    try:
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise _Refused("client_assertion_type must be " + ASSERTION_TYPE)
        audiences = audiences or (idp.url("/token"),)
        return _check(idp, params, params.get("client_assertion", ""), audiences)
    except _Refused as exc:
        return oauth_error("invalid_client", str(exc), 401)


async def fetch_client_keys(idp: DevIdP, params: Params) -> None:
    """Fetch the JWK Set of the client an assertion names, when it registered a ``jwks_uri``.

    The keys are kept in ``idp.fetched_jwks`` for :func:`assertion_client`; a failed
    fetch forgets them (the assertion is then refused).
    """
    assertion = params.get("client_assertion", "")
    if not assertion or len(assertion) > _MAX_ASSERTION:
        return
    try:
        client_id = params.get("client_id") or _unverified_sub(assertion)
    except _Refused:
        return
    client = idp.clients.get(client_id)
    if client is None or client.jwks_uri is None:
        return
    idp.fetched_jwks.pop(client.client_id, None)
    try:
        if idp.jwks_client is not None:
            keys = await _get_jwks(idp.jwks_client, client.jwks_uri)
        else:
            async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT) as http:
                keys = await _get_jwks(http, client.jwks_uri)
    except (httpx.HTTPError, ValueError, RecursionError, ConfigurationError):
        return  # unreachable or not a public JWK Set: the assertion cannot verify
    idp.fetched_jwks[client.client_id] = keys


async def _get_jwks(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    async with http.stream("GET", url, timeout=_FETCH_TIMEOUT) as response:
        if response.status_code != 200:
            raise ValueError("the client's JWKS URL did not answer 200")
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _MAX_JWKS:
                raise ValueError("the client's JWK Set is too large")
    keys = json.loads(body)
    check_jwks(keys)
    return dict(keys)


def _check(idp: DevIdP, params: Params, assertion: str, audiences: Sequence[str]) -> DevClient:
    if not assertion or len(assertion) > _MAX_ASSERTION or assertion.count(".") != 2:
        raise _Refused("client_assertion is not a compact JWT")
    client_id = params.get("client_id") or _unverified_sub(assertion)
    client = idp.clients.get(client_id)
    keys = None if client is None else client.jwks or idp.fetched_jwks.get(client.client_id)
    header = _header(assertion)
    if client is not None and client.certificates:
        keys = _certificate_jwks(header, client.certificates, idp.clock.time())
    if client is None or keys is None:
        raise _Refused("unknown client, or one without registered keys")
    claims = _verified_claims(assertion, header, keys, idp.assertion_algorithms)
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise _Refused("the assertion's iss and sub must be the client id")
    aud = claims.get("aud")
    named = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(value, str) and value in audiences for value in named):
        raise _Refused("the assertion's aud must be " + " or ".join(audiences))
    now = idp.clock.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or not now < exp:
        raise _Refused("the assertion has expired or has no exp")
    if exp > now + _MAX_LIFETIME:
        raise _Refused("the assertion lives too long")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _Refused("the assertion needs a jti")
    _use_once(idp, f"{client.client_id}\x00{jti}", float(exp))
    return client


def _unverified_sub(assertion: str) -> str:
    # Only to find the client whose keys verify it; nothing here is trusted yet.
    try:
        claims = json.loads(jws.extract_compact(assertion.encode()).payload)
    except Exception as exc:  # hostile input
        raise _Refused("client_assertion is not a JWT") from exc
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else ""


def _header(assertion: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(assertion.encode()).protected)
    except Exception as exc:  # hostile input
        raise _Refused("client_assertion is not a JWT") from exc


def _certificate_jwks(
    header: dict[str, Any], certificates: Sequence[str], now: float
) -> dict[str, Any]:
    # Entra ID finds the certificate by thumbprint, never by kid.
    sha256, sha1 = header.get("x5t#S256"), header.get("x5t")
    if sha256 is None and sha1 is None:
        raise _Refused("the assertion's header must name the client's certificate by x5t#S256")
    for pem in certificates:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        named = KeyCertificate((certificate,))
        if sha256 in (None, named.x5t_s256) and sha1 in (None, named.x5t):
            _check_dates(certificate, now)
            public = certificate.public_key()
            kind = "RSA" if isinstance(public, rsa.RSAPublicKey) else "EC"
            pem_public = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            jwk = JWKRegistry.import_key(pem_public, kind).as_dict(private=False)
            if isinstance(header.get("kid"), str):
                jwk["kid"] = header["kid"]  # so that _verified_claims selects this key
            return {"keys": [jwk]}
    raise _Refused("the assertion's x5t#S256 or x5t names no certificate of this client")


def _check_dates(certificate: x509.Certificate, now: float) -> None:
    # Entra ID refuses an expired (or not yet valid) certificate credential.
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if moment >= certificate.not_valid_after_utc:
        raise _Refused("the certificate the assertion names has expired")
    if moment < certificate.not_valid_before_utc:
        raise _Refused("the certificate the assertion names is not yet valid")


def _verified_claims(
    assertion: str, header: dict[str, Any], jwks: dict[str, Any], algorithms: Sequence[str]
) -> dict[str, Any]:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:  # never "none", nor HMAC
        raise _Refused(f"the assertion must be signed with {' or '.join(algorithms)}")
    kid = header.get("kid")
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") != _KEY_TYPES[alg] or (kid is not None and jwk.get("kid") != kid):
            continue
        try:
            key = JWKRegistry.import_key(jwk)
            payload = jws.deserialize_compact(assertion, key, algorithms=[alg]).payload
            claims = json.loads(payload)
        except Exception:  # noqa: S112 - the next registered key may fit
            continue
        if isinstance(claims, dict):
            return claims
    raise _Refused("the assertion's signature does not verify with the client's keys")


def _use_once(idp: DevIdP, key: str, exp: float) -> None:
    now = idp.clock.time()
    seen = idp.assertion_jtis
    for old in [k for k, until in seen.items() if until <= now]:
        del seen[old]
    if key in seen:
        raise _Refused("this client assertion was already used")
    seen[key] = exp
