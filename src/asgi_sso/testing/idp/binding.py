"""What a token request binds its access token to: a DPoP key (RFC 9449), a client
certificate (RFC 8705), both or neither."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from asgi_sso.testing.idp.dpop import proof_key
from asgi_sso.testing.idp.model import DevClient
from asgi_sso.testing.idp.mtls import presented_certificate

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["Binding", "token_binding"]


class Binding(msgspec.Struct, frozen=True, kw_only=True):
    """The thumbprints a token request proved, each ``None`` when absent.

    Attributes:
        jkt: its DPoP key's (RFC 7638), from a proof (RFC 9449 §5).
        x5t: its client certificate's ``x5t#S256`` (RFC 8705 §3.1).
    """

    jkt: str | None = None
    x5t: str | None = None

    def cnf(self) -> dict[str, str] | None:
        """The access token's ``cnf`` claim, ``None`` for an unbound token."""
        cnf = {} if self.jkt is None else {"jkt": self.jkt}
        if self.x5t is not None:
            cnf["x5t#S256"] = self.x5t
        return cnf or None

    @property
    def token_type(self) -> str:
        """``DPoP`` for a DPoP-bound token; a certificate-bound one stays ``Bearer`` (§3)."""
        return "Bearer" if self.jkt is None else "DPoP"


async def token_binding(
    idp: DevIdP, request: Request, endpoint: str, client: DevClient | None
) -> Binding | Response:
    """What a token request to ``endpoint`` (``"/token"``) binds to, or its refusal.

    Args:
        idp: the provider.
        request: the token request.
        endpoint: the endpoint's path (a DPoP proof's ``htu``).
        client: the client the token is for; ``None`` requires neither binding.
    """
    dpop = client is not None and client.dpop_bound
    jkt = await proof_key(idp, request, endpoint, required=dpop)
    if isinstance(jkt, Response):
        return jkt
    certificate = client is not None and client.certificate_bound
    x5t = presented_certificate(idp, request, required=certificate)
    if isinstance(x5t, Response):
        return x5t
    return Binding(jkt=jkt, x5t=x5t)
