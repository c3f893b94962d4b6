"""asgi_sso.fastapi.configure_docs: Swagger UI at /docs signs in with authorization code + PKCE."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI

from asgi_sso import ConfigurationError, PathRules, SSOMiddleware
from asgi_sso.fastapi import CurrentUser, DocsSignIn, configure_docs, require_scopes
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock
from asgi_sso.testing.tokens import b64url

APP = "http://testserver"
REDIRECT = APP + "/docs/oauth2-redirect"  # what Swagger UI registers: origin + redirect path
AUDIENCE = "api://reports"
SCHEME = "SSO sign-in"
BEARER = "SSO bearer token"


def build_api() -> FastAPI:
    api = FastAPI(title="Reports")

    @api.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"sub": user.identity}

    @api.get("/reports", dependencies=[Depends(require_scopes("reports:read"))])
    async def reports() -> dict[str, bool]:
        return {"ok": True}

    @api.post("/admin", dependencies=[Depends(require_scopes("admin", "reports:read"))])
    async def admin() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return api


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    return DevIdP(
        users=[DevUser(sub="alice", email="alice@example.com")],
        clients=[DevClient(client_id="reports-docs", redirect_uris=(REDIRECT,), audience=AUDIENCE)],
        clock=clock,
    )


class Env:
    def __init__(self, idp: DevIdP, app: httpx.AsyncClient, paths: tuple[str, ...]) -> None:
        self.idp, self.app, self.paths = idp, app, paths


@pytest.fixture
async def env(idp: DevIdP, clock: FakeClock) -> AsyncIterator[Env]:
    async with idp.http_client() as to_idp:
        api = build_api()
        sign_in = DocsSignIn(issuer=idp.issuer, client_id="reports-docs")
        paths = configure_docs(api, sign_in, http_client=to_idp, clock=clock)
        app = SSOMiddleware(
            api,
            issuers=[idp.issuer_config(AUDIENCE)],
            paths=PathRules(public=[*paths, "/health"]),
            http_client=to_idp,
            clock=clock,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=APP) as client:
            yield Env(idp, client, paths)


def init_oauth(html: str) -> dict[str, Any]:
    match = re.search(r"ui\.initOAuth\((\{.*?\})\)", html, re.S)
    assert match is not None, html
    return dict(json.loads(match.group(1)))


async def test_the_documentation_paths_are_returned_and_public(env: Env) -> None:
    assert env.paths == ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
    for path in env.paths:
        reply = await env.app.get(path)
        assert reply.status_code == 200, (path, reply.text)
    assert (await env.app.get("/me")).status_code == 401


async def test_openapi_has_the_authorization_code_flow_with_the_required_scopes(
    env: Env,
) -> None:
    spec = (await env.app.get("/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"][SCHEME]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["authorizationCode"]
    assert flow["authorizationUrl"] == env.idp.url("/authorize")
    assert flow["tokenUrl"] == env.idp.url("/token")
    assert flow["scopes"] == {
        "openid": "asked for by default",
        "reports:read": "required by GET /reports, POST /admin",
        "admin": "required by POST /admin",
    }
    assert BEARER in spec["components"]["securitySchemes"]  # pasting a token still works
    paths = spec["paths"]
    assert paths["/reports"]["get"]["security"] == [{BEARER: []}, {SCHEME: ["reports:read"]}]
    assert paths["/admin"]["post"]["security"] == [
        {BEARER: []},
        {SCHEME: ["admin", "reports:read"]},
    ]
    assert paths["/me"]["get"]["security"] == [{BEARER: []}, {SCHEME: []}]
    assert "security" not in paths["/health"]["get"]


async def test_the_swagger_page_initialises_oauth_with_pkce(env: Env) -> None:
    html = (await env.app.get("/docs")).text
    assert init_oauth(html) == {
        "clientId": "reports-docs",
        "usePkceWithAuthorizationCodeGrant": True,
        "scopes": "openid",
    }
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in html
    assert "secret" not in html.lower()


async def authorize_by_hand(env: Env, scope: str) -> str:
    """What Swagger UI's "Authorize" does, step by step; the access token it ends with."""
    spec = (await env.app.get("/openapi.json")).json()
    flow = spec["components"]["securitySchemes"][SCHEME]["flows"]["authorizationCode"]
    client_id = init_oauth((await env.app.get("/docs")).text)["clientId"]
    verifier = secrets.token_urlsafe(48)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": scope, "state": "swagger-state", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip
    async with env.idp.http_client() as browser:
        page = await browser.get(flow["authorizationUrl"] + "?" + urlencode(query))
        assert page.status_code == 200  # the dev IdP's sign-in page: pick a user
        picked = await browser.post(flow["authorizationUrl"], data={**query, "login": "alice"})
        assert picked.status_code == 302
        location = picked.headers["location"]
        assert location.startswith(REDIRECT + "?")
        back = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert back["state"] == "swagger-state"
        landing = await env.app.get(location)  # the redirect page hands the code to /docs
        assert landing.status_code == 200
        assert "oauth2" in landing.text
        cors = {"Origin": APP, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-requested-with"}  # fmt: skip
        preflight = await browser.options(flow["tokenUrl"], headers=cors)
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == APP
        form = {"grant_type": "authorization_code", "code": back["code"], "client_id": client_id,
                "redirect_uri": REDIRECT, "code_verifier": verifier}  # fmt: skip
        headers = {"Origin": APP, "X-Requested-With": "XMLHttpRequest"}
        tokens = await browser.post(flow["tokenUrl"], data=form, headers=headers)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["access-control-allow-origin"] == APP
    token: str = tokens.json()["access_token"]
    return token


async def test_authorize_signs_in_and_the_token_calls_the_api(env: Env) -> None:
    token = await authorize_by_hand(env, "openid reports:read")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await env.app.get("/me", headers=bearer)).json() == {"sub": "alice"}
    assert (await env.app.get("/reports", headers=bearer)).status_code == 200
    refused = await env.app.post("/admin", headers=bearer)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


