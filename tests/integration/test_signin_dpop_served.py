"""A public client signs in and refreshes with DPoP against the DevIdP over real sockets.

The DevIdP runs under uvicorn on a loopback port; the app (SSOMiddleware with a
server-side store) reaches it with a plain ``httpx.AsyncClient``. A public
client's refresh token is bound to the sign-in's key (RFC 9449 §5), so the
refresh works only because the session kept that key.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import msgspec
import pytest

from asgi_sso import Backends, LoginConfig, Secret, SSOMiddleware
from asgi_sso.login.dpop import DPoPKey
from asgi_sso.sessions import MemorySessionStore, SessionRecord
from asgi_sso.testing import DevClient, DevIdP, DevUser, DPoPClient, FakeClock

APP = "http://app.test"
CALLBACK = APP + "/auth/callback"


async def inner(scope: Any, receive: Any, send: Any) -> None:
    user = scope["user"]
    body = msgspec.json.encode({"sub": user.identity, "session_id": user.session_id,
                                "email": user.claims.get("email")})  # fmt: skip
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _payload(jwt: str) -> dict[str, Any]:
    part = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


class Served:
    """The app, its session store, the DevIdP and the access tokens the app was issued."""

    def __init__(self, clock: FakeClock, *, nonce: bool) -> None:
        self.idp = DevIdP(
            users=[DevUser(sub="alice", email="alice@corp.example")],
            clients=[DevClient(client_id="spa", redirect_uris=(CALLBACK,))],  # public
            clock=clock,
            auto_approve=True,
            dpop_nonce=nonce,
        )
        self.store = MemorySessionStore(clock=clock)
        self.access_tokens: list[dict[str, Any]] = []
        self.http = httpx.AsyncClient(event_hooks={"response": [self._keep_tokens]})
        login = LoginConfig(issuer=self.idp.issuer, client_id="spa", token_endpoint_auth="none",
                            cookie_secrets=(Secret(b"c" * 32),), secure_cookies=False)  # fmt: skip
        self.app = SSOMiddleware(inner, [self.idp.issuer_config()], login=login,
                                 backends=Backends(sessions=self.store), http_client=self.http,
                                 clock=clock)  # fmt: skip
        self.web = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP)

    async def _keep_tokens(self, response: httpx.Response) -> None:
        if response.request.url.path == "/token" and response.status_code == 200:
            await response.aread()
            self.access_tokens.append(_payload(response.json()["access_token"]))

    async def sign_in(self) -> None:
        start = await self.web.get("/auth/login", headers={"accept": "text/html"})
        assert start.status_code == 302, start.text
        back = await self.http.get(start.headers["location"])
        assert back.status_code == 302, back.text
        landed = await self.web.get(str(back.headers["location"]).removeprefix(APP))
        assert landed.status_code == 303, landed.text

    async def record(self) -> SessionRecord:
        me = await self.web.get("/me", headers={"accept": "application/json"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "alice@corp.example"  # userinfo, with the DPoP scheme
        found = await self.store.get(me.json()["session_id"])
        assert found is not None
        return found

    async def aclose(self) -> None:
        await self.web.aclose()
        await self.app.shutdown()
        await self.http.aclose()


def _jkt(record: SessionRecord) -> str:
    assert record.dpop_key is not None
    return DPoPKey.from_jwk(record.dpop_key, FakeClock()).jkt


@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "server-nonce"])
async def test_a_public_client_session_refreshes_with_its_sign_in_key(nonce: bool) -> None:
    clock = FakeClock()
    site = Served(clock, nonce=nonce)
    with site.idp.serve():
        try:
            await site.sign_in()
            before = await site.record()
            jkt = _jkt(before)
            assert [t["cnf"]["jkt"] for t in site.access_tokens] == [jkt]
            assert before.refresh_token is not None
            assert site.idp.refresh_tokens[before.refresh_token].dpop_jkt == jkt  # bound
            clock.advance(241)
            after = await site.record()
            assert after.refresh_token != before.refresh_token  # refreshed, proving the key
            assert [t["cnf"]["jkt"] for t in site.access_tokens] == [jkt, jkt]
            assert after.refresh_at > before.refresh_at
            await _thief_is_refused(site, after)
        finally:
            await site.aclose()


async def _thief_is_refused(site: Served, record: SessionRecord) -> None:
    """The session's refresh token without its key gets nothing (and is spent)."""
    thief = DPoPClient()
    url = site.idp.url("/token")
    form = {"grant_type": "refresh_token", "refresh_token": record.refresh_token or "",
            "client_id": "spa"}  # fmt: skip
    nonce = {"nonce": site.idp.dpop_nonce} if site.idp.dpop_nonce else None
    proof = thief.proof("POST", url, claims=nonce)
    answer = await site.http.post(url, data=form, headers={"DPoP": proof})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_dpop_proof"
