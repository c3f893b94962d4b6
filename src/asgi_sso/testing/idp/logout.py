"""The dev IdP's sign-out: RP-Initiated Logout 1.0 and the Back-Channel Logout 1.0 fan-out."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from asgi_sso.testing.idp.model import verify_own
from asgi_sso.testing.idp.pages import error_page, message_page
from asgi_sso.testing.idp.requests import read_params, with_query

if TYPE_CHECKING:
    from asgi_sso.testing.idp.provider import DevIdP

__all__ = ["end_session", "notify_relying_parties"]

_DELIVERY_TIMEOUT = 5.0  # seconds per relying party; a hung RP must not hang the sign-out


async def notify_relying_parties(idp: DevIdP, sid: str, sub: str | None) -> None:
    """POST a logout token to each client the session signed in to (Back-Channel Logout §2.7).

    Only clients with a ``backchannel_logout_uri`` are told, and only when the IdP has
    a ``backchannel_client``. Each outcome is appended to ``idp.backchannel_deliveries``
    as ``(client_id, status)``; ``status`` is ``None`` when the RP could not be reached,
    which does not stop the sign-out.
    """
    client_ids = sorted(idp.session_clients.pop(sid, ()))
    http = idp.backchannel_client
    if http is None:
        return
    for client_id in client_ids:
        client = idp.clients.get(client_id)
        if client is None or client.backchannel_logout_uri is None:
            continue
        status: int | None
        try:
            async with asyncio.timeout(_DELIVERY_TIMEOUT):
                response = await idp.send_backchannel_logout(
                    client_id, sub=sub, sid=sid, http_client=http
                )
            status = response.status_code
        except Exception:  # an RP that is down or broken: the user is still signed out
            status = None
        idp.backchannel_deliveries.append((client_id, status))


async def end_session(idp: DevIdP, request: Request) -> Response:
    """RP-Initiated Logout 1.0 §2: end the session, then return to a registered URI."""
    params = await read_params(request)
    hint: dict[str, Any] = {}
    if "id_token_hint" in params:
        verified = verify_own(params["id_token_hint"], idp.keys)  # expired hints are fine (§2)
        if verified is None or verified[1].get("iss") != idp.issuer:
            return error_page("invalid_request", "id_token_hint was not issued by this IdP")
        hint = verified[1]
    aud = hint.get("aud")
    hinted_client = aud if isinstance(aud, str) else None
    client_id = params.get("client_id") or hinted_client
    if hinted_client is not None and client_id != hinted_client:
        return error_page("invalid_request", "client_id does not match id_token_hint")
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        client = idp.clients.get(client_id or "")
        if client is None or target not in client.post_logout_redirect_uris:
            return error_page("invalid_request", "post_logout_redirect_uri is not registered")
    sid = hint.get("sid")
    if isinstance(sid, str) and sid in idp.sessions:
        await notify_relying_parties(idp, sid, idp.sessions.pop(sid))
    if target is None:
        return message_page("Signed out", "You are signed out of the dev IdP.")
    state = {"state": params["state"]} if "state" in params else {}
    return RedirectResponse(with_query(target, state), status_code=302)