async def test_a_provider_that_cannot_be_reached_is_a_503_and_asked_again_later(
    idp: DevIdP, clock: FakeClock
) -> None:
    api = build_api()
    async with idp.http_client() as to_idp:
        configure_docs(api, DocsSignIn(issuer=idp.issuer, client_id="reports-docs"),
                       http_client=to_idp, clock=clock)  # fmt: skip
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url=APP) as app:
            with idp.outage():
                reply = await app.get("/openapi.json")
                assert reply.status_code == 503
                assert reply.headers["retry-after"] == "30"  # Limits.jwks_cooldown
                assert "the sign-in of /docs needs" in reply.json()["error_description"]
                asked = idp.requests["/.well-known/openid-configuration"]
                for _ in range(20):  # a flood costs the provider nothing more
                    assert (await app.get("/openapi.json")).status_code == 503
                assert idp.requests["/.well-known/openid-configuration"] == asked
            assert (await app.get("/openapi.json")).status_code == 503  # still pausing
            clock.advance(31)
            assert (await app.get("/openapi.json")).status_code == 200
            assert (await app.get("/docs")).status_code == 200


def test_given_endpoints_need_no_network_and_discovery_must_happen_first() -> None:
    api = build_api()
    sign_in = DocsSignIn(
        client_id="docs",
        authorization_url="https://login.example.com/authorize",
        token_url="https://login.example.com/token",
        scopes=("openid", "api://reports/.default"),
        extra_params={"audience": "api://reports"},
    )
    configure_docs(api, sign_in)
    flow = api.openapi()["components"]["securitySchemes"][SCHEME]["flows"]["authorizationCode"]
    assert flow["tokenUrl"] == "https://login.example.com/token"
    assert api.swagger_ui_init_oauth is not None
    assert api.swagger_ui_init_oauth["additionalQueryStringParams"] == {"audience": "api://reports"}
    assert api.swagger_ui_init_oauth["scopes"] == "openid api://reports/.default"
    discovering = build_api()
    configure_docs(discovering, DocsSignIn(issuer="https://login.example.com", client_id="d"))
    with pytest.raises(ConfigurationError, match="authorization_url and token_url"):
        discovering.openapi()


async def test_an_app_without_the_redirect_page_gets_it(idp: DevIdP) -> None:
    api = FastAPI(swagger_ui_oauth2_redirect_url=None, redoc_url=None)
    sign_in = DocsSignIn(client_id="d", authorization_url=idp.url("/authorize"),
                         token_url=idp.url("/token"))  # fmt: skip
    assert configure_docs(api, sign_in) == ("/openapi.json", "/docs", "/docs/oauth2-redirect")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url=APP) as app:
        page = await app.get("/docs/oauth2-redirect")
        assert page.status_code == 200
        assert "oauth2" in page.text
        assert "/docs/oauth2-redirect" in (await app.get("/docs")).text


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({}, "needs the provider"),
        ({"authorization_url": "https://i/authorize"}, "together"),
        ({"issuer": "http://idp.example.com"}, "must be https"),
        ({"issuer": "https://i", "discovery_url": "ftp://i/d"}, "must be https"),
        ({"issuer": "https://i", "scopes": "openid"}, "takes a list of scopes"),
        ({"issuer": "https://i", "scopes": ("open id",)}, "is not a scope"),
        ({"issuer": "https://i", "extra_params": {"redirect_uri": "x"}}, "may not set"),
        ({"issuer": "https://i", "client_id": ""}, "client_id"),
    ],
)
def test_bad_settings_are_refused_when_built(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        DocsSignIn(**{"client_id": "d", **kwargs})


def test_an_app_without_docs_or_with_a_secret_in_the_page_is_refused() -> None:
    sign_in = DocsSignIn(issuer="https://login.example.com", client_id="d")
    with pytest.raises(ConfigurationError, match="docs_url"):
        configure_docs(FastAPI(docs_url=None), sign_in)
    leaky = FastAPI(swagger_ui_init_oauth={"clientSecret": "s3cret"})
    with pytest.raises(ConfigurationError, match="clientSecret"):
        configure_docs(leaky, sign_in)


async def test_two_providers_are_two_schemes_with_one_client_id(clock: FakeClock) -> None:
    first, second = (
        DevIdP(clients=[DevClient(client_id="docs", redirect_uris=(REDIRECT,))], clock=clock)
        for _ in range(2)
    )
    api = build_api()
    async with first.http_client(
        mounts={second.origin: httpx.ASGITransport(app=second)}
    ) as to_idps:
        for name, idp in (("Acme sign-in", first), ("Globex sign-in", second)):
            sign_in = DocsSignIn(issuer=idp.issuer, client_id="docs", scheme_name=name)
            configure_docs(api, sign_in, http_client=to_idps, clock=clock)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url=APP) as app:
            spec = (await app.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    acme = schemes["Acme sign-in"]["flows"]["authorizationCode"]
    globex = schemes["Globex sign-in"]["flows"]["authorizationCode"]
    assert (acme["tokenUrl"], globex["tokenUrl"]) == (first.url("/token"), second.url("/token"))
    assert spec["paths"]["/reports"]["get"]["security"] == [
        {BEARER: []},
        {"Acme sign-in": ["reports:read"]},
        {"Globex sign-in": ["reports:read"]},
    ]
    with pytest.raises(ConfigurationError, match="one client id"):
        configure_docs(api, DocsSignIn(issuer=first.issuer, client_id="other", scheme_name="x"))
