"""The FastAPI example in process: sign-in by email domain, bearer and session, tenants, SCIM."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import msgspec
import pytest

from asgi_sso import ConfigurationError, MemoryUserStore, Secret
from asgi_sso.testing import DevIdP
from asgi_sso.testing.tokens import b64url
from examples._devkit import OidcSettings, cookie_security
from examples.fastapi_app.app import (
    ADMIN_SCOPE,
    COMPANIES,
    DEV_AUDIENCE,
    DOCS_CLIENT_ID,
    THIRD_COMPANY,
    Example,
    Settings,
    create_app,
    dev_client,
)

APP_URL = "http://127.0.0.1:8000"


@pytest.fixture
async def example(tmp_path: Path) -> AsyncIterator[Example]:
    built = create_app(Settings(session_secret=Secret(b"k" * 32), data_dir=str(tmp_path)))
    yield built
    await built.app.shutdown()


@pytest.fixture
async def client(example: Example) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=example.app)
    async with httpx.AsyncClient(transport=transport, base_url=APP_URL) as http:
        yield http


def idp_of(example: Example, sub: str) -> DevIdP:
    """The dev IdP of the company ``sub`` works at."""
    (company,) = [c for c in COMPANIES if any(u.sub == sub for u in c.users)]
    return example.idps[company.id]


def bearer(example: Example, sub: str) -> dict[str, str]:
    token = idp_of(example, sub).issue_token(sub, audience=DEV_AUDIENCE)
    return {"Authorization": f"Bearer {token}"}


async def sign_in(example: Example, client: httpx.AsyncClient, sub: str) -> None:
    """Browser sign-in in process: work email → that company's dev IdP → callback."""
    idp = idp_of(example, sub)
    email = idp.users[sub].email
    start = await client.get("/auth/login", params={"return_to": "/dashboard", "email": email})
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.startswith(idp.issuer + "/authorize?")
    assert ("login_hint", email) in parse_qsl(urlsplit(authorize).query)
    async with idp.http_client() as idp_http:
        answer = await idp_http.get(authorize)  # the dev IdP signs in the hinted user
    assert answer.status_code == 302
    callback = urlsplit(answer.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}" == APP_URL
    done = await client.get(callback.path, params=dict(parse_qsl(callback.query)))
    assert done.status_code in (302, 303), done.text
    assert done.headers["location"] == "/dashboard"


async def test_home_is_public_and_links_to_sign_in(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert "href='/auth/login?return_to=/dashboard'" in page.text
    assert "Sign in with SSO" in page.text


async def test_home_says_who_is_signed_in_by_session_or_bearer(
    example: Example, client: httpx.AsyncClient
) -> None:
    by_bearer = await client.get("/", headers=bearer(example, "alice"))
    assert by_bearer.status_code == 200
    assert "Signed in as <b>alice@acme.example</b> (acme)" in by_bearer.text
    assert "id=signin" not in by_bearer.text
    broken = await client.get("/", headers={"Authorization": "Bearer not-a-token"})
    assert broken.status_code == 200  # a public page never refuses
    assert "Sign in with SSO" in broken.text
    await sign_in(example, client, "dave")
    by_session = await client.get("/")
    assert "Signed in as <b>dave@globex.example</b> (globex)" in by_session.text


async def test_sign_in_asks_for_a_work_email_and_refuses_an_unknown_domain(
    client: httpx.AsyncClient,
) -> None:
    form = await client.get("/auth/login", params={"return_to": "/dashboard"})
    assert form.status_code == 200
    assert 'type="email"' in form.text or "type=email" in form.text
    unknown = await client.get("/auth/login", params={"email": "eve@unknown.example"})
    assert unknown.status_code == 404
    assert "No single sign-on" in unknown.text


async def test_a_company_added_at_runtime_signs_in_and_disabling_it_cuts_its_user_off(
    example: Example, client: httpx.AsyncClient
) -> None:
    user = THIRD_COMPANY.users[0]
    idp = DevIdP(f"http://127.0.0.1:{example.third_port}", users=THIRD_COMPANY.users)
    idp.add_client(dev_client(example.settings.app_url, example.client_secret))
    assert (await client.get("/auth/login", params={"email": user.email})).status_code == 404
    with idp.serve():
        assert example.app.connections is not None
        assert example.connections is not None
        await client.get("/healthz")  # the middleware starts and seeds the store
        await example.connections.add(example.connection(THIRD_COMPANY, idp.issuer))
        await example.app.connections.reload()
        start = await client.get("/auth/login", params={"email": user.email})
        assert start.status_code == 302
        async with httpx.AsyncClient() as http:
            answer = await http.get(start.headers["location"])
        callback = urlsplit(answer.headers["location"])
        done = await client.get(callback.path, params=dict(parse_qsl(callback.query)))
        assert done.status_code in (302, 303), done.text
        me = (await client.get("/me")).json()
        assert (me["connection"], me["tier"], me["sub"]) == ("initech", "pro", "erin")
        third = example.connection(THIRD_COMPANY, idp.issuer)
        await example.connections.update(
            msgspec.structs.replace(third, enabled=False, not_before=time.time())
        )
        await example.app.connections.reload()
        assert (await client.get("/me")).status_code == 401


async def test_me_with_a_bearer_token(example: Example, client: httpx.AsyncClient) -> None:
    reply = await client.get("/me", headers=bearer(example, "alice"))
    assert reply.status_code == 200
    body = reply.json()
    assert body["sub"] == "alice"
    assert body["email"] == "alice@acme.example"
    assert body["connection"] == "acme"
    assert body["tier"] == "enterprise"
    assert ADMIN_SCOPE in body["scopes"]
    assert body["via"] == "header"
    assert body["user_id"]


async def test_me_with_a_session_cookie(example: Example, client: httpx.AsyncClient) -> None:
    await sign_in(example, client, "dave")
    reply = await client.get("/me")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["sub"], body["connection"], body["tier"]) == ("dave", "globex", "pro")
    assert body["via"] == "session"
    assert ADMIN_SCOPE not in body["scopes"]


