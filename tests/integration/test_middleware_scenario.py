"""The scenario asgi_sso is built for, end to end through SSOMiddleware and the DevIdP.

A browser signs in (code + PKCE), lands with a session; an API client calls with a
bearer token; tiers come from groups with a per-connection default; users are
provisioned by (connection, sub); SCIM deactivation and back-channel logout cut
access on the very next request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import (
    Backends,
    ConnectionTiers,
    IdentityConfig,
    LoginConfig,
    MemorySessionStore,
    MemoryUserStore,
    PriorityTierMapper,
    ScimConfig,
    Secret,
    SSOMiddleware,
)
from asgi_sso.testing import DevClient, DevIdP, DevUser

APP = "http://app.test"
AUD = "api://screenshots"
SCIM_SECRET = "scim-secret-for-acme-0123456789"
ACME = "http://idp.test#acme"
"""The broker's ``connection_id`` claim names a connection within the broker issuer."""


async def me(request: Request) -> JSONResponse:
    user = request.user
    cookie = request.headers.get("cookie", "")
    return JSONResponse(
        {
            "sub": user.identity,
            "tenant": user.tenant,
            "tier": user.tier,
            "scopes": sorted(user.scopes),
            "user_id": user.user_id,
            "source": user.source,
            "cookie_seen_by_app": cookie,
        }
    )


inner = Starlette(routes=[Route("/{path:path}", me)])


def build(idp: DevIdP, store: MemoryUserStore, **kw: Any) -> SSOMiddleware:
    mapper = PriorityTierMapper(
        tiers=["enterprise", "pro", "free"],
        scopes={
            "enterprise": ["shots:read", "shots:write", "shots:bulk"],
            "pro": ["shots:read", "shots:write"],
            "free": ["shots:read"],
        },
        connections={ACME: ConnectionTiers(default_tier="free", groups={"screenshot-pro": "pro"})},
        default_connection=ConnectionTiers(default_tier=None),
    )
    return SSOMiddleware(
        inner,
        [idp.issuer_config(audience=(AUD, "web"), connection_claim="connection_id")],
        http_client=idp.http_client(),
        login=LoginConfig(
            issuer=idp.issuer,
            client_id="web",
            client_secret=Secret("web-secret-web-secret"),
            cookie_secrets=(Secret(b"k" * 32),),
            secure_cookies=False,
        ),
        backends=Backends(sessions=MemorySessionStore()),
        identity=IdentityConfig(tier_mapper=mapper, user_store=store),
        scim=ScimConfig(tokens={ACME: Secret(SCIM_SECRET)}),
        **kw,
    )


class Browser:
    """Follows redirects between the app and the in-process IdP, keeping cookies per host."""

    def __init__(self, app: Any, idp: DevIdP) -> None:
        self.asgi = app
        self.app = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP)
        self.idp = idp.http_client(base_url=idp.issuer)

    async def get(self, url: str, **headers: str) -> httpx.Response:
        client = self.idp if url.startswith(self.idp.base_url.__str__().rstrip("/")) else self.app
        return await client.get(url, headers=headers)

    async def navigate(self, url: str, max_hops: int = 8) -> httpx.Response:
        response = await self.get(url, accept="text/html")
        for _ in range(max_hops):
            if response.status_code not in (302, 303):
                return response
            location = response.headers["location"]
            if location.startswith("/"):
                location = APP + location
            response = await self.get(location, accept="text/html")
        raise AssertionError("too many redirects")


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP(
        "http://idp.test",
        users=[
            DevUser(
                sub="ann", email="ann@acme.test", groups=("screenshot-pro",), connection_id="acme"
            ),
            DevUser(sub="bob", email="bob@acme.test", groups=("sales",), connection_id="acme"),
            DevUser(sub="ann-other", email="ann@other.test", connection_id="other"),
        ],
        clients=[
            DevClient(
                client_id="web",
                client_secret="web-secret-web-secret",
                redirect_uris=(APP + "/auth/callback",),
                post_logout_redirect_uris=(APP + "/",),
                audience=AUD,
            )
        ],
        auto_approve=True,
    )


