"""Third-party proof: Authlib's Starlette client signs in against DevIdP served on 127.0.0.1."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_sso.testing import DevClient, DevIdP, DevUser

with warnings.catch_warnings():  # Authlib warns about its own httpx integration on import
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth

CALLBACK = "http://rp.test/callback"


def make_idp(*, auto_approve: bool, algorithm: str = "RS256") -> DevIdP:
    return DevIdP(
        users=[
            DevUser(sub="alice", email="alice@example.com", name="Alice", groups=("admins",)),
            DevUser(sub="bob", email="bob@example.com", name="Bob"),
        ],
        clients=[
            DevClient(client_id="rp", client_secret="rp-test-secret", redirect_uris=(CALLBACK,))
        ],
        algorithm=algorithm,
        auto_approve=auto_approve,
    )


def authlib_app(idp: DevIdP) -> Starlette:
    oauth = OAuth()
    oauth.register(
        "dev",
        client_id="rp",
        client_secret="rp-test-secret",
        server_metadata_url=idp.discovery_url,
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )

    async def login(request: Request) -> Response:
        return await oauth.dev.authorize_redirect(request, CALLBACK, nonce="n-0S6_WzA2Mj")

    async def callback(request: Request) -> Response:
        token = await oauth.dev.authorize_access_token(request)
        return JSONResponse({"userinfo": dict(token["userinfo"]), "scope": token.get("scope")})

    return Starlette(
        routes=[Route("/login", login), Route("/callback", callback)],
        middleware=[Middleware(SessionMiddleware, secret_key="test-only-session-key")],
    )


@pytest.fixture
def served_idp() -> Iterator[DevIdP]:
    idp = make_idp(auto_approve=True)
    with idp.serve():
        yield idp


async def _start(rp: httpx.AsyncClient) -> str:
    response = await rp.get("/login")
    assert response.status_code == 302
    location = response.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert "code_challenge" in query
    return location


async def _finish(rp: httpx.AsyncClient, redirect: str) -> dict[str, object]:
    assert redirect.startswith(CALLBACK + "?")
    callback = await rp.get(redirect.removeprefix("http://rp.test"))
    assert callback.status_code == 200, callback.text
    body: dict[str, object] = callback.json()
    return body


async def test_authlib_completes_code_flow_with_pkce_and_verifies_id_token(
    served_idp: DevIdP,
) -> None:
    transport = httpx.ASGITransport(app=authlib_app(served_idp))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://rp.test") as rp,
        httpx.AsyncClient(timeout=10) as browser,
    ):
        authorize_url = await _start(rp)
        assert authorize_url.startswith(served_idp.issuer + "/authorize?")
        approved = await browser.get(authorize_url)
        assert approved.status_code == 302
        assert parse_qs(urlsplit(approved.headers["location"]).query)["iss"] == [served_idp.issuer]
        body = await _finish(rp, approved.headers["location"])
    userinfo = body["userinfo"]
    assert isinstance(userinfo, dict)
    assert userinfo["sub"] == "alice"
    assert userinfo["iss"] == served_idp.issuer
    assert userinfo["aud"] == "rp"
    assert userinfo["nonce"] == "n-0S6_WzA2Mj"
    assert userinfo["email"] == "alice@example.com"
    assert served_idp.requests["/token"] == 1
    assert served_idp.requests["/jwks"] >= 1


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
async def test_authlib_signs_in_through_the_login_form(algorithm: str) -> None:
    idp = make_idp(auto_approve=False, algorithm=algorithm)
    with idp.serve():
        transport = httpx.ASGITransport(app=authlib_app(idp))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://rp.test") as rp,
            httpx.AsyncClient(timeout=10) as browser,
        ):
            page = await browser.get(await _start(rp))
            assert page.status_code == 200
            assert "Alice" in page.text
            form = page.text.split("<form", 2)[1]
            fields = {
                unescape(name): unescape(value)
                for name, value in re.findall(r'name="([^"]+)" value="([^"]*)"', form)
            }
            fields["login"] = "bob"
            posted = await browser.post(idp.url("/authorize"), data=fields)
            assert posted.status_code == 302, posted.text
            body = await _finish(rp, posted.headers["location"])
    userinfo = body["userinfo"]
    assert isinstance(userinfo, dict)
    assert userinfo["sub"] == "bob"