async def test_dashboard_shows_user_company_tier_and_sign_out(
    example: Example, client: httpx.AsyncClient
) -> None:
    await sign_in(example, client, "alice")
    page = await client.get("/dashboard", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "alice@acme.example" in page.text
    assert "<dd>acme</dd>" in page.text
    assert "<dd>enterprise</dd>" in page.text
    assert "<form method=post action='/auth/logout'>" in page.text


async def test_dashboard_without_session_redirects_a_browser_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard", headers={"Accept": "text/html"})
    assert page.status_code == 302
    assert page.headers["location"] == "/auth/login?return_to=%2Fdashboard"


async def test_me_without_credentials_is_an_rfc6750_401(client: httpx.AsyncClient) -> None:
    reply = await client.get("/me")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")


async def test_admin_lists_only_their_own_company(
    example: Example, client: httpx.AsyncClient
) -> None:
    for sub in ("alice", "bob", "carol", "dave"):
        assert (await client.get("/me", headers=bearer(example, sub))).status_code == 200
    acme = await client.get("/admin/users", headers=bearer(example, "alice"))
    globex = await client.get("/admin/users", headers=bearer(example, "carol"))
    assert acme.status_code == globex.status_code == 200
    assert {u["sub"] for u in acme.json()["users"]} == {"alice", "bob"}
    assert {u["sub"] for u in globex.json()["users"]} == {"carol", "dave"}
    assert acme.json()["connection"] == "acme"


async def test_a_member_gets_403_on_the_admin_page(
    example: Example, client: httpx.AsyncClient
) -> None:
    reply = await client.get("/admin/users", headers=bearer(example, "bob"))
    assert reply.status_code == 403
    challenge = reply.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{ADMIN_SCOPE}"' in challenge
    html = await client.get(
        "/admin/users", headers={**bearer(example, "bob"), "Accept": "text/html"}
    )
    assert html.status_code == 403
    assert "403 · Not allowed" in html.text


async def test_scim_deactivation_refuses_the_next_request(
    example: Example, client: httpx.AsyncClient
) -> None:
    headers = bearer(example, "bob")
    assert (await client.get("/me", headers=headers)).status_code == 200
    scim = {"Authorization": f"Bearer scim-acme-{example.client_secret}"}
    found = await client.get(
        "/scim/v2/Users", params={"filter": 'userName eq "bob@acme.example"'}, headers=scim
    )
    assert found.status_code == 200, found.text
    (user,) = found.json()["Resources"]
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": False}],
    }
    done = await client.patch(f"/scim/v2/Users/{user['id']}", json=patch, headers=scim)
    assert done.status_code == 200, done.text
    again = await client.get("/me", headers=headers)
    assert again.status_code == 401
    assert "deactivated" in again.json()["error_description"]


