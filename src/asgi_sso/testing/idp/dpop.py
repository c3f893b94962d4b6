"""DPoP at the dev IdP's token endpoint (RFC 9449 §5, §8, §10): the key a new token binds to.

A token request may carry one ``DPoP`` header, a proof for ``POST`` to the endpoint's
URL (no ``ath``: there is no token yet), checked by the resource server's own
:class:`~asgi_sso.verify.dpop.DPoPChecker`. Its key's thumbprint becomes the new access
token's ``cnf.jkt``. A refused proof is ``400 invalid_dpop_proof``; when the IdP demands
server nonces, a proof without the current one is ``400 use_dpop_nonce`` with a
``DPoP-Nonce`` header naming it.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asgi_sso.errors import InvalidDPoPProof, ServiceUnavailable
from asgi_sso.responses import quoted_string
from asgi_sso.testing.idp.requests import oauth_error
from asgi_sso.verify.dpop import DPOP_ALGORITHMS

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["JKT", "grant_key_problem", "invalid_proof", "presented_key_problem", "proof_key"]

JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 thumbprint (RFC 7638)


def invalid_proof(description: str) -> Response:
    """The token endpoint's refusal of a DPoP proof (RFC 9449 §5)."""
    return oauth_error("invalid_dpop_proof", description)


async def proof_key(
    idp: DevIdP, request: Request, endpoint: str, *, required: bool
) -> str | Response | None:
    """The thumbprint of the key the request's DPoP proof holds, or the refusal.

    Args:
        idp: the provider (its proof checker and nonce).
        request: the token request.
        endpoint: the endpoint's path, such as ``"/token"`` (the proof's ``htu``).
        required: the client must send a proof (``DevClient.dpop_bound``).

    Returns:
        The thumbprint; ``None`` when the request has no proof (and needs none); the
        ``invalid_dpop_proof``, ``use_dpop_nonce`` or ``temporarily_unavailable`` answer.
    """
    proofs = request.headers.getlist("dpop")
    if not proofs:
        return invalid_proof("this client requires DPoP: send a DPoP proof") if required else None
    if len(proofs) > 1:
        return invalid_proof("the request carries more than one DPoP header")
    try:
        checked = await idp.dpop.check(
            proofs[0], method=request.method, url=idp.url(endpoint), token=None, jkt=None
        )
    except InvalidDPoPProof as exc:
        return invalid_proof(exc.description)
    except ServiceUnavailable as exc:
        return oauth_error("temporarily_unavailable", exc.description, 503, {"Retry-After": "5"})
    nonce = idp.dpop_nonce
    if nonce is not None and _nonce_of(proofs[0]) != nonce:
        description = "this server requires the DPoP-Nonce header's value as the proof's nonce"
        return oauth_error("use_dpop_nonce", description, headers={"DPoP-Nonce": nonce})
    return checked.thumbprint


def _nonce_of(proof: str) -> object:
    # The proof's signature verified already: its payload is a JSON object.
    payload = proof.split(".")[1]
    claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims.get("nonce") if isinstance(claims, dict) else None


def grant_key_problem(expected: str | None, jkt: str | None, what: str) -> Response | None:
    """Refuse redeeming a grant bound to a key (``expected``) without a proof of that key.

    Args:
        expected: the grant's ``dpop_jkt``; ``None`` lets any key, or none, redeem it.
        jkt: the thumbprint of the request's proof key, ``None`` without a proof.
        what: the grant, for the description (``"the refresh token"``).
    """
    if expected is None:
        return None
    if jkt is None:
        return invalid_proof(f"{what} requires DPoP: send a proof signed with its key")
    if jkt != expected:
        return invalid_proof(f"the DPoP proof's key is not the key {what} is bound to")
    return None


async def presented_key_problem(
    idp: DevIdP, request: Request, endpoint: str, *, dpop: bool, token: str, claims: dict[str, Any]
) -> Response | None:
    """Refuse an access token presented against its binding at a resource (§7.1, §9).

    Args:
        idp: the provider (its proof checker and nonce).
        request: the request to the resource (``/userinfo``).
        endpoint: the resource's path, the proof's ``htu``.
        dpop: the token came with the ``DPoP`` scheme (else ``Bearer``).
        token: the access token.
        claims: its verified claims.

    Returns:
        ``None`` when the token may be used so, else the 401 with a ``DPoP`` challenge.
    """
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not dpop:
        if jkt is None:
            return None
        return _challenge("invalid_token", "this token is DPoP-bound: use the DPoP scheme")
    if not isinstance(jkt, str):
        return _challenge("invalid_token", "the token is not DPoP-bound: use the Bearer scheme")
    proofs = request.headers.getlist("dpop")
    if len(proofs) != 1:
        return _challenge("invalid_dpop_proof", "send exactly one DPoP proof")
    try:
        await idp.dpop.check(
            proofs[0], method=request.method, url=idp.url(endpoint), token=token, jkt=jkt
        )
    except InvalidDPoPProof as exc:
        return _challenge("invalid_dpop_proof", exc.description)
    except ServiceUnavailable as exc:
        return oauth_error("temporarily_unavailable", exc.description, 503, {"Retry-After": "5"})
    nonce = idp.dpop_nonce
    if nonce is not None and _nonce_of(proofs[0]) != nonce:
        return _challenge("use_dpop_nonce", "use the DPoP-Nonce header's value", nonce)
    return None


def _challenge(error: str, description: str, nonce: str | None = None) -> Response:
    # RFC 9449 §7.1: the DPoP scheme's challenge names the algorithms it takes.
    algs = " ".join(DPOP_ALGORITHMS)
    headers = {
        "WWW-Authenticate": f'DPoP error="{error}", '
        f'error_description="{quoted_string(description)}", algs="{algs}"',
        "Cache-Control": "no-store",
    }
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=401, headers=headers)
