"""Back-channel logout through SSOMiddleware in every session mode: it ends exactly what it names.

The sign-in provider names the connection by a claim (``connection_id``, as the
FastAPI example's broker does); a logout token carries no such claim, so sessions
are found by the provider's ``iss`` with the ID token's ``sub`` and/or ``sid``.
Each mode runs the same cases: cookie-only, the memory store and real Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import Backends, LoginConfig, MemorySessionStore, Secret, SSOMiddleware
from asgi_sso.sessions import SessionStore
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock

APP = "http://app.test"
AUD = "api://reports"
LOGOUT = "/auth/backchannel-logout"


async def me(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse({"sub": user.identity, "tenant": user.tenant})


def _idp(issuer: str, clock: FakeClock) -> DevIdP:
    return DevIdP(
        issuer,
        users=[
            DevUser(sub="ann", email="ann@acme.test", connection_id="acme"),
            DevUser(sub="bob", email="bob@acme.test", connection_id="acme"),
        ],
        clients=[
            DevClient(
                client_id="web",
                client_secret="web-secret-web-secret",
                redirect_uris=(APP + "/auth/callback",),
                audience=AUD,
            )
        ],
        clock=clock,
    )


class Site:
    """The app behind SSOMiddleware, its sign-in provider and another trusted issuer."""

    def __init__(self, store: SessionStore | None, clock: FakeClock) -> None:
        self.clock = clock
        self.idp = _idp("http://idp.test", clock)
        self.other = _idp("http://other.test", clock)
        self.http = self.idp.http_client(
            mounts={self.other.origin: httpx.ASGITransport(app=self.other)}
        )
        self.app = SSOMiddleware(
            Starlette(routes=[Route("/me", me)]),
            [
                self.idp.issuer_config(audience=(AUD, "web"), connection_claim="connection_id"),
                self.other.issuer_config(audience=(AUD, "web"), client_id="web"),
            ],
            http_client=self.http,
            clock=clock,
            login=LoginConfig(
                issuer=self.idp.issuer,
                client_id="web",
                client_secret=Secret("web-secret-web-secret"),
                cookie_secrets=(Secret(b"k" * 32),),
                secure_cookies=False,
            ),
            backends=Backends(sessions=store),
        )
        self.browsers: list[httpx.AsyncClient] = []

    def browser(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP)
        self.browsers.append(client)
        return client

    async def sign_in(self, sub: str) -> tuple[httpx.AsyncClient, str]:
        """A new browser signed in as ``sub``; returns it and its IdP ``sid``."""
        browser = self.browser()
        start = await browser.get("/auth/login")
        authorize = urlsplit(start.headers["location"])
        params = dict(parse_qsl(authorize.query))
        before = set(self.idp.sessions)
        approved = await self.http.post(self.idp.url("/authorize"), data={**params, "login": sub})
        back = urlsplit(approved.headers["location"])
        landed = await browser.get(back.path + "?" + back.query)
        assert landed.status_code == 303, landed.text
        [sid] = set(self.idp.sessions) - before
        assert await self.signed_in(browser) == sub
        return browser, sid

    @staticmethod
    async def signed_in(browser: httpx.AsyncClient) -> str | None:
        response = await browser.get("/me", headers={"accept": "application/json"})
        if response.status_code == 401:
            return None
        assert response.status_code == 200, response.text
        # named by the connection_id claim, within the broker issuer's namespace
        assert response.json()["tenant"] == "http://idp.test#acme"
        return str(response.json()["sub"])

    async def logout(self, token: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=APP
        ) as idp_side:
            return await idp_side.post(LOGOUT, data={"logout_token": token})

    async def aclose(self) -> None:
        for browser in self.browsers:
            await browser.aclose()
        await self.app.shutdown()


@pytest.fixture(params=["cookie", "memory", pytest.param("redis", marks=pytest.mark.redis)])
async def site(request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    clock = FakeClock()
    store: Any = None
    prefix = f"asgi_sso_test:{uuid.uuid4().hex}:"
    if request.param == "memory":
        store = MemorySessionStore(clock=clock)
    elif request.param == "redis":
        from redis.asyncio import Redis

        from asgi_sso.sessions.redis import RedisSessionStore

        redis = Redis.from_url(request.getfixturevalue("redis_url"))
        store = RedisSessionStore(redis, prefix=prefix, clock=clock)
    built = Site(store, clock)
    yield built
    await built.aclose()
    if request.param == "redis":
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_a_sub_only_logout_ends_every_session_of_that_user(site: Site) -> None:
    ann_1, _ = await site.sign_in("ann")
    ann_2, _ = await site.sign_in("ann")
    bob, _ = await site.sign_in("bob")
    site.clock.advance(1)
    response = await site.logout(site.idp.logout_token("web", sub="ann"))
    assert response.status_code == 200, response.text
    assert await site.signed_in(ann_1) is None
    assert await site.signed_in(ann_2) is None
    assert await site.signed_in(bob) == "bob"
    site.clock.advance(1)
    again, _ = await site.sign_in("ann")  # a later sign-in is not covered
    assert await site.signed_in(again) == "ann"


async def test_a_sid_only_logout_ends_that_session_only(site: Site) -> None:
    ann_1, sid = await site.sign_in("ann")
    ann_2, _ = await site.sign_in("ann")
    site.clock.advance(1)
    assert (await site.logout(site.idp.logout_token("web", sid=sid))).status_code == 200
    assert await site.signed_in(ann_1) is None
    assert await site.signed_in(ann_2) == "ann"


async def test_a_logout_with_sub_and_sid_ends_that_session_of_that_sub(site: Site) -> None:
    ann_1, sid = await site.sign_in("ann")
    ann_2, _ = await site.sign_in("ann")
    site.clock.advance(1)
    mismatch = await site.logout(site.idp.logout_token("web", sub="bob", sid=sid))
    assert mismatch.status_code == 200  # valid, and names no session of ours
    assert await site.signed_in(ann_1) == "ann"
    assert (await site.logout(site.idp.logout_token("web", sub="ann", sid=sid))).status_code == 200
    assert await site.signed_in(ann_1) is None
    assert await site.signed_in(ann_2) == "ann"


async def test_a_logout_token_of_another_trusted_issuer_is_refused_and_ends_nothing(
    site: Site,
) -> None:
    ann, sid = await site.sign_in("ann")
    site.clock.advance(1)
    for token in (
        site.other.logout_token("web", sub="ann", sid=sid),
        site.other.logout_token("web", sub="ann"),
        site.other.logout_token("web", sid=sid),
    ):
        response = await site.logout(token)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
    assert await site.signed_in(ann) == "ann"