async def test_another_companys_scim_secret_cannot_see_the_user(
    example: Example, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/me", headers=bearer(example, "bob"))).status_code == 200
    scim = {"Authorization": f"Bearer scim-globex-{example.client_secret}"}
    found = await client.get(
        "/scim/v2/Users", params={"filter": 'userName eq "bob@acme.example"'}, headers=scim
    )
    assert found.status_code == 200
    assert found.json()["totalResults"] == 0


async def test_logout_ends_the_session(example: Example, client: httpx.AsyncClient) -> None:
    await sign_in(example, client, "alice")
    out = await client.post("/auth/logout", headers={"Origin": APP_URL})
    assert out.status_code in (302, 303)
    assert out.headers["location"].startswith(example.idps["acme"].issuer + "/end_session")
    assert (await client.get("/me")).status_code == 401


async def test_openapi_offers_each_companys_sign_in_beside_the_bearer_scheme(
    example: Example, client: httpx.AsyncClient
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["SSO bearer token"]["scheme"] == "bearer"
    for company in COMPANIES:
        flow = schemes[f"{company.name} sign-in"]["flows"]["authorizationCode"]
        assert flow["authorizationUrl"] == example.idps[company.id].url("/authorize")
        assert flow["scopes"][ADMIN_SCOPE] == "required by GET /admin/users"
    assert spec["paths"]["/me"]["get"]["security"] == [
        {"SSO bearer token": []},
        {"Acme Corp sign-in": []},
        {"Globex sign-in": []},
    ]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert f'"clientId": "{DOCS_CLIENT_ID}"' in docs.text
    assert '"usePkceWithAuthorizationCodeGrant": true' in docs.text


async def test_authorize_in_the_docs_signs_in_at_the_companys_idp(
    example: Example, client: httpx.AsyncClient
) -> None:
    idp = example.idps["globex"]
    verifier = secrets.token_urlsafe(48)
    redirect = APP_URL + "/docs/oauth2-redirect"
    query = {
        "response_type": "code", "client_id": DOCS_CLIENT_ID, "redirect_uri": redirect,
        "scope": "openid profile email", "state": "s", "login": "dave",
        "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    }  # fmt: skip
    async with idp.http_client() as browser:
        picked = await browser.post(idp.url("/authorize"), data=query)
        back = urlsplit(picked.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == redirect
        assert (await client.get(picked.headers["location"])).status_code == 200  # public
        code = dict(parse_qsl(back.query))["code"]
        form = {"grant_type": "authorization_code", "code": code, "client_id": DOCS_CLIENT_ID,
                "redirect_uri": redirect, "code_verifier": verifier}  # fmt: skip
        tokens = await browser.post(idp.url("/token"), data=form, headers={"Origin": APP_URL})
    assert tokens.headers["access-control-allow-origin"] == APP_URL
    me = await client.get(
        "/me", headers={"Authorization": f"Bearer {tokens.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert (me.json()["sub"], me.json()["connection"], me.json()["tier"]) == (
        "dave",
        "globex",
        "pro",
    )


def test_settings_from_env_use_a_real_provider() -> None:
    env = {
        "OIDC_ISSUER": "http://localhost:8080/realms/acme",
        "OIDC_CLIENT_ID": "web",
        "OIDC_CLIENT_SECRET": "s3cret-value",
        "OIDC_REDIRECT_URI": "http://localhost:8000/auth/callback",
        "SESSION_SECRET": "z" * 40,
        "APP_URL": "http://localhost:8000",
    }
    settings = Settings.from_env({**env, "OIDC_AUDIENCE": "api://acme-analytics"})
    assert settings.oidc == OidcSettings(
        issuer="http://localhost:8080/realms/acme",
        client_id="web",
        client_secret=Secret("s3cret-value"),
        redirect_uri="http://localhost:8000/auth/callback",
        audience="api://acme-analytics",
    )
    assert "s3cret" not in repr(settings)
    example = create_app(settings, user_store=MemoryUserStore())
    assert not example.idps
    assert example.app.login is not None
    assert example.app.login.config.secure_cookies is False
    issuer = example.app.verifier.registry.find("http://localhost:8080/realms/acme")
    assert issuer is not None
    assert (issuer.audience, issuer.client_id) == ("api://acme-analytics", "web")


def test_a_real_provider_signs_in_the_docs_with_its_public_client() -> None:
    env = {
        "OIDC_ISSUER": "https://login.example.com/tenant/v2.0",
        "OIDC_CLIENT_ID": "web",
        "OIDC_AUDIENCE": "api://acme-analytics",
        "SESSION_SECRET": "z" * 40,
        "APP_URL": "https://app.example.com",
    }
    plain = create_app(Settings.from_env(env), user_store=MemoryUserStore())
    assert plain.api.swagger_ui_init_oauth is None
    docs_env = {**env, "OIDC_DOCS_CLIENT_ID": "web-docs",
                "OIDC_DOCS_SCOPES": "openid, api://acme-analytics/.default"}  # fmt: skip
    example = create_app(Settings.from_env(docs_env), user_store=MemoryUserStore())
    assert example.api.swagger_ui_init_oauth == {
        "clientId": "web-docs",
        "usePkceWithAuthorizationCodeGrant": True,
        "scopes": "openid api://acme-analytics/.default",
    }
    assert plain.docs_paths == example.docs_paths == (
        "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
    )  # fmt: skip


def test_a_real_provider_needs_the_api_audience_not_the_client_id() -> None:
    # The client id is the audience of the sign-in client's ID tokens: no default.
    env = {
        "OIDC_ISSUER": "http://localhost:8080/realms/acme",
        "OIDC_CLIENT_ID": "web",
        "SESSION_SECRET": "z" * 40,
        "APP_URL": "http://localhost:8000",
    }
    with pytest.raises(ConfigurationError, match="OIDC_AUDIENCE is required"):
        create_app(Settings.from_env(env), user_store=MemoryUserStore())


def test_dev_mode_without_oidc_settings() -> None:
    assert Settings.from_env({}).oidc is None


def test_insecure_cookies_only_on_loopback_http() -> None:
    assert cookie_security("https://app.example", dev_mode=False) is True
    assert cookie_security("http://127.0.0.1:8000", dev_mode=True) is False
    with pytest.raises(ConfigurationError):
        cookie_security("http://app.example", dev_mode=True)
