"""Entra ID users meet their SCIM records: ``Issuer.user_claim="oid"`` end to end.

Entra's ``sub`` is pairwise per application, so the API's access tokens and the
web app's ID tokens carry different ``sub`` values for one person; ``oid`` is the
same everywhere and is what Entra's SCIM client sends as ``externalId``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import (
    LoginConfig,
    MemorySessionStore,
    MemoryUserStore,
    ScimConfig,
    Secret,
    SSOMiddleware,
)
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock

APP = "http://app.test"
AUD = "api://contoso-reports"
OID = "6f1c2b9e-0000-4000-8000-00000000a11c"
WEB_SUB = "pairwise-web-Zx81"  # the ID token's sub for this app
API_SUB = "pairwise-api-Qw07"  # the access token's sub for the API
SCIM_SECRET = "scim-secret-for-contoso-0123456789"
SCIM = {"Authorization": f"Bearer {SCIM_SECRET}", "Content-Type": "application/scim+json"}


async def me(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse({"identity": user.identity, "user_id": user.user_id})


class Site:
    def __init__(self, store: MemorySessionStore | None) -> None:
        self.clock = FakeClock()
        self.idp = DevIdP(
            "http://login.test",
            users=[DevUser(sub=WEB_SUB, email="ann@contoso.test", extra_claims={"oid": OID})],
            clients=[
                DevClient(
                    client_id="web",
                    client_secret="web-secret-web-secret",
                    redirect_uris=(APP + "/auth/callback",),
                    audience=AUD,
                )
            ],
            auto_approve=True,
            clock=self.clock,
        )
        self.users = MemoryUserStore()
        self.idp_http = self.idp.http_client()
        self.app = SSOMiddleware(
            Starlette(routes=[Route("/me", me)]),
            [
                self.idp.issuer_config(
                    audience=(AUD, "web"), client_id="web", connection="contoso", user_claim="oid"
                )
            ],
            http_client=self.idp_http,
            clock=self.clock,
            login=LoginConfig(
                issuer=self.idp.issuer,
                client_id="web",
                client_secret=Secret("web-secret-web-secret"),
                cookie_secrets=(Secret(b"k" * 32),),
                secure_cookies=False,
            ),
            session_store=store,
            user_store=self.users,
            scim=ScimConfig(tokens={"contoso": Secret(SCIM_SECRET)}),
        )
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP)
        self.browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=APP)

    def api_token(self, **claims: Any) -> dict[str, str]:
        token = self.idp.issue_token(API_SUB, audience=AUD, claims={"oid": OID, **claims})
        return {"Authorization": f"Bearer {token}"}

    async def sign_in(self) -> None:
        start = await self.browser.get("/auth/login")
        approved = await self.idp_http.get(start.headers["location"])  # auto-approve
        landed = await self.browser.get(approved.headers["location"])
        assert landed.status_code == 303, landed.text

    async def session_me(self) -> httpx.Response:
        return await self.browser.get("/me", headers={"accept": "application/json"})

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.browser.aclose()
        await self.app.shutdown()
        await self.idp_http.aclose()


@pytest.fixture(params=["cookie", "memory"])
async def site(request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    built = Site(MemorySessionStore(clock=FakeClock()) if request.param == "memory" else None)
    yield built
    await built.aclose()


async def test_tokens_and_sessions_of_one_person_meet_one_user_by_oid(site: Site) -> None:
    api = await site.client.get("/me", headers=site.api_token())
    assert api.status_code == 200, api.text
    assert api.json()["identity"] == OID
    stored = await site.users.get_by_subject("contoso", OID)
    assert stored is not None
    assert api.json()["user_id"] == stored.id
    assert await site.users.get_by_subject("contoso", API_SUB) is None

    await site.sign_in()
    session = await site.session_me()
    assert session.status_code == 200, session.text
    assert session.json() == {"identity": OID, "user_id": stored.id}


async def test_scim_deactivation_by_external_id_oid_cuts_off_token_and_session(
    site: Site,
) -> None:
    auth = site.api_token()
    for _ in range(2):  # the second sighting is served from the verified-token cache
        assert (await site.client.get("/me", headers=auth)).status_code == 200
    await site.sign_in()
    assert (await site.session_me()).status_code == 200

    found = await site.client.get(
        "/scim/v2/Users", params={"filter": f'externalId eq "{OID}"'}, headers=SCIM
    )
    assert found.status_code == 200, found.text
    [resource] = found.json()["Resources"]
    assert resource["externalId"] == OID
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    changed = await site.client.patch(f"/scim/v2/Users/{resource['id']}", json=patch, headers=SCIM)
    assert changed.status_code == 200, changed.text

    refused = await site.client.get("/me", headers=auth)
    assert refused.status_code == 401
    assert (await site.session_me()).status_code == 401


async def test_a_token_without_the_user_claim_is_refused_with_the_reason(site: Site) -> None:
    response = await site.client.get("/me", headers=site.api_token(oid=None))
    assert response.status_code == 401
    assert "'oid'" in response.headers["www-authenticate"]
    assert await site.users.get_by_subject("contoso", API_SUB) is None


async def test_a_sub_only_back_channel_logout_names_the_pairwise_id_token_sub(
    site: Site,
) -> None:
    await site.sign_in()
    site.clock.advance(1)
    for named, still_in in ((OID, True), (WEB_SUB, False)):
        token = site.idp.logout_token("web", sub=named)
        logout = await site.client.post("/auth/backchannel-logout", data={"logout_token": token})
        assert logout.status_code == 200
        assert ((await site.session_me()).status_code == 200) is still_in
