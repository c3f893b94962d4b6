"""Cookie-authenticated unsafe requests and WebSockets carry the app's origin; bearer ones need not.

Through SSOMiddleware: a browser signs in at the DevIdP and then sends its
session cookie from the app's pages or from another site's; a JWT in a
configured cookie is held to the same rule.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from asgi_sso import (
    Backends,
    CredentialSources,
    LoginConfig,
    MemorySessionStore,
    Secret,
    SSOMiddleware,
)
from asgi_sso.testing import DevClient, DevIdP, DevUser

APP = "http://app.test"
EVIL = "https://evil.example"
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]
REASON = "a cookie-authenticated unsafe request or WebSocket must come from this app's origin"


async def inner(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        return
    user = scope["user"]
    body = msgspec.json.encode({"sub": user.identity, "source": user.source})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def idp() -> DevIdP:
    client = DevClient(client_id="web", client_secret="web-secret-web-secret",
                       redirect_uris=(APP + "/auth/callback",),
                       post_logout_redirect_uris=(APP + "/",))  # fmt: skip
    return DevIdP("http://idp.test", users=[DevUser(sub="alice")], clients=[client],
                  auto_approve=True)  # fmt: skip


def build(idp: DevIdP, *, store: bool = False, **sources: Any) -> SSOMiddleware:
    login = LoginConfig(
        issuer=idp.issuer,
        client_id="web",
        client_secret=Secret("web-secret-web-secret"),
        cookie_secrets=(Secret(b"k" * 32),),
        secure_cookies=False,
    )
    return SSOMiddleware(
        inner,
        [idp.issuer_config(audience=("web", "api://test"))],
        http_client=idp.http_client(),
        login=login,
        sources=CredentialSources(**sources),
        backends=Backends(sessions=MemorySessionStore() if store else None),
    )


async def sign_in(sso: SSOMiddleware, idp: DevIdP) -> str:
    """Sign in; return the ``Cookie`` header the browser then sends."""
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=sso), base_url=APP) as web,
        idp.http_client(base_url=idp.issuer) as at_idp,
    ):
        start = await web.get("/auth/login")
        back = await at_idp.get(start.headers["location"])
        landed = await web.get(back.headers["location"].removeprefix(APP))
        assert landed.status_code == 303, landed.text
        return "; ".join(f"{k}={v}" for k, v in web.cookies.items() if k.startswith("sso_session"))


async def send_as(sso: SSOMiddleware, method: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sso), base_url=APP) as web:
        return await web.request(method, "/things", headers=headers)


async def handshake(sso: SSOMiddleware, **headers: str) -> list[dict[str, Any]]:
    """A WebSocket handshake; what the server sent back (an accept, a close or a denial)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(b"host", b"app.test")] + [(k.encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "websocket", "scheme": "ws", "path": "/live", "root_path": "",
             "headers": raw, "query_string": b"", "subprotocols": []}  # fmt: skip
    await sso(scope, receive, send)
    return sent


@pytest.mark.parametrize("store", [False, True], ids=["cookie", "memory"])
@pytest.mark.parametrize("method", UNSAFE)
async def test_unsafe_session_requests_from_another_origin_are_refused(
    idp: DevIdP, method: str, store: bool
) -> None:
    sso = build(idp, store=store)
    cookie = await sign_in(sso, idp)
    for proof in ({"origin": EVIL}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}, {}):
        refused = await send_as(sso, method, cookie=cookie, **proof)
        assert refused.status_code == 403, (proof, refused.text)
        assert refused.json() == {"error": "invalid_request", "error_description": REASON,
                                  "status": 403}  # fmt: skip
        assert "set-cookie" not in refused.headers  # the session itself is fine
    for proof in ({"origin": APP}, {"sec-fetch-site": "same-origin"}, {"referer": APP + "/x"}):
        passed = await send_as(sso, method, cookie=cookie, **proof)
        assert passed.status_code == 200, (proof, passed.text)
        assert passed.json() == {"sub": "alice", "source": "session"}
    read = await send_as(sso, "GET", cookie=cookie, origin=EVIL)
    assert read.status_code == 200  # safe methods are not checked


async def test_allowed_origins_and_the_switch(idp: DevIdP) -> None:
    sso = build(idp, allowed_origins=["https://admin.example"])
    cookie = await sign_in(sso, idp)
    allowed = {"origin": "https://admin.example", "sec-fetch-site": "same-site"}
    assert (await send_as(sso, "POST", cookie=cookie, **allowed)).status_code == 200
    assert (await send_as(sso, "POST", cookie=cookie, origin=EVIL)).status_code == 403
    unchecked = build(idp, check_origin=False)
    assert (await send_as(unchecked, "POST", cookie=cookie, origin=EVIL)).status_code == 200


async def test_a_session_websocket_from_another_origin_is_refused_before_accept(
    idp: DevIdP,
) -> None:
    sso = build(idp)
    cookie = await sign_in(sso, idp)
    sent = await handshake(sso, cookie=cookie, origin=EVIL)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": REASON[:120]}]
    assert await handshake(sso, cookie=cookie) == sent  # no Origin at all
    assert await handshake(sso, cookie=cookie, origin=APP) == [{"type": "websocket.accept"}]


async def test_bearer_requests_are_never_checked(idp: DevIdP) -> None:
    sso = build(idp)
    cookie = await sign_in(sso, idp)
    token = idp.issue_token("alice", audience="api://test")
    bearer = {"authorization": f"Bearer {token}", "cookie": cookie}
    for method in UNSAFE:
        for proof in ({"origin": EVIL}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}, {}):
            passed = await send_as(sso, method, **bearer, **proof)
            assert passed.status_code == 200, (method, proof)
            assert passed.json()["source"] == "header"
    accepted = await handshake(sso, authorization=f"Bearer {token}", origin=EVIL)
    assert accepted == [{"type": "websocket.accept"}]


async def test_a_jwt_in_a_configured_cookie_is_held_to_the_same_rule(idp: DevIdP) -> None:
    sso = build(idp, cookie_names=["access_token"])
    cookie = "access_token=" + idp.issue_token("alice", audience="api://test")
    refused = await send_as(sso, "DELETE", cookie=cookie, origin=EVIL)
    assert refused.status_code == 403
    assert refused.json()["error_description"] == REASON
    passed = await send_as(sso, "DELETE", cookie=cookie, origin=APP)
    assert passed.json() == {"sub": "alice", "source": "cookie"}
    assert (await send_as(sso, "GET", cookie=cookie, origin=EVIL)).status_code == 200
    ws = await handshake(sso, cookie=cookie, origin=EVIL)
    assert ws[0]["type"] == "websocket.close"
    assert await handshake(sso, cookie=cookie, origin=APP) == [{"type": "websocket.accept"}]


async def test_logout_shares_the_rule(idp: DevIdP) -> None:
    sso = build(idp, allowed_origins=["https://admin.example"])
    cookie = await sign_in(sso, idp)
    hostile = await send_as(sso, "POST", cookie=cookie, referer="http://[::1")
    assert hostile.status_code == 403  # an unparsable Referer is a refusal, never a 500
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sso), base_url=APP) as web:
        out = await web.post("/auth/logout", headers={"cookie": cookie, "referer": "http://[::1"})
        assert out.status_code == 403
        allowed = {"origin": "https://admin.example", "sec-fetch-site": "same-site"}
        out = await web.post("/auth/logout", headers={"cookie": cookie, **allowed})
        assert out.status_code == 303
