"""Certificate binding at the dev IdP (RFC 8705 §3, §4): the certificate a new token binds to.

The client certificate reaches the IdP as it reaches the middleware, through
:class:`~asgi_sso.verify.mtls.ClientCertificates`: the ASGI TLS extension, or the
header of ``DevIdP(client_cert_header=...)`` from a trusted proxy only. It is read
only for a ``DevClient(certificate_bound=True)``, whose token requests must present
one; its thumbprint becomes the access token's ``cnf["x5t#S256"]``.

Without a certificate, or with one that cannot be read, the answer is ``400
invalid_request``: the client did authenticate (by secret, key or PKCE), so it is not
``invalid_client`` (RFC 6749 §5.2), and RFC 8705 names no error of its own for it.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from asgi_sso.errors import AuthError
from asgi_sso.testing.idp.requests import bearer_error, oauth_error
from asgi_sso.verify.mtls import check_certificate_binding

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["grant_certificate_problem", "presented_certificate", "resource_certificate_problem"]


def presented_certificate(
    idp: DevIdP, request: Request, *, required: bool
) -> str | Response | None:
    """The ``x5t#S256`` of the token request's client certificate, or the refusal.

    Args:
        idp: the provider (where it finds certificates).
        request: the token request.
        required: the client is certificate-bound; ``False``: nothing is read.

    Returns:
        The thumbprint; ``None`` when not ``required``; ``400 invalid_request`` for no
        certificate, an unreadable one, or a header from a peer that is not trusted.
    """
    if not required:
        return None
    try:
        found = idp.certificates.thumbprint(request.scope)
    except AuthError as exc:
        return oauth_error("invalid_request", exc.description)
    if found is None:
        return oauth_error(
            "invalid_request",
            "this client's tokens are bound to its client certificate (RFC 8705): present it",
        )
    return found


def grant_certificate_problem(expected: str | None, x5t: str | None, what: str) -> Response | None:
    """Refuse redeeming a grant bound to a certificate (``expected``) with another or none.

    Args:
        expected: the grant's ``x5t``; ``None`` lets any certificate, or none, redeem it.
        x5t: the thumbprint of the request's certificate, ``None`` without one.
        what: the grant, for the description (``"the refresh token"``).
    """
    if expected is None:
        return None
    if x5t is None or not hmac.compare_digest(x5t.encode(), expected.encode()):
        return oauth_error("invalid_grant", f"{what} is bound to another client certificate")
    return None


def resource_certificate_problem(
    idp: DevIdP, request: Request, claims: dict[str, Any]
) -> Response | None:
    """Refuse an access token presented at the IdP's own resource without its certificate.

    RFC 8705 §3: a protected resource (here ``/userinfo``) MUST check the binding.

    Returns:
        ``None`` when the token is unbound or the request presents its certificate,
        else the ``401 invalid_token`` (``400 invalid_request`` for a repeated header).
    """
    try:
        payload = msgspec.json.encode(claims)
        check_certificate_binding(idp.certificates, request.scope, payload, "allow")
    except AuthError as exc:
        return bearer_error(exc.error or "invalid_token", exc.description, exc.status)
    return None
