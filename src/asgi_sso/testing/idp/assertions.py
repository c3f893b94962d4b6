"""The dev IdP's ``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9).

A client registered with a public JWK Set (``DevClient.jwks``) proves itself
with a JWT signed by its private key: ``iss`` and ``sub`` its client id, ``aud``
this token endpoint, an ``exp`` a few minutes away at most and a ``jti`` used
once. Anything else is ``invalid_client`` (RFC 6749 §5.2).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from joserfc import jws
from joserfc.jwk import JWKRegistry
from starlette.responses import Response

from asgi_sso.testing.idp.model import DevClient
from asgi_sso.testing.idp.requests import Params, oauth_error

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["ASSERTION_ALGORITHMS", "ASSERTION_TYPE", "assertion_client"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS: Final = ("RS256", "ES256")
_KEY_TYPES: Final = {"RS256": "RSA", "ES256": "EC"}
_MAX_LIFETIME: Final = 300
_MAX_ASSERTION: Final = 16 * 1024


class _Refused(Exception):
    pass


def assertion_client(idp: DevIdP, params: Params) -> DevClient | Response:
    """The client a ``client_assertion`` proves, or the ``invalid_client`` refusal."""
    if "client_secret" in params:
        return oauth_error("invalid_request", "use one client authentication method")
    try:
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise _Refused("client_assertion_type must be " + ASSERTION_TYPE)
        return _check(idp, params, params.get("client_assertion", ""))
    except _Refused as exc:
        return oauth_error("invalid_client", str(exc), 401)


def _check(idp: DevIdP, params: Params, assertion: str) -> DevClient:
    if not assertion or len(assertion) > _MAX_ASSERTION or assertion.count(".") != 2:
        raise _Refused("client_assertion is not a compact JWT")
    client_id = params.get("client_id") or _unverified_sub(assertion)
    client = idp.clients.get(client_id)
    if client is None or client.jwks is None:
        raise _Refused("unknown client, or one without registered keys")
    claims = _verified_claims(assertion, client)
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise _Refused("the assertion's iss and sub must be the client id")
    aud = claims.get("aud")
    token_endpoint = idp.url("/token")
    if aud != token_endpoint and not (isinstance(aud, list) and token_endpoint in aud):
        raise _Refused("the assertion's aud must be the token endpoint")
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


def _verified_claims(assertion: str, client: DevClient) -> dict[str, Any]:
    try:
        header = jws.extract_compact(assertion.encode()).protected
    except Exception as exc:  # hostile input
        raise _Refused("client_assertion is not a JWT") from exc
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:  # never "none", never HMAC with a public key
        raise _Refused(f"the assertion must be signed with {' or '.join(ASSERTION_ALGORITHMS)}")
    kid = header.get("kid")
    assert client.jwks is not None
    for jwk in client.jwks.get("keys", []):
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
