"""SSOMiddleware with DPoP (RFC 9449): bound tokens need a fresh proof on every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import SSOMiddleware
from asgi_sso.testing import DevIdP, DevUser
from asgi_sso.testing.dpop import DPoPClient

AUD = "api://test"
URL = "http://testserver/things"


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity, "source": request.user.source})


inner = Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "POST"])])


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP("http://idp.test", users=[DevUser(sub="alice", email="alice@acme.test")])


@pytest.fixture
async def idp_http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = idp.http_client()
    yield client
    await client.aclose()


@pytest.fixture
def dpop(idp: DevIdP) -> DPoPClient:
    return DPoPClient(clock=idp.clock)


def api(idp: DevIdP, http: httpx.AsyncClient, mode: str) -> httpx.AsyncClient:
    app = SSOMiddleware(inner, [idp.issuer_config(audience=AUD, dpop=mode)], http_client=http)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def dpop_headers(dpop: DPoPClient, token: str, method: str = "GET", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": dpop.proof(method, URL, token, **kw)}


def bound_token(idp: DevIdP, dpop: DPoPClient) -> str:
    return idp.issue_token("alice", audience=AUD, claims=dpop.cnf())


@pytest.mark.parametrize("mode", ["allow", "require"])
async def test_a_bound_token_with_a_fresh_proof_each_time_is_accepted(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient, mode: str
) -> None:
    token = bound_token(idp, dpop)
    async with api(idp, idp_http, mode) as c:
        for _ in range(3):  # the later ones come from the verified-token cache
            r = await c.get("/things", headers=dpop_headers(dpop, token))
            assert r.status_code == 200, r.text
            assert r.json() == {"identity": "alice", "source": "dpop"}
        r = await c.post("/things?page=2", headers=dpop_headers(dpop, token, "POST"))
        assert r.status_code == 200, r.text


async def test_the_cache_never_skips_the_proof(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    headers = dpop_headers(dpop, token)
    async with api(idp, idp_http, "allow") as c:
        assert (await c.get("/things", headers=headers)).status_code == 200
        assert (await c.get("/things", headers=dpop_headers(dpop, token))).status_code == 200
        replayed = await c.get("/things", headers=headers)  # token cached, proof replayed
        no_proof = await c.get("/things", headers={"Authorization": f"DPoP {token}"})
        stolen = await c.get("/things", headers=DPoPClient(clock=idp.clock).headers(
            token, "GET", URL))  # fmt: skip
        other_method = await c.post("/things", headers=dpop_headers(dpop, token))
    for r in (replayed, no_proof, stolen, other_method):
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_dpop_proof"
        challenges = r.headers.get_list("www-authenticate")
        assert challenges[0].startswith('Bearer realm="api"')
        assert challenges[1].startswith('DPoP algs="ES256 ')
        assert 'error="invalid_dpop_proof"' in challenges[1]


@pytest.mark.parametrize("mode", ["off", "allow", "require"])
async def test_a_bound_token_sent_as_bearer_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient, mode: str
) -> None:
    token = bound_token(idp, dpop)
    async with api(idp, idp_http, mode) as c:
        r = await c.get("/things", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"
    assert "DPoP-bound" in r.json()["error_description"]


async def test_require_refuses_plain_bearer_tokens_and_allow_takes_them(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    headers = {"Authorization": f"Bearer {token}"}
    async with api(idp, idp_http, "require") as c:
        r = await c.get("/things", headers=headers)
    assert r.status_code == 401
    assert "requires DPoP" in r.json()["error_description"]
    assert 'DPoP algs="' in r.headers.get_list("www-authenticate")[1]
    async with api(idp, idp_http, "allow") as c:
        assert (await c.get("/things", headers=headers)).status_code == 200


async def test_an_unbound_token_sent_as_dpop_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    async with api(idp, idp_http, "allow") as c:
        r = await c.get("/things", headers=dpop_headers(dpop, token))
    assert r.status_code == 401
    assert "not DPoP-bound" in r.json()["error_description"]


async def test_with_dpop_off_the_scheme_is_not_read_and_no_dpop_challenge(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    async with api(idp, idp_http, "off") as c:
        r = await c.get("/things", headers=dpop_headers(dpop, token))
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Bearer realm="api"']


async def test_two_proof_headers_are_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    headers = [
        ("Authorization", f"DPoP {token}"),
        ("DPoP", dpop.proof("GET", URL, token)),
        ("DPoP", dpop.proof("GET", URL, token)),
    ]
    async with api(idp, idp_http, "allow") as c:
        r = await c.get("/things", headers=headers)
    assert r.status_code == 401
    assert "more than one DPoP header" in r.json()["error_description"]


async def test_the_proof_names_the_url_below_the_mount_point(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    # Mounted at /api: the client addressed /api/things, and so must its proof.
    app = SSOMiddleware(
        inner, [idp.issuer_config(audience=AUD, dpop="allow")], http_client=idp_http
    )
    token = bound_token(idp, dpop)
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        good = {"Authorization": f"DPoP {token}"}
        good["DPoP"] = dpop.proof("GET", "http://testserver/api/things", token)
        assert (await c.get("/api/things", headers=good)).status_code == 200
