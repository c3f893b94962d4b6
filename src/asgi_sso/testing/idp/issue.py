"""What the dev IdP's token endpoint returns for a user grant: access, ID and refresh tokens."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from asgi_sso.testing.idp.binding import Binding
from asgi_sso.testing.idp.model import DevClient, Grant, new_secret
from asgi_sso.testing.tokens import b64url, mint

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["token_response"]

_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def token_response(
    idp: DevIdP, grant: Grant, client: DevClient, *, nonce: bool, bound: Binding
) -> dict[str, Any]:
    """The token endpoint's success body for a user grant (OIDC Core §3.1.3.3).

    Args:
        idp: the issuing provider.
        grant: the redeemed code or refresh token.
        client: the authenticated client.
        nonce: whether the ID token carries the grant's nonce (not on refresh, §12.2).
        bound: the request's DPoP key and client certificate: the access token is bound
            to them (RFC 9449 §6.1, RFC 8705 §3), and so is a public client's refresh
            token (RFC 9449 §5, RFC 8705 §4).
    """
    extra: dict[str, Any] = {"auth_time": grant.auth_time, "sid": grant.sid}
    cnf = bound.cnf()
    if cnf is not None:
        extra["cnf"] = cnf
    access = idp.sign(
        idp.access_token_claims(
            grant.sub,
            client_id=client.client_id,
            audience=grant.resource or client.token_audience,
            scope=grant.scope,
            extra=extra,
        ),
        "at+jwt",
    )
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": bound.token_type,
        "expires_in": idp.access_token_ttl,
        "scope": grant.scope,
    }
    if "openid" in grant.scope.split():
        body["id_token"] = id_token(idp, grant, client, access, nonce=nonce)
    if "refresh_token" in client.grant_types:
        refresh = new_secret()
        idp.refresh_tokens[refresh] = Grant(
            client_id=grant.client_id,
            sub=grant.sub,
            scope=grant.scope,
            sid=grant.sid,
            auth_time=grant.auth_time,
            expires_at=idp.clock.time() + idp.refresh_token_ttl,
            resource=grant.resource,
            # Confidential clients' refresh tokens are bound by their authentication.
            dpop_jkt=bound.jkt if client.is_public else None,
            x5t=bound.x5t if client.is_public else None,
        )
        body["refresh_token"] = refresh
    return body


def id_token(idp: DevIdP, grant: Grant, client: DevClient, access: str, *, nonce: bool) -> str:
    """An ID token (OIDC Core §2) with the claims the granted scopes release (§5.4).

    On refresh (§12.2) ``iss``, ``sub``, ``aud``, ``azp``, ``sid`` and ``auth_time``
    stay those of the original sign-in; only ``iat``/``exp`` are new and ``nonce`` is left out.
    """
    now = int(idp.clock.time())
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "sub": grant.sub,
        "aud": client.client_id,
        "exp": now + idp.access_token_ttl,
        "iat": now,
        "auth_time": grant.auth_time,
        "azp": client.client_id,
        "sid": grant.sid,
    }
    if nonce and grant.nonce is not None:
        claims["nonce"] = grant.nonce
    alg = client.id_token_signed_response_alg or idp.algorithm
    digest = _HASHES.get(alg[-3:])
    if digest is not None:  # OIDC Core §3.1.3.6: left half of the hash of the token
        raw = digest(access.encode("ascii")).digest()
        claims["at_hash"] = b64url(raw[: len(raw) // 2])
    user = idp.users.get(grant.sub)
    if user is not None:
        claims.update(user.claims_for(grant.scope.split()))
    return mint(claims, idp.keys.current_for(alg), headers={"typ": "JWT"})