async def test_browser_sign_in_lands_with_a_session_and_the_tier(idp: DevIdP) -> None:
    store = MemoryUserStore()
    browser = Browser(build(idp, store), idp)
    first = await browser.get("/dashboard", accept="text/html")
    assert first.status_code in (302, 303)
    assert first.headers["location"].startswith("/auth/login?return_to=")

    landed = await browser.navigate(APP + "/dashboard")  # auto-approve signs in as ann
    assert landed.status_code == 200, landed.text
    body = landed.json()
    assert body["sub"] == "ann"
    assert body["tenant"] == ACME
    assert body["tier"] == "pro"
    assert body["scopes"] == ["shots:read", "shots:write"]
    assert body["source"] == "session"
    assert body["user_id"]
    assert "sso_session" not in body["cookie_seen_by_app"]  # stripped before the app

    # API callers (no text/html) get the RFC 6750 challenge, not a redirect.
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=browser.asgi), base_url=APP)
    r = await api.get("/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="api"'


async def test_tiers_default_per_connection_and_same_sub_in_two_connections(idp: DevIdP) -> None:
    store = MemoryUserStore()
    app = build(idp, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as c:

        async def call(sub: str, **claims: Any) -> dict[str, Any]:
            token = idp.issue_token(sub, audience=AUD, claims=claims)
            r = await c.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            return r.json()  # type: ignore[no-any-return]

        bob = await call("bob")
        assert (bob["tier"], bob["scopes"]) == ("free", ["shots:read"])
        ann = await call("ann")
        assert ann["tier"] == "pro"
        same_sub_acme = await call("shared-sub", connection_id="acme")
        same_sub_other = await call("shared-sub", connection_id="other")
        assert same_sub_acme["user_id"] != same_sub_other["user_id"]
        assert same_sub_other["tier"] is None


async def test_scim_deactivation_refuses_the_very_next_request(idp: DevIdP) -> None:
    store = MemoryUserStore()
    app = build(idp, store)
    token = idp.issue_token("ann", audience=AUD)
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as c:
        ok = await c.get("/me", headers=auth)
        assert ok.status_code == 200
        user_id = ok.json()["user_id"]
        scim = {"Authorization": f"Bearer {SCIM_SECRET}", "Content-Type": "application/scim+json"}
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        }
        r = await c.patch(f"/scim/v2/Users/{user_id}", json=patch, headers=scim)
        assert r.status_code == 200, r.text
        refused = await c.get("/me", headers=auth)
        assert refused.status_code == 401
        assert "deactivated" in refused.headers["www-authenticate"]

        # hostile SCIM input changes nothing and never gives a 500
        for body in (b"{", b"[]", b'{"Operations": "x"}', b"9" * 70_000):
            bad = await c.patch(f"/scim/v2/Users/{user_id}", content=body, headers=scim)
            assert 400 <= bad.status_code < 500, (body[:10], bad.status_code)
        wrong_secret = await c.get("/scim/v2/Users", headers={"Authorization": "Bearer nope"})
        assert wrong_secret.status_code == 401

        # reactivation restores access
        patch["Operations"] = [{"op": "replace", "path": "active", "value": True}]
        assert (
            await c.patch(f"/scim/v2/Users/{user_id}", json=patch, headers=scim)
        ).status_code == 200
        assert (await c.get("/me", headers=auth)).status_code == 200


async def test_back_channel_logout_ends_the_browser_session(idp: DevIdP) -> None:
    store = MemoryUserStore()
    app = build(idp, store)
    browser = Browser(app, idp)
    landed = await browser.navigate(APP + "/dashboard")
    assert landed.status_code == 200
    sid = next(iter(idp.sessions))
    token = idp.logout_token("web", sub="ann", sid=sid)
    r = await browser.app.post("/auth/backchannel-logout", data={"logout_token": token})
    assert r.status_code == 200, r.text
    replay = await browser.app.post("/auth/backchannel-logout", data={"logout_token": token})
    assert replay.status_code == 400
    after = await browser.app.get("/dashboard", headers={"accept": "application/json"})
    assert after.status_code == 401


async def test_logout_is_post_only_and_clears_the_session(idp: DevIdP) -> None:
    store = MemoryUserStore()
    browser = Browser(build(idp, store), idp)
    assert (await browser.navigate(APP + "/dashboard")).status_code == 200
    assert (await browser.app.get("/auth/logout")).status_code == 405
    out = await browser.app.post("/auth/logout", headers={"origin": APP})
    assert out.status_code in (302, 303)
    location = urlsplit(out.headers["location"])
    if location.netloc == "idp.test":
        assert "id_token_hint" in parse_qs(location.query)
    after = await browser.app.get("/me", headers={"accept": "application/json"})
    assert after.status_code == 401


async def test_the_id_token_a_browser_saw_never_opens_the_api(idp: DevIdP) -> None:
    # The logout redirect hands the ID token to the browser (id_token_hint); the
    # issuer's audience includes the sign-in client id "web". Still no bearer token.
    store = MemoryUserStore()
    browser = Browser(build(idp, store), idp)
    assert (await browser.navigate(APP + "/dashboard")).status_code == 200
    out = await browser.app.post("/auth/logout", headers={"origin": APP})
    location = urlsplit(out.headers["location"])
    assert location.netloc == "idp.test"
    id_token = parse_qs(location.query)["id_token_hint"][0]
    access = idp.issue_token("ann", audience="web", client_id="web")  # typ at+jwt
    transport = httpx.ASGITransport(app=browser.asgi)
    async with httpx.AsyncClient(transport=transport, base_url=APP) as api:
        for _ in range(2):  # refused again from the failure memory, never cached
            r = await api.get("/me", headers={"Authorization": f"Bearer {id_token}"})
            assert r.status_code == 401
            assert r.json()["error_description"] == (
                "an ID token is not accepted as a bearer token; send an access token"
            )
        ok = await api.get("/me", headers={"Authorization": f"Bearer {access}"})
        assert ok.status_code == 200


async def test_sign_in_and_logout_are_audited_with_the_client_ip(
    idp: DevIdP, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from asgi_sso import AuditLogger

    store = MemoryUserStore()
    browser = Browser(build(idp, store, event_sinks=[AuditLogger()]), idp)
    with caplog.at_level(logging.INFO, logger="asgi_sso.audit"):
        assert (await browser.navigate(APP + "/dashboard")).status_code == 200
        await browser.app.post("/auth/logout", headers={"origin": APP})
    records = {r.event: r for r in caplog.records if hasattr(r, "event")}  # type: ignore[attr-defined]
    assert records["signin"].subject == "ann"  # type: ignore[attr-defined]
    assert records["signin"].client_ip == "127.0.0.1"  # type: ignore[attr-defined]
    assert records["logout"].client_ip == "127.0.0.1"  # type: ignore[attr-defined]
    for record in caplog.records:
        assert "eyJ" not in record.getMessage()
