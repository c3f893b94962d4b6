"""Opaque access tokens end to end: SSOMiddleware, introspection and the dev IdP in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import Introspection, Secret, SSOMiddleware
from asgi_sso.testing import DevClient, DevIdP, FakeClock

APP = "http://app.test"
AUD = "api://orders"
RS_SECRET = "resource-server-secret-0123456789"


async def me(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {"sub": user.identity, "scopes": sorted(user.scopes), "connection": user.connection}
    )


inner = Starlette(routes=[Route("/{path:path}", me)])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    return DevIdP(
        issuer="http://idp.test",
        clock=clock,
        clients=[
            DevClient(client_id="orders-api", client_secret=RS_SECRET),
            DevClient(client_id="spa", audience=AUD),
        ],
    )


def _middleware(idp: DevIdP, clock: FakeClock, **kw: Any) -> SSOMiddleware:
    introspection = Introspection(
        client_id="orders-api", client_secret=Secret(kw.pop("secret", RS_SECRET)), **kw
    )
    issuer = idp.issuer_config(audience=AUD, introspection=introspection)
    return SSOMiddleware(inner, [issuer], http_client=idp.http_client(), clock=clock)


@pytest.fixture
async def app(idp: DevIdP, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_middleware(idp, clock, inactive_ttl=5))
    async with httpx.AsyncClient(transport=transport, base_url=APP) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_opaque_token_signs_the_request_in(app: httpx.AsyncClient, idp: DevIdP) -> None:
    token = idp.issue_opaque_token("alice", client_id="spa", scopes=["orders:read"])
    assert token.count(".") == 0
    response = await app.get("/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "sub": "alice",
        "scopes": ["orders:read"],
        "connection": idp.issuer,
    }
    await app.get("/me", headers=bearer(token))
    assert idp.requests["/introspect"] == 1  # cached
    assert idp.requests["/.well-known/openid-configuration"] == 1  # endpoint from discovery


async def test_jwt_and_opaque_tokens_of_one_issuer_coexist(
    app: httpx.AsyncClient, idp: DevIdP
) -> None:
    jwt = idp.issue_token("bob", client_id="spa")
    opaque = idp.issue_opaque_token("carol", client_id="spa")
    assert (await app.get("/", headers=bearer(jwt))).json()["sub"] == "bob"
    assert (await app.get("/", headers=bearer(opaque))).json()["sub"] == "carol"
    assert idp.requests["/introspect"] == 1


async def test_a_revoked_token_is_refused_once_the_cache_lapses(
    idp: DevIdP, clock: FakeClock
) -> None:
    transport = httpx.ASGITransport(app=_middleware(idp, clock, cache_ttl=10, inactive_ttl=5))
    async with httpx.AsyncClient(transport=transport, base_url=APP) as app:
        token = idp.issue_opaque_token("alice", client_id="spa")
        assert (await app.get("/", headers=bearer(token))).status_code == 200
        idp.revoke_opaque_token(token)
        clock.advance(11)
        refused = await app.get("/", headers=bearer(token))
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert token not in refused.text
        await app.get("/", headers=bearer(token))
        assert idp.requests["/introspect"] == 2  # the refusal is remembered


async def test_wrong_audience_and_expired_tokens_are_refused(
    app: httpx.AsyncClient, idp: DevIdP
) -> None:
    other = idp.issue_opaque_token("alice", audience="api://billing")
    expired = idp.issue_opaque_token("alice", client_id="spa", expires_in=-10)
    assert (await app.get("/", headers=bearer(other))).status_code == 401
    assert (await app.get("/", headers=bearer(expired))).status_code == 401


async def test_an_idp_outage_is_a_503_with_retry_after(idp: DevIdP, clock: FakeClock) -> None:
    transport = httpx.ASGITransport(app=_middleware(idp, clock, endpoint=idp.url("/introspect")))
    async with httpx.AsyncClient(transport=transport, base_url=APP) as app:
        token = idp.issue_opaque_token("alice", client_id="spa")
        with idp.outage(500):
            response = await app.get("/", headers=bearer(token))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert (await app.get("/", headers=bearer(token))).status_code == 200


async def test_a_wrong_client_secret_is_a_503_not_a_pass(idp: DevIdP, clock: FakeClock) -> None:
    transport = httpx.ASGITransport(app=_middleware(idp, clock, secret="not-the-secret"))
    async with httpx.AsyncClient(transport=transport, base_url=APP) as app:
        token = idp.issue_opaque_token("alice", client_id="spa")
        assert (await app.get("/", headers=bearer(token))).status_code == 503


@pytest.mark.parametrize(
    "token", ["A" * 5000, "abc", "a.b", "a.b.c.d", "~~~~", "Zm9v=", "x" * 40 + "=="]
)
async def test_unknown_and_odd_tokens_are_401_never_500(app: httpx.AsyncClient, token: str) -> None:
    response = await app.get("/", headers=bearer(token))
    assert response.status_code == 401


async def test_the_dev_idp_introspects_only_for_confidential_clients(idp: DevIdP) -> None:
    token = idp.issue_opaque_token("alice", client_id="spa")
    async with idp.http_client() as client:
        url = idp.url("/introspect")
        ok = await client.post(url, data={"token": token}, auth=("orders-api", RS_SECRET))
        assert ok.json()["active"] is True
        assert ok.json()["sub"] == "alice"
        public = await client.post(url, data={"token": token, "client_id": "spa"})
        assert public.status_code == 401
        anonymous = await client.post(url, data={"token": token})
        assert anonymous.status_code == 401
        jwt = idp.issue_token("bob", client_id="spa")
        own = await client.post(url, data={"token": jwt}, auth=("orders-api", RS_SECRET))
        assert own.json()["sub"] == "bob"
        unknown = await client.post(url, data={"token": "nope"}, auth=("orders-api", RS_SECRET))
        assert unknown.json() == {"active": False}


async def test_a_revocation_gap_forgets_introspected_answers(idp: DevIdP, clock: FakeClock) -> None:
    # Revocations may have been missed: the next request asks the IdP again.
    middleware = _middleware(idp, clock)
    token = idp.issue_opaque_token("alice", client_id="spa", scopes=["orders:read"])
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url=APP) as client:
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
        idp.revoke_opaque_token(token)
        assert (await client.get("/me", headers=bearer(token))).status_code == 200  # cached
        for listener in middleware.revocations._gap_listeners:
            listener()
        response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
